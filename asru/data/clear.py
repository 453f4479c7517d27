"""Loader for a downloaded CLEAR snapshot (``therem/CLEAR`` on the Hugging Face hub).

CLEAR: 200 fictitious people (from TOFU) with ~3,700 portrait images. Configs used here (each a
folder of parquet shards, as in the dataset repository):

=====================  ===========================================  ==========================
config                 columns                                      our split
=====================  ===========================================  ==========================
forget01/05/10         image, caption, name                         ``forget`` (1 / 5 / 10 %)
retain99/95/90         image, caption, name                         ``retain`` (100 - pct)
forgetNN+tofu          image, caption, question, answer             text rows (question, no
                                                                    image) add to ``forget``
retainNN+tofu          same                                         text rows add to ``retain``
real_faces             image, answer, options                       ``real`` (image, 4-way)
real_world             [image], question, answer, options           ``real``
full                   image, caption, name                         ``teach``
=====================  ===========================================  ==========================

Per image row: a name question (generation), a caption question (generation, the caption as answer),
a name cloze, and a 4-way name classification whose distractors are other people's names of the
same config (when it holds at least four people). CLEAR has no held-out renders of the same people,
so it has no ``test`` split; asking for it is an error that says so.
"""

from __future__ import annotations

import random
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
from asru.data.schema import Record
from asru.data.synthetic import cloze_question

FORGET_PCTS = (1, 5, 10)
NAME_Q = "What is the name of the person in this image?"
NAME_CLS_Q = "Who is the person in this image?"
NAME_CLOZE = cloze_question("The name of the person in this image is __.")
CAPTION_Q = "Describe the person in this image."


def is_clear_dir(data_dir) -> bool:
    """Whether ``data_dir`` looks like a CLEAR snapshot (has a ``forget01``/``05``/``10`` config)."""
    d = Path(data_dir)
    return any(has_config(d, f"forget{p:02d}") for p in FORGET_PCTS)


def available_pcts(data_dir) -> list[int]:
    """Forget percentages present in this snapshot."""
    d = Path(data_dir)
    return [p for p in FORGET_PCTS if has_config(d, f"forget{p:02d}")]


def split_configs(data_dir, forget_pct: int | None = None) -> dict[str, list[str]]:
    """The configs that provide each of our splits (splits without any are absent)."""
    d = Path(data_dir)
    pct = _pick_pct(d, forget_pct)
    out: dict[str, list[str]] = {"forget": [f"forget{pct:02d}"]}
    if has_config(d, f"forget{pct:02d}+tofu"):
        out["forget"].append(f"forget{pct:02d}+tofu")
    retain = f"retain{100 - pct}"
    if has_config(d, retain):
        out["retain"] = [retain] + ([f"{retain}+tofu"] if has_config(d, f"{retain}+tofu") else [])
    real = [c for c in ("real_faces", "real_world") if has_config(d, c)]
    if real:
        out["real"] = real
    if has_config(d, "full"):
        out["teach"] = ["full"]
    return out


def load_clear(data_dir, splits, forget_pct: int | None = None, cache_dir=None, seed: int = 0) -> dict[str, list[Record]]:
    """Load ``splits`` of a CLEAR snapshot as Records (see the module docstring)."""
    d = Path(data_dir)
    configs = split_configs(d, forget_pct)
    cache = ImageCache(Path(cache_dir) if cache_dir else default_cache_dir(d, "clear"), d)
    out = {}
    for split in splits:
        if split == "test":
            raise AsruError(f"{d}: CLEAR has no 'test' split (no new images of the same people); "
                            "evaluate forget, retain and real instead")
        if split not in configs:
            expected = {"retain": f"retain{100 - _pick_pct(d, forget_pct)}", "real": "real_faces or real_world",
                        "teach": "full"}.get(split, split)
            found = sorted(c for cs in configs.values() for c in cs)
            raise AsruError(f"{d}: CLEAR split {split!r} not found (expected folder {expected}/ with parquet files; "
                            f"found configs: {', '.join(found)})")
        recs: list[Record] = []
        for config in configs[split]:
            rows = read_config(d, config)
            rng = random.Random(f"{seed}-{config}")
            if config.startswith("real_"):
                recs.extend(_real_records(config, rows, cache))
            elif config.endswith("+tofu"):
                recs.extend(_tofu_records(split, config, rows))
            else:
                recs.extend(_person_records(split, config, rows, cache, rng))
        out[split] = recs
    return out


def _pick_pct(d: Path, forget_pct: int | None) -> int:
    return pick_forget_pct(d, forget_pct, available_pcts(d), "CLEAR", "forget01 / forget05 / forget10")


def _person_records(split, config, rows, cache: ImageCache, rng: random.Random) -> list[Record]:
    recs = []
    names = sorted({str(r.get("name")).strip() for _, _, r in rows if r.get("name")})
    for path, i, row in rows:
        require_columns(path, row, ("image", "caption"))
        where = f"{path} row {i}"
        image = cache.store(row["image"], where)
        name = str(row.get("name") or "").strip() or None
        base = f"{split}-{config}-{i}"
        if row.get("caption"):
            recs.append(_record(where, id=f"{base}-caption", split=split, task="generation", modality="image",
                                question=CAPTION_Q, answer=row["caption"], image=image, person=name, fact="caption"))
        if name:
            recs.append(_record(where, id=f"{base}-name-generation", split=split, task="generation",
                                modality="image", question=NAME_Q, answer=name, image=image, person=name, fact="name"))
            recs.append(_record(where, id=f"{base}-name-cloze", split=split, task="cloze", modality="image",
                                question=NAME_CLOZE, answer=name, image=image, person=name, fact="name"))
            others = [n for n in names if n != name]
            if len(others) >= 3:
                opts = rng.sample(others, 3) + [name]
                rng.shuffle(opts)
                recs.append(_record(where, id=f"{base}-name-classification", split=split, task="classification",
                                    modality="image", question=NAME_CLS_Q, answer=name, options=tuple(opts),
                                    label=opts.index(name), image=image, person=name, fact="name"))
    return recs


def _tofu_records(split, config, rows) -> list[Record]:
    recs = []
    for path, i, row in rows:
        if row.get("image") is not None or not row.get("question"):
            continue  # image rows repeat the plain config, which is loaded as well
        recs.append(_record(f"{path} row {i}", id=f"{split}-{config}-{i}-text", split=split, task="generation",
                            modality="text", question=row["question"], answer=row.get("answer")))
    return recs


def _real_records(config, rows, cache: ImageCache) -> list[Record]:
    recs = []
    for path, i, row in rows:
        require_columns(path, row, ("answer", "options"))
        where = f"{path} row {i}"
        image = cache.store(row["image"], where) if row.get("image") is not None else None
        modality = "image" if image else "text"
        question = row.get("question") or (NAME_CLS_Q if config == "real_faces" else None)
        answer = str(row["answer"]).strip()
        options = tuple(str(o).strip() for o in (row["options"] or []))
        base = f"real-{config}-{i}"
        if len(options) == 4:
            if answer not in options:
                raise AsruError(f"{where}: answer {answer!r} is not among the options {list(options)}")
            recs.append(_record(where, id=f"{base}-classification", split="real", task="classification",
                                modality=modality, question=question, answer=answer, options=options,
                                label=options.index(answer), image=image))
        recs.append(_record(where, id=f"{base}-generation", split="real", task="generation", modality=modality,
                            question=NAME_Q if config == "real_faces" else question, answer=answer, image=image))
    return recs
