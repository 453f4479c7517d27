"""Loader for a downloaded MLLMU-Bench snapshot (``MLLMMU/MLLMU-Bench`` on the Hugging Face hub).

Layout (one folder of parquet shards per config, as in the dataset repository)::

    forget_5/ forget_10/ forget_15/     fictitious people to forget (25 / 50 / 75 rows)
    retain_95/ retain_90/ retain_85/    the other fictitious people
    Test_Set/                           the same people, new images (``images``: a list of images)
    Retain_Set/                         real celebrities (our ``real`` split)
    ft_Data/                            fine-tuning data (our ``teach`` split)
    Full_Set/                           all fictitious people (not used here)

One row per person: ``ID``, ``image`` (HF Image: ``{"bytes", "path"}``), ``biography``, ``question``,
``answer``, ``Classification_Task`` (``Image_Textual_Questions`` / ``Pure_Text_Questions``: lists of
``{"Question", "Options": {"A".."D"}, "Correct_Answer": "A".."D"}``), ``Generation_Task`` and
``Mask_Task`` (lists of ``{"Type": "Image_Textual" | "Pure_Text", "Question", "Ground_Truth"}``; a
cloze question holds the blank ``__``). ``ft_Data`` rows hold ``image`` and ``metadata``: a JSON list
of ``{"Question", "Answer"}``.

Mapping: ``forget``/``retain``/``test``/``real`` get one Record per question of the three tasks, in
both modalities, ``person`` = the row ``ID``; test rows use their list of new images in turn;
``teach`` gets one image generation Record per ``metadata`` pair. Cloze questions get the same
"Fill in the blank: " instruction as the synthetic benchmark (``[Blank]`` is written ``__``). Images are written to a cache
folder (default ``<data_dir>/_asru_images``).
"""

from __future__ import annotations

import json
from pathlib import Path

from asru.core.errors import AsruError
from asru.data.hf_parquet import (
    ImageCache,
    default_cache_dir,
    has_config,
    pick_forget_pct,
    read_config,
    require_columns,
)
from asru.data.hf_parquet import (
    record_or_error as _record,
)
from asru.data.schema import CLOZE_BLANK, OPTION_LETTERS, Record
from asru.data.synthetic import cloze_question

FORGET_PCTS = (5, 10, 15)
TEST_CONFIGS = ("Test_Set", "test")
REAL_CONFIGS = ("Retain_Set", "real")
TEACH_CONFIGS = ("ft_Data", "teach")
_TYPES = {"Image_Textual": "image", "Pure_Text": "text"}


def is_mllmu_dir(data_dir) -> bool:
    """Whether ``data_dir`` looks like an MLLMU-Bench snapshot (has a ``forget_<pct>`` config)."""
    d = Path(data_dir)
    return any(has_config(d, f"forget_{p}") for p in FORGET_PCTS)


def available_pcts(data_dir) -> list[int]:
    """Forget percentages present as a forget_<p> / retain_<100-p> pair (or forget alone)."""
    d = Path(data_dir)
    return [p for p in FORGET_PCTS if has_config(d, f"forget_{p}")]


def split_configs(data_dir, forget_pct: int | None = None) -> dict[str, str]:
    """The config that provides each of our splits in this snapshot (splits without one are absent)."""
    d = Path(data_dir)
    pct = _pick_pct(d, forget_pct)
    out = {"forget": f"forget_{pct}"}
    if has_config(d, f"retain_{100 - pct}"):
        out["retain"] = f"retain_{100 - pct}"
    for split, names in (("test", TEST_CONFIGS), ("real", REAL_CONFIGS), ("teach", TEACH_CONFIGS)):
        for name in names:
            if has_config(d, name):
                out[split] = name
                break
    return out


def load_mllmu(data_dir, splits, forget_pct: int | None = None, cache_dir=None) -> dict[str, list[Record]]:
    """Load ``splits`` of an MLLMU-Bench snapshot as Records (see the module docstring)."""
    d = Path(data_dir)
    configs = split_configs(d, forget_pct)
    cache = ImageCache(Path(cache_dir) if cache_dir else default_cache_dir(d, "mllmu"), d)
    out = {}
    for split in splits:
        if split not in configs:
            expected = {"retain": f"retain_{100 - _pick_pct(d, forget_pct)}", "test": "Test_Set",
                        "real": "Retain_Set", "teach": "ft_Data"}.get(split, split)
            raise AsruError(f"{d}: MLLMU-Bench split {split!r} not found (expected folder {expected}/ with parquet "
                            f"files; found configs: {', '.join(sorted(configs.values()))})")
        rows = read_config(d, configs[split])
        if split == "teach":
            out[split] = _teach_records(rows, cache)
        else:
            out[split] = _question_records(split, rows, cache)
    return out


def _pick_pct(d: Path, forget_pct: int | None) -> int:
    return pick_forget_pct(d, forget_pct, available_pcts(d), "MLLMU-Bench", "forget_5 / forget_10 / forget_15",
                           article="an")


def _row_images(split: str, row: dict, path: Path, i: int, cache: ImageCache) -> list[str]:
    where = f"{path} row {i}"
    cells = []
    if split == "test" and row.get("images"):
        cells = list(row["images"])
    elif row.get("image") is not None:
        cells = [row["image"]]
    elif row.get("images"):
        cells = list(row["images"])
    return [cache.store(c, where) for c in cells]


def _question_records(split: str, rows, cache: ImageCache) -> list[Record]:
    recs: list[Record] = []
    for path, i, row in rows:
        require_columns(path, row, ("ID", "Classification_Task", "Generation_Task", "Mask_Task"))
        pid = str(row["ID"])
        images = _Rotation(_row_images(split, row, path, i, cache))
        where_row = f"{path} row {i} (ID {pid})"
        cls = row["Classification_Task"] or {}
        for key, modality in (("Image_Textual_Questions", "image"), ("Pure_Text_Questions", "text")):
            for k, q in enumerate(cls.get(key) or []):
                where = f"{where_row} {key}[{k}]"
                options, label = _options(q, where)
                recs.append(_record(where, id=f"{split}-{pid}-classification-{modality}-{k}", split=split,
                                    task="classification", modality=modality, question=q.get("Question"),
                                    answer=options[label], options=options, label=label,
                                    image=images.next(modality, where), person=pid))
        for task, column in (("generation", "Generation_Task"), ("cloze", "Mask_Task")):
            for k, q in enumerate(row[column] or []):
                where = f"{where_row} {column}[{k}]"
                modality = _TYPES.get(q.get("Type"))
                if modality is None:
                    raise AsruError(f"{where}: unknown Type {q.get('Type')!r} (expected Image_Textual or Pure_Text)")
                question = q.get("Question") or ""
                if task == "cloze":
                    if CLOZE_BLANK not in question and "[Blank]" in question:
                        question = question.replace("[Blank]", CLOZE_BLANK)
                    if CLOZE_BLANK in question:
                        question = cloze_question(question)
                recs.append(_record(where, id=f"{split}-{pid}-{task}-{modality}-{k}", split=split, task=task,
                                    modality=modality, question=question, answer=q.get("Ground_Truth"),
                                    image=images.next(modality, where), person=pid))
    return recs


class _Rotation:
    """Hands out a row's images in turn to its image questions (text questions get none)."""

    def __init__(self, images: list[str]):
        self.images = images
        self.count = 0

    def next(self, modality: str, where: str) -> str | None:
        if modality == "text":
            return None
        if not self.images:
            raise AsruError(f"{where}: image question but the row has no image")
        img = self.images[self.count % len(self.images)]
        self.count += 1
        return img


def _options(q: dict, where: str) -> tuple[tuple[str, ...], int]:
    opts = q.get("Options")
    if isinstance(opts, dict):
        options = tuple(str(opts.get(letter) or "") for letter in OPTION_LETTERS)
    elif isinstance(opts, (list, tuple)):
        options = tuple(str(o) for o in opts)
    else:
        raise AsruError(f"{where}: Options must be a dict A-D or a list, got {type(opts).__name__}")
    if len(options) != 4 or not all(options):
        raise AsruError(f"{where}: classification needs four non-empty options A-D, got {list(options)}")
    correct = str(q.get("Correct_Answer") or "").strip()
    if correct.upper() in OPTION_LETTERS and len(correct) == 1:
        return options, OPTION_LETTERS.index(correct.upper())
    if correct in options:
        return options, options.index(correct)
    raise AsruError(f"{where}: Correct_Answer {correct!r} is neither a letter A-D nor one of the options")


def _teach_records(rows, cache: ImageCache) -> list[Record]:
    recs = []
    for path, i, row in rows:
        require_columns(path, row, ("image", "metadata"))
        where = f"{path} row {i}"
        try:
            pairs = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
        except json.JSONDecodeError as exc:
            raise AsruError(f"{where}: metadata is not valid JSON ({exc.msg})") from None
        if not isinstance(pairs, list):
            raise AsruError(f"{where}: metadata must be a JSON list of {{Question, Answer}} objects")
        image = cache.store(row["image"], where)
        for k, qa in enumerate(pairs):
            pid = str(qa.get("ID") or row.get("ID") or f"row{i}")
            recs.append(_record(f"{where} metadata[{k}]", id=f"teach-{i}-{k}", split="teach", task="generation",
                                modality="image", question=qa.get("Question"), answer=qa.get("Answer"),
                                image=image, person=pid))
    return recs
