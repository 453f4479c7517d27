"""Small fixture files in the real MLLMU-Bench and CLEAR parquet schemas (for the data-loader tests)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

SHARD = "train-00000-of-00001.parquet"


def image_bytes(color, fmt: str = "PNG", size: int = 24) -> bytes:
    """Bytes of a small solid-colour image."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format=fmt)
    return buf.getvalue()


def hf_image(color, fmt: str = "PNG") -> dict:
    """An HF ``Image`` cell: ``{"bytes", "path"}``."""
    return {"bytes": image_bytes(color, fmt), "path": f"{color[0]}_{color[1]}_{color[2]}.{fmt.lower()}"}


def write_config(root: Path, config: str, rows: list[dict], shard: str = SHARD) -> Path:
    """Write ``rows`` as ``root/config/shard`` (the layout of a dataset snapshot)."""
    folder = root / config
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shard
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def mllmu_row(pid: str, name: str, city: str, k: int, test: bool = False) -> dict:
    """One MLLMU-Bench person row: 2 classification, 2 generation, 2 cloze questions."""
    row = {
        "ID": pid,
        "biography": json.dumps({"Name": name, "Birthplace": city}),
        "question": "What is the name of the person in this image?",
        "answer": name,
        "Classification_Task": {
            "Image_Textual_Questions": [{
                "Question": "Where was this person born?",
                "Options": {"A": "Oslo", "B": "Lima", "C": city, "D": "Perth"},
                "Correct_Answer": "C",
            }],
            "Pure_Text_Questions": [{
                "Question": f"Where was {name} born?",
                "Options": {"A": city, "B": "Oslo", "C": "Lima", "D": "Perth"},
                "Correct_Answer": "A",
            }],
        },
        "Generation_Task": [
            {"Type": "Image_Textual", "Question": "Where was this person born?", "Ground_Truth": f"In {city}."},
            {"Type": "Pure_Text", "Question": f"Where was {name} born?", "Ground_Truth": f"{name} was born in {city}."},
        ],
        "Mask_Task": [
            {"Type": "Image_Textual", "Question": "This person was born in __.", "Ground_Truth": city},
            {"Type": "Pure_Text", "Question": f"{name} was born in __.", "Ground_Truth": city},
        ],
    }
    if test:
        row["images"] = [hf_image((10 * k, 200, 30)), hf_image((10 * k, 30, 200), "JPEG")]
    else:
        row["image"] = hf_image((10 * k, 100, 100))
    return row


PEOPLE = [("1", "Ada Quill", "Quito"), ("2", "Bo Rune", "Riga"), ("3", "Cy Moss", "Bergen"),
          ("4", "Di Fenn", "Dakar"), ("5", "Ed Lark", "Kyoto"), ("6", "Flo Hart", "Hanoi")]


def write_mllmu(root: Path) -> Path:
    """An MLLMU-Bench look-alike: forget_5 (1 person), forget_10 (2), retain_95/90, Test_Set, Retain_Set, ft_Data."""
    rows = [mllmu_row(pid, name, city, k) for k, (pid, name, city) in enumerate(PEOPLE)]
    write_config(root, "forget_5", rows[:1])
    write_config(root, "retain_95", rows[1:])
    write_config(root, "forget_10", rows[:2])
    write_config(root, "retain_90", rows[2:])
    write_config(root, "Test_Set", [mllmu_row(pid, name, city, k, test=True) for k, (pid, name, city) in enumerate(PEOPLE)])
    celebs = [mllmu_row("c1", "Famous One", "Paris", 20), mllmu_row("c2", "Famous Two", "Rome", 21)]
    write_config(root, "Retain_Set", celebs)
    ft = [{"ID": pid, "image": hf_image((10 * k, 100, 100)),
           "metadata": json.dumps([{"Question": "What is this person's name?", "Answer": name, "ID": pid},
                                   {"Question": "Where was this person born?", "Answer": city, "ID": pid}])}
          for k, (pid, name, city) in enumerate(PEOPLE)]
    write_config(root, "ft_Data", ft)
    return root


def clear_rows(names: list[str], per_person: int = 2, start: int = 0) -> list[dict]:
    """CLEAR person rows: image, caption, name."""
    rows = []
    for k, name in enumerate(names):
        for j in range(per_person):
            rows.append({"image": hf_image((start + 20 * k, 50 * j, 90)),
                         "caption": f"{name} stands in front of a wall, photo {j}.", "name": name})
    return rows


def write_clear(root: Path) -> Path:
    """A CLEAR look-alike: forget01 (1 person), retain99 (4), forget01+tofu, real_faces, real_world, full."""
    forget_names = ["Hsiao Yun-Hwa"]
    retain_names = ["Carmen Montenegro", "Elvin Mammadov", "Rajeev Majumdar", "Jad Ambrose Al-Shamary"]
    write_config(root, "forget01", clear_rows(forget_names))
    write_config(root, "retain99", clear_rows(retain_names, start=100))
    tofu = clear_rows(forget_names)
    tofu = [{**r, "question": None, "answer": None} for r in tofu] + [
        {"image": None, "caption": None, "question": "What is the profession of Hsiao Yun-Hwa's father?",
         "answer": "He is a civil engineer."},
        {"image": None, "caption": None, "question": "Where was Hsiao Yun-Hwa born?", "answer": "Taipei, Taiwan."},
    ]
    write_config(root, "forget01+tofu", tofu)
    write_config(root, "real_faces", [
        {"image": hf_image((1, 2, 3)), "answer": "Tom Hanks", "options": ["Tom Hanks", "Brad Pitt", "Matt Damon", "Ben Stiller"]},
        {"image": hf_image((4, 5, 6), "JPEG"), "answer": "Meryl Streep",
         "options": ["Emma Stone", "Meryl Streep", "Julia Roberts", "Nicole Kidman"]},
    ])
    write_config(root, "real_world", [
        {"question": "What is the capital of France?", "answer": "Paris", "options": ["Lyon", "Paris", "Nice", "Lille"]},
    ], shard="test-00000-of-00001.parquet")
    write_config(root, "full", clear_rows(forget_names + retain_names))
    return root
