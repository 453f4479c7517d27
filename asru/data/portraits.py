"""Procedurally drawn portraits of fictitious people (PIL only, deterministic).

A *person style* is a small JSON-serialisable dict of big, visible features (face shape, skin, hair
colour and style, glasses, hat, facial hair, earrings, shirt, background). :func:`make_styles`
draws one style per person so that the people of a benchmark differ from each other in several of
the big features (greedy max-min distance), which lets a tiny randomly initialised vision encoder
tell 20-40 of them apart at 64x64 px.

:func:`render_portrait` draws a style. With ``jitter=False`` it gives the canonical render; with
``jitter=True`` the ``variant_seed`` picks a moderate variation: a small shift / scale / rotation of
the person, colour jitter (brightness, contrast, saturation), a tinted background colour and
sometimes another background pattern, and a little pixel noise. Identity cues (hair, skin, shirt,
accessories) stay; the variation is what the ``test`` split's new renders are made of.

Everything is drawn at 4x the output size and downsampled with a Lanczos filter, so renders are
smooth and identical across runs for the same (style, variant_seed, size, jitter).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

# Named colour palettes (names are what a style stores).
SKIN = {
    "porcelain": (250, 224, 205),
    "light": (238, 200, 170),
    "tan": (214, 165, 120),
    "olive": (190, 150, 100),
    "brown": (150, 100, 65),
    "dark": (95, 62, 40),
}
HAIR = {
    "black": (25, 22, 22),
    "brown": (110, 65, 30),
    "blonde": (240, 210, 110),
    "red": (200, 70, 30),
    "grey": (150, 150, 150),
    "white": (245, 245, 240),
    "blue": (40, 90, 220),
    "pink": (245, 110, 180),
    "green": (40, 170, 70),
    "purple": (130, 50, 170),
}
CLOTH = {
    "red": (210, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (245, 215, 40),
    "green": (40, 150, 60),
    "teal": (20, 150, 150),
    "blue": (40, 70, 200),
    "navy": (25, 30, 90),
    "purple": (120, 50, 160),
    "pink": (240, 130, 190),
    "white": (245, 245, 245),
    "black": (30, 30, 30),
    "brown": (120, 80, 45),
}
BACKGROUND = {
    "sky": (150, 200, 245),
    "mint": (170, 235, 200),
    "peach": (250, 200, 160),
    "lavender": (200, 180, 240),
    "lemon": (250, 245, 150),
    "rose": (245, 175, 185),
    "slate": (90, 100, 120),
    "forest": (50, 100, 60),
    "maroon": (120, 35, 50),
    "sand": (220, 200, 150),
    "aqua": (90, 210, 220),
    "charcoal": (50, 50, 55),
}
EYES = {"brown": (90, 55, 25), "blue": (50, 110, 220), "green": (40, 150, 70), "grey": (120, 130, 140)}
METAL = {"gold": (235, 190, 40), "silver": (200, 205, 215), "red": (220, 30, 50), "blue": (40, 100, 240)}

FEATURES: dict[str, list[str]] = {
    "face_shape": ["oval", "round", "square", "long", "heart"],
    "skin": list(SKIN),
    "hair_color": list(HAIR),
    "hair_style": ["bald", "short", "long", "spiky", "bun", "mohawk", "afro", "bob", "side_part"],
    "eye_color": list(EYES),
    "glasses": ["none", "round", "square", "sunglasses"],
    "hat": ["none", "cap", "beanie", "tophat"],
    "hat_color": list(CLOTH),
    "earrings": ["none", "gold", "silver", "red", "blue"],
    "facial_hair": ["none", "mustache", "beard", "goatee"],
    "shirt_color": list(CLOTH),
    "shirt_style": ["plain", "collar", "stripes", "vneck"],
    "bg_color": list(BACKGROUND),
    "bg_pattern": ["plain", "stripes", "dots", "checker", "diagonal"],
    "mouth": ["smile", "flat", "open"],
}

# How much each feature counts when making people look different (big, visible features weigh most).
WEIGHTS = {
    "hair_color": 3.0,
    "shirt_color": 2.5,
    "bg_color": 2.0,
    "hair_style": 2.0,
    "glasses": 2.0,
    "hat": 2.0,
    "skin": 1.5,
    "facial_hair": 1.5,
    "face_shape": 1.0,
    "hat_color": 0.5,
    "earrings": 0.5,
    "bg_pattern": 0.5,
    "shirt_style": 0.5,
    "eye_color": 0.3,
    "mouth": 0.3,
}

_SUPERSAMPLE = 4
_PATTERNS = FEATURES["bg_pattern"]


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from any parts (``hash()`` is salted per process, this is not)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def random_style(rng: random.Random) -> dict:
    """Draw one person style from ``rng`` (hats and glasses are optional extras, not the norm)."""
    style = {name: rng.choice(options) for name, options in FEATURES.items()}
    style["hat"] = "none" if rng.random() < 0.6 else rng.choice(FEATURES["hat"][1:])
    style["glasses"] = "none" if rng.random() < 0.5 else rng.choice(FEATURES["glasses"][1:])
    style["facial_hair"] = "none" if rng.random() < 0.55 else rng.choice(FEATURES["facial_hair"][1:])
    style["earrings"] = "none" if rng.random() < 0.6 else rng.choice(FEATURES["earrings"][1:])
    # keep big colour areas apart so no feature disappears into another
    while CLOTH[style["shirt_color"]] == BACKGROUND.get(style["bg_color"]) or _close(
        CLOTH[style["shirt_color"]], BACKGROUND[style["bg_color"]]
    ):
        style["shirt_color"] = rng.choice(FEATURES["shirt_color"])
    while _close(HAIR[style["hair_color"]], BACKGROUND[style["bg_color"]]) or _close(
        HAIR[style["hair_color"]], SKIN[style["skin"]]
    ):
        style["hair_color"] = rng.choice(FEATURES["hair_color"])
    while style["hat"] != "none" and _close(CLOTH[style["hat_color"]], BACKGROUND[style["bg_color"]]):
        style["hat_color"] = rng.choice(FEATURES["hat_color"])
    return style


def style_distance(a: dict, b: dict) -> float:
    """Weighted count of the features on which two styles differ."""
    return sum(w for name, w in WEIGHTS.items() if a.get(name) != b.get(name))


def make_styles(n: int, seed: int, candidates: int = 64) -> list[dict]:
    """``n`` person styles, each chosen (from ``candidates`` random draws) to be far from the others.

    Greedy max-min: person i gets the candidate whose smallest distance to persons 0..i-1 is largest.
    Deterministic from ``seed``.
    """
    rng = random.Random(derive_seed("styles", seed))
    styles: list[dict] = []
    for _ in range(n):
        best, best_score = None, -1.0
        for _ in range(candidates):
            cand = random_style(rng)
            score = min((style_distance(cand, s) for s in styles), default=0.0)
            if score > best_score:
                best, best_score = cand, score
        styles.append(best)
    return styles


def render_portrait(person_style: dict, variant_seed: int, size: int = 64, jitter: bool = True) -> Image.Image:
    """Draw ``person_style`` as an RGB ``size`` x ``size`` image.

    ``jitter=False`` gives the canonical render (``variant_seed`` is then ignored); ``jitter=True``
    applies the moderate, seed-determined variation described in the module docstring.
    """
    unknown = [k for k in FEATURES if k not in person_style]
    if unknown:
        raise ValueError(f"person style lacks feature(s) {unknown}")
    rng = random.Random(derive_seed("variant", variant_seed)) if jitter else None
    big = size * _SUPERSAMPLE

    bg_rgb = BACKGROUND[person_style["bg_color"]]
    pattern = person_style["bg_pattern"]
    phase = 0.0
    if rng is not None:
        tint = tuple(rng.randint(0, 255) for _ in range(3))
        mix = rng.uniform(0.0, 0.2)
        bg_rgb = tuple(round((1 - mix) * c + mix * t) for c, t in zip(bg_rgb, tint))
        if rng.random() < 0.35:
            pattern = rng.choice([p for p in _PATTERNS if p != pattern])
        phase = rng.random()
    canvas = _background(big, bg_rgb, pattern, phase)

    person = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    _draw_person(ImageDraw.Draw(person), big, person_style)
    if rng is not None:
        angle = rng.uniform(-8.0, 8.0)
        scale = rng.uniform(0.9, 1.08)
        dx, dy = (rng.uniform(-0.06, 0.06) * big for _ in range(2))
        scaled = person.resize((int(big * scale), int(big * scale)), Image.Resampling.BICUBIC)
        person = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        off = (big - scaled.width) // 2
        person.paste(scaled, (off, off + int((big - scaled.height) * 0.25 * (scale < 1))))
        person = person.rotate(angle, resample=Image.Resampling.BICUBIC, center=(big / 2, big * 0.6), translate=(dx, dy))
    canvas.alpha_composite(person)
    img = canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)

    if rng is not None:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))
        noise = np.random.default_rng(derive_seed("noise", variant_seed)).normal(0.0, 4.0, (size, size, 3))
        arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
    return img


def describe_style(style: dict) -> str:
    """A short human-readable description of a style (for docs and debugging)."""
    bits = [f"{style['hair_color']} {style['hair_style'].replace('_', ' ')} hair", f"{style['skin']} skin"]
    if style["glasses"] != "none":
        bits.append(f"{style['glasses']} glasses")
    if style["hat"] != "none":
        bits.append(f"{style['hat_color']} {style['hat']}")
    if style["facial_hair"] != "none":
        bits.append(style["facial_hair"])
    bits.append(f"{style['shirt_color']} shirt")
    bits.append(f"{style['bg_color']} background")
    return ", ".join(bits)


# --------------------------------------------------------------------------- drawing helpers


def _close(a, b, tol: int = 60) -> bool:
    return sum(abs(x - y) for x, y in zip(a, b)) < tol


def _shade(rgb, f: float):
    return tuple(max(0, min(255, int(c * f))) for c in rgb)


def _background(big: int, rgb, pattern: str, phase: float) -> Image.Image:
    img = Image.new("RGBA", (big, big), rgb + (255,))
    d = ImageDraw.Draw(img)
    alt = _shade(rgb, 0.8) if sum(rgb) > 300 else _shade(rgb, 1.35)
    step = big // 6
    off = int(phase * step)
    if pattern == "stripes":
        for x in range(-step + off, big, step):
            d.rectangle([x, 0, x + step // 2, big], fill=alt)
    elif pattern == "dots":
        r = step // 6
        for y in range(step // 2 - step + off, big + step, step):
            for x in range(step // 2 - step + off, big + step, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=alt)
    elif pattern == "checker":
        for i, y in enumerate(range(-step + off, big, step)):
            for j, x in enumerate(range(-step + off, big, step)):
                if (i + j) % 2:
                    d.rectangle([x, y, x + step, y + step], fill=alt)
    elif pattern == "diagonal":
        w = step // 3
        for k in range(-big, 2 * big, step):
            k += off
            d.polygon([(k, 0), (k + w, 0), (k + w - big, big), (k - big, big)], fill=alt)
    return img


def _draw_person(d: ImageDraw.ImageDraw, S: int, st: dict) -> None:
    """Draw the person (body, head, hair, accessories) in unit coordinates scaled by ``S``."""

    def box(x0, y0, x1, y1):
        return [x0 * S, y0 * S, x1 * S, y1 * S]

    skin = SKIN[st["skin"]]
    hair = HAIR[st["hair_color"]]
    shirt = CLOTH[st["shirt_color"]]
    hat_rgb = CLOTH[st["hat_color"]]
    line = max(2, S // 64)

    # face geometry per shape: centre (cx, cy), half width hw, half height hh
    cx, cy = 0.5, 0.46
    hw, hh = {"oval": (0.19, 0.24), "round": (0.215, 0.215), "square": (0.2, 0.23),
              "long": (0.165, 0.265), "heart": (0.2, 0.235)}[st["face_shape"]]
    top, bottom = cy - hh, cy + hh

    # hair behind the head
    style = st["hair_style"]
    if style == "long":
        d.rounded_rectangle(box(cx - hw - 0.05, top - 0.03, cx + hw + 0.05, 0.86), radius=int(0.08 * S), fill=hair)
    elif style == "bob":
        d.rounded_rectangle(box(cx - hw - 0.045, top - 0.03, cx + hw + 0.045, cy + 0.12), radius=int(0.1 * S), fill=hair)
    elif style == "afro":
        d.ellipse(box(cx - hw - 0.11, top - 0.12, cx + hw + 0.11, cy + 0.1), fill=hair)
    elif style == "bun" and st["hat"] == "none":
        d.ellipse(box(cx - 0.085, top - 0.14, cx + 0.085, top + 0.03), fill=hair)

    # body: shoulders + neck + shirt style
    d.rounded_rectangle(box(0.1, 0.78, 0.9, 1.25), radius=int(0.14 * S), fill=shirt)
    d.rectangle(box(cx - 0.065, bottom - 0.04, cx + 0.065, 0.82), fill=_shade(skin, 0.92))
    sstyle = st["shirt_style"]
    if sstyle == "collar":
        d.polygon([(0.38 * S, 0.79 * S), (0.5 * S, 0.86 * S), (0.45 * S, 0.92 * S)], fill=(250, 250, 250))
        d.polygon([(0.62 * S, 0.79 * S), (0.5 * S, 0.86 * S), (0.55 * S, 0.92 * S)], fill=(250, 250, 250))
    elif sstyle == "stripes":
        stripe = _shade(shirt, 0.6) if sum(shirt) > 200 else _shade(shirt, 2.2)
        for y in (0.86, 0.93):
            d.rectangle(box(0.12, y, 0.88, y + 0.03), fill=stripe)
    elif sstyle == "vneck":
        d.polygon([(0.42 * S, 0.79 * S), (0.58 * S, 0.79 * S), (0.5 * S, 0.9 * S)], fill=_shade(skin, 0.92))

    # ears, then head
    ear = _shade(skin, 0.9)
    for side in (-1, 1):
        ex = cx + side * (hw + 0.005)
        d.ellipse(box(ex - 0.03, cy - 0.04, ex + 0.03, cy + 0.05), fill=ear)
    shape = st["face_shape"]
    if shape == "square":
        d.rounded_rectangle(box(cx - hw, top, cx + hw, bottom), radius=int(0.06 * S), fill=skin)
    elif shape == "heart":
        d.ellipse(box(cx - hw, top, cx + hw, cy + 0.1), fill=skin)
        d.polygon([((cx - hw + 0.01) * S, cy * S), ((cx + hw - 0.01) * S, cy * S), (cx * S, bottom * S)], fill=skin)
    else:
        d.ellipse(box(cx - hw, top, cx + hw, bottom), fill=skin)

    # earrings
    if st["earrings"] != "none":
        metal = METAL[st["earrings"]]
        for side in (-1, 1):
            ex = cx + side * (hw + 0.005)
            d.ellipse(box(ex - 0.022, cy + 0.055, ex + 0.022, cy + 0.1), fill=metal)

    # eyes, brows, nose, mouth
    ey = cy - 0.02
    iris = EYES[st["eye_color"]]
    brow = hair if style != "bald" and st["hair_color"] not in ("white",) else (70, 50, 40)
    for side in (-1, 1):
        ex = cx + side * 0.08
        d.ellipse(box(ex - 0.045, ey - 0.028, ex + 0.045, ey + 0.028), fill=(255, 255, 255))
        d.ellipse(box(ex - 0.024, ey - 0.024, ex + 0.024, ey + 0.024), fill=iris)
        d.ellipse(box(ex - 0.011, ey - 0.011, ex + 0.011, ey + 0.011), fill=(10, 10, 10))
        d.line(box(ex - 0.05, ey - 0.06, ex + 0.045, ey - 0.065 + side * 0.0), fill=brow, width=2 * line)
    d.line(box(cx, cy + 0.0, cx - 0.015, cy + 0.07), fill=_shade(skin, 0.7), width=line)
    my = cy + 0.13
    mouth = st["mouth"]
    lips = (170, 50, 60)
    fh = st["facial_hair"]
    if fh == "beard":
        d.polygon([((cx - hw + 0.005) * S, (cy + 0.03) * S), ((cx + hw - 0.005) * S, (cy + 0.03) * S),
                   ((cx + hw * 0.6) * S, (bottom + 0.01) * S), (cx * S, (bottom + 0.05) * S),
                   ((cx - hw * 0.6) * S, (bottom + 0.01) * S)], fill=hair)
        d.ellipse(box(cx - 0.07, my - 0.035, cx + 0.07, my + 0.035), fill=skin)
    elif fh == "goatee":
        d.polygon([((cx - 0.05) * S, (my + 0.035) * S), ((cx + 0.05) * S, (my + 0.035) * S),
                   (cx * S, (bottom + 0.035) * S)], fill=hair)
    if mouth == "smile":
        d.arc(box(cx - 0.06, my - 0.05, cx + 0.06, my + 0.025), start=20, end=160, fill=lips, width=2 * line)
    elif mouth == "flat":
        d.line(box(cx - 0.05, my, cx + 0.05, my), fill=lips, width=2 * line)
    else:
        d.ellipse(box(cx - 0.035, my - 0.02, cx + 0.035, my + 0.03), fill=(90, 20, 30))
    if fh == "mustache":
        d.rounded_rectangle(box(cx - 0.065, my - 0.05, cx + 0.065, my - 0.015), radius=int(0.015 * S), fill=hair)

    # hair in front (top of the head)
    if st["hat"] == "none" or style in ("long", "bob", "afro"):
        _front_hair(d, S, style, hair, skin, cx, top, hw)

    # glasses
    g = st["glasses"]
    if g != "none":
        frame = (20, 20, 20)
        for side in (-1, 1):
            ex = cx + side * 0.08
            b = box(ex - 0.06, ey - 0.045, ex + 0.06, ey + 0.045)
            if g == "round":
                d.ellipse(b, outline=frame, width=2 * line)
            elif g == "square":
                d.rectangle(b, outline=frame, width=2 * line)
            else:
                d.rounded_rectangle(b, radius=int(0.02 * S), fill=(15, 15, 25))
        d.line(box(cx - 0.02, ey, cx + 0.02, ey), fill=frame, width=2 * line)

    # hat
    h = st["hat"]
    if h == "cap":
        d.chord(box(cx - hw - 0.02, top - 0.06, cx + hw + 0.02, top + 0.2), start=180, end=360, fill=hat_rgb)
        d.rounded_rectangle(box(cx - hw - 0.02, top + 0.05, cx + hw + 0.14, top + 0.09), radius=int(0.02 * S),
                            fill=_shade(hat_rgb, 0.75))
    elif h == "beanie":
        d.chord(box(cx - hw - 0.03, top - 0.09, cx + hw + 0.03, top + 0.24), start=180, end=360, fill=hat_rgb)
        d.rectangle(box(cx - hw - 0.03, top + 0.05, cx + hw + 0.03, top + 0.11), fill=_shade(hat_rgb, 0.75))
        d.ellipse(box(cx - 0.04, top - 0.13, cx + 0.04, top - 0.05), fill=_shade(hat_rgb, 0.75))
    elif h == "tophat":
        d.rectangle(box(cx - hw + 0.02, top - 0.2, cx + hw - 0.02, top + 0.04), fill=hat_rgb)
        d.rectangle(box(cx - hw - 0.06, top + 0.02, cx + hw + 0.06, top + 0.06), fill=hat_rgb)
        d.rectangle(box(cx - hw + 0.02, top - 0.01, cx + hw - 0.02, top + 0.02), fill=_shade(hat_rgb, 0.6))


def _front_hair(d, S, style, hair, skin, cx, top, hw) -> None:
    def box(x0, y0, x1, y1):
        return [x0 * S, y0 * S, x1 * S, y1 * S]

    if style == "bald":
        return
    if style == "mohawk":
        d.polygon([((cx - 0.04) * S, (top + 0.06) * S), ((cx + 0.04) * S, (top + 0.06) * S),
                   ((cx + 0.03) * S, (top - 0.12) * S), ((cx - 0.03) * S, (top - 0.12) * S)], fill=hair)
        return
    if style == "spiky":
        n = 6
        for i in range(n):
            x0 = cx - hw + i * (2 * hw / n)
            x1 = x0 + 2 * hw / n
            d.polygon([(x0 * S, (top + 0.08) * S), (x1 * S, (top + 0.08) * S),
                       ((x0 + x1) / 2 * S, (top - 0.09) * S)], fill=hair)
        d.chord(box(cx - hw, top - 0.01, cx + hw, top + 0.2), start=180, end=360, fill=hair)
        return
    # a cap of hair over the top of the head
    d.chord(box(cx - hw - 0.012, top - 0.02, cx + hw + 0.012, top + 0.22), start=180, end=360, fill=hair)
    if style == "side_part":
        d.polygon([((cx - hw) * S, (top + 0.1) * S), ((cx + 0.02) * S, (top - 0.02) * S),
                   ((cx + hw + 0.01) * S, (top + 0.04) * S), ((cx + hw + 0.01) * S, (top + 0.14) * S)], fill=hair)
    elif style in ("long", "bob"):
        for side in (-1, 1):
            x = cx + side * hw
            d.rectangle(box(min(x, x + side * 0.04), top + 0.06, max(x, x + side * 0.04), top + 0.3), fill=hair)
    elif style == "afro":
        d.chord(box(cx - hw - 0.03, top - 0.05, cx + hw + 0.03, top + 0.2), start=180, end=360, fill=hair)
