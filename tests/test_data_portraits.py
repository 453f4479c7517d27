"""Portraits: deterministic, distinct people, identity kept under jitter."""

import itertools

import numpy as np
import pytest

from asru.data.portraits import FEATURES, derive_seed, make_styles, render_portrait, style_distance


def _px(img):
    return np.asarray(img, dtype=np.int16)


def test_render_is_deterministic_and_sized():
    style = make_styles(1, seed=3)[0]
    a = render_portrait(style, 7, size=64)
    b = render_portrait(style, 7, size=64)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert render_portrait(style, 7, size=32).size == (32, 32)


def test_variants_differ_but_canonical_ignores_seed():
    style = make_styles(1, seed=3)[0]
    assert render_portrait(style, 1).tobytes() != render_portrait(style, 2).tobytes()
    assert render_portrait(style, 1, jitter=False).tobytes() == render_portrait(style, 2, jitter=False).tobytes()
    # variation is moderate: a jittered render stays closer to its own canonical render than to another person's
    other = make_styles(2, seed=3)[1]
    base = _px(render_portrait(style, 0, jitter=False))
    var = _px(render_portrait(style, 5))
    other_base = _px(render_portrait(other, 0, jitter=False))
    assert np.abs(var - base).mean() < np.abs(other_base - base).mean()


def test_styles_are_deterministic_and_far_apart():
    assert make_styles(20, seed=0) == make_styles(20, seed=0)
    assert make_styles(20, seed=0) != make_styles(20, seed=1)
    styles = make_styles(40, seed=0)
    assert all(set(s) == set(FEATURES) for s in styles)
    dists = [style_distance(a, b) for a, b in itertools.combinations(styles, 2)]
    # each pair differs in several big features (hair colour alone weighs 3)
    assert min(dists) >= 8.0


def test_identity_survives_jitter_for_a_pixel_nearest_neighbour():
    """New renders of 20 people are recognised from 6 training renders each by 1-NN on 16x16 pixels."""
    styles = make_styles(20, seed=0)

    def feat(img):
        return np.asarray(img.resize((16, 16)), dtype=np.float32).ravel() / 255

    train_x, train_y = [], []
    for i, s in enumerate(styles):
        for k in range(6):
            train_x.append(feat(render_portrait(s, derive_seed("train", i, k), jitter=k > 0)))
            train_y.append(i)
    x, y = np.stack(train_x), np.array(train_y)
    hits = 0
    for i, s in enumerate(styles):
        for k in range(2):
            f = feat(render_portrait(s, derive_seed("test", i, k)))
            hits += int(y[np.argmin(((x - f) ** 2).sum(1))] == i)
    assert hits / 40 >= 0.9


def test_missing_feature_is_an_error():
    style = dict(make_styles(1, seed=0)[0])
    del style["hair_color"]
    with pytest.raises(ValueError, match="hair_color"):
        render_portrait(style, 0)


def test_derive_seed_is_stable():
    assert derive_seed("a", 1) == derive_seed("a", 1)
    assert derive_seed("a", 1) != derive_seed("a", 2)
    assert derive_seed("train", 0, 1, 2) == 2709740221585434988
