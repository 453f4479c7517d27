"""Augmented forget images: reproducible copies that differ from the original, added to the redirection prompts."""

import numpy as np
from PIL import Image

from asru.core.image_augment import augmented_copies
from asru.stages.steer.extra_images import augmented_rows, with_augmented_images
from asru.stages.steer.prompts import SteerPrompts


def _portrait(tmp_path):
    im = np.full((32, 32, 3), 200, dtype=np.uint8)
    im[8:24, 10:22] = (90, 60, 30)
    path = tmp_path / "p.png"
    Image.fromarray(im).save(path)
    return path


def test_copies_are_reproducible_and_differ_from_the_original(tmp_path):
    path = _portrait(tmp_path)
    a, b = augmented_copies(path, 3, seed=7), augmented_copies(path, 3, seed=7)
    assert len(a) == 3 and all(im.size == (32, 32) and im.mode == "RGB" for im in a)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    orig = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert all(np.abs(np.asarray(x, dtype=float) - orig).mean() > 1.0 for x in a)
    other = augmented_copies(path, 1, seed=8)[0]
    assert not np.array_equal(np.asarray(other), np.asarray(a[0]))
    assert augmented_copies(path, 0, seed=7) == []


def test_copies_keep_the_background_in_the_uncovered_corners(tmp_path):
    for im in augmented_copies(_portrait(tmp_path), 5, seed=1):
        corner = np.asarray(im, dtype=float)[0, 0]
        assert np.abs(corner - 200).max() < 60  # background (brightness/contrast moved), never black fill


def _prompts(img):
    recs = ["r-img", "r-text"]
    return SteerPrompts(refusal_tried=[], refusal_questions=[], refusal_images=[], forget_records=recs,
                        forget_questions=["q image", "q text"], forget_images=[img, None], held_out=[],
                        direction_ids=[0, 1], retain_records=[], retain_questions=[], retain_images=[])


def test_only_image_questions_get_copies_with_their_answer(tmp_path):
    p, ans = with_augmented_images(_prompts(_portrait(tmp_path)), ["refuse A", "refuse B"], 2, seed=0)
    assert p.forget_questions == ["q image", "q text", "q image", "q image"]
    assert ans == ["refuse A", "refuse B", "refuse A", "refuse A"]
    assert p.forget_records == ["r-img", "r-text", "r-img", "r-img"]
    assert p.forget_images[1] is None and all(isinstance(im, Image.Image) for im in p.forget_images[2:])
    assert p.direction_ids == [0, 1]  # the direction still comes from the forget set's own prompts


def test_no_copies_when_off_or_text_only(tmp_path):
    prompts = _prompts(_portrait(tmp_path))
    assert with_augmented_images(prompts, None, 0, seed=0) == (prompts, None)
    text_only = _prompts(None)
    assert with_augmented_images(text_only, ["a", "b"], 3, seed=0) == (text_only, ["a", "b"])
    p, ans = with_augmented_images(prompts, None, 1, seed=0)
    assert ans is None and len(p.forget_questions) == 3


def test_augmented_rows_keep_answers_and_sources(tmp_path):
    img = _portrait(tmp_path)
    q, im, ans, src = augmented_rows(["a", "b", "c"], [None, img, img], ["A", "B", "C"], 1, seed=3)
    assert q == ["a", "b", "c", "b", "c"] and ans == ["A", "B", "C", "B", "C"] and src == [0, 1, 2, 1, 2]
    assert im[:3] == [None, img, img] and all(isinstance(x, Image.Image) for x in im[3:])
    assert augmented_rows(["a"], [img], None, 0, seed=3) == (["a"], [img], None, [0])
