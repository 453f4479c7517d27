"""Render docs/examples.png: a few people of the synthetic benchmark, three renders each, with facts.

Usage: python scripts/make_example_grid.py [--data DIR] [--people 6] [--out docs/examples.png]

Without --data the default benchmark (20 people, seed 0) is generated in a temporary folder. Each
cell shows the canonical portrait, a jittered training render and a test render (never taught),
the person's name and two facts; forget-set people are marked. Prints the file size.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from asru.core.rundir import atomic_write_bytes
from asru.data.synthetic import generate_benchmark, read_profiles

SCALE = 96  # px per render in the grid
PAD = 8
TEXT_H = 58
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _font(path: str, size: int):
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default()


def pick_people(people: list[dict], n: int) -> list[dict]:
    """All forget-set people first (up to half of ``n``), then retain-set people, in id order."""
    forget = [p for p in people if p["forget"]][: max(1, n // 2)]
    retain = [p for p in people if not p["forget"]]
    return (forget + retain)[:n]


def make_grid(data_dir: Path, n: int, per_row: int = 3) -> Image.Image:
    """The example grid for ``n`` people of the benchmark in ``data_dir``."""
    people = pick_people(read_profiles(data_dir)["people"], n)
    cell_w = 3 * SCALE + 4 * PAD
    cell_h = SCALE + TEXT_H + 2 * PAD
    header = 26
    rows = (len(people) + per_row - 1) // per_row
    grid = Image.new("RGB", (per_row * cell_w, header + rows * cell_h), "white")
    d = ImageDraw.Draw(grid)
    f_head, f_name, f_txt = _font(FONT_BOLD, 13), _font(FONT_BOLD, 14), _font(FONT, 12)
    for c in range(per_row):
        for k, label in enumerate(("portrait", "train render", "test render")):
            x = c * cell_w + PAD + k * (SCALE + PAD)
            d.text((x + SCALE // 2, header // 2), label, fill=(90, 90, 90), font=f_head, anchor="mm")
    for idx, p in enumerate(people):
        r, c = divmod(idx, per_row)
        x0, y0 = c * cell_w, header + r * cell_h
        files = [p["images"]["base"], p["images"]["train"][0], p["images"]["test"][0]]
        for k, rel in enumerate(files):
            with Image.open(data_dir / rel) as im:
                tile = im.convert("RGB").resize((SCALE, SCALE), Image.Resampling.LANCZOS)
            grid.paste(tile, (x0 + PAD + k * (SCALE + PAD), y0 + PAD))
        f = p["facts"]
        ty = y0 + PAD + SCALE + 6
        tag = "  [forget]" if p["forget"] else ""
        d.text((x0 + PAD, ty), p["name"] + tag, fill=(180, 20, 20) if p["forget"] else (20, 20, 20), font=f_name)
        d.text((x0 + PAD, ty + 19), f"born in {f['birthplace']}, {f['birth_year']}", fill=(50, 50, 50), font=f_txt)
        d.text((x0 + PAD, ty + 35), f"{f['occupation']} at {f['employer']}", fill=(50, 50, 50), font=f_txt)
    return grid


def main(argv=None) -> int:
    """Build the grid and write it (palette PNG, to stay small)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="an existing synthetic benchmark (default: generate one)")
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("docs/examples.png"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "bench"
            generate_benchmark(data)
        grid = make_grid(data, args.people)
    buf = io.BytesIO()
    grid.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}: {grid.width}x{grid.height} px, {len(buf.getvalue()) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
