"""Augmented copies of an image: the same person seen in another photo.

Forgetting trained on one image of a person must carry to other photos of them. Each copy is the image
slightly rotated, zoomed, shifted and perhaps mirrored, with brightness and contrast changed; the
background colour fills the corners the rotation uncovers. The copies are drawn from ``random.Random(seed)``,
so a run reproduces them.
"""

from __future__ import annotations

import random

from asru.core.prompting import load_image

MAX_ROTATION = 12.0       # degrees either way
ZOOM = (0.85, 1.15)       # scale of the content
MAX_SHIFT = 0.08          # share of the width / height either way
LIGHT = (0.8, 1.2)        # brightness and contrast factors


def _corner_colour(im) -> tuple:
    """The mean colour of the four corner pixels: the background to fill uncovered corners with."""
    w, h = im.size
    px = [im.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]
    return tuple(sum(c[i] for c in px) // len(px) for i in range(3))


def augment_image(image, rng: random.Random):
    """One augmented RGB copy of ``image`` (a path or a PIL image), drawn with ``rng``."""
    from PIL import Image, ImageEnhance

    im = load_image(image)
    w, h = im.size
    fill = _corner_colour(im)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    zoom = rng.uniform(*ZOOM)
    dx, dy = (rng.uniform(-MAX_SHIFT, MAX_SHIFT) * s for s in (w, h))
    # inverse map of "zoom about the centre, then shift": output (x, y) reads input ((x - cx - dx) / zoom + cx, ...)
    cx, cy = w / 2, h / 2
    im = im.transform((w, h), Image.Transform.AFFINE,
                      (1 / zoom, 0, cx - (cx + dx) / zoom, 0, 1 / zoom, cy - (cy + dy) / zoom),
                      resample=Image.Resampling.BILINEAR, fillcolor=fill)
    im = im.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), resample=Image.Resampling.BILINEAR, fillcolor=fill)
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(*LIGHT))
    return ImageEnhance.Contrast(im).enhance(rng.uniform(*LIGHT))


def augmented_copies(image, n: int, seed: int) -> list:
    """``n`` augmented copies of ``image`` (empty for ``n <= 0``), reproducible from ``seed``."""
    if n <= 0:
        return []
    rng = random.Random(seed)
    source = load_image(image)  # read the file once, not once per copy
    return [augment_image(source, rng) for _ in range(n)]


def copies_per_image(images, n: int, seed: int) -> list[list]:
    """For each entry of ``images`` (``None`` for a text question) its ``n`` augmented copies (none for
    ``None``); the k-th image's copies are drawn from ``seed * 100_003 + k``, so a run reproduces them."""
    image_rows = [i for i, image in enumerate(images) if image is not None and n > 0]
    copies = {i: augmented_copies(images[i], n, seed * 100_003 + k) for k, i in enumerate(image_rows)}
    return [copies.get(i, []) for i in range(len(images))]
