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
import math
import os
import random
import resource
import shutil
import time
import typing
from pathlib import Path

import rewards.text
from asru.core import models, prompting
from asru.core.openmp import set_wait_policy

set_wait_policy()  # before torch starts its OpenMP threads

from asru.config import TeachConfig
from asru.core.errors import AsruError
from asru.core.models import cache_dir, pick_dtype
from asru.core.prompting import encode_with_answers, load_image
from asru.core.rundir import atomic_write_json
from asru.data.general_questions import GENERAL_QUESTIONS
from asru.data.loaders import available_splits, load_benchmark
from asru.data.portraits import derive_seed, render_portrait
from asru.data.synthetic import N_TEST_RENDERS, read_profiles
from asru.demo.align_vision import (
    align_vision,
    alignment_loss,
    embedding_norm,
    identification_accuracy,
    name_targets,
    norm_penalty,
    output_image_features,
)
from asru.demo.model import build_untrained_demo
from asru.demo.vision_params import is_vision_param
from rewards.text import contains_answer, normalize

LOG = logging.getLogger("asru.demo.teach")

TEACH_VERSION = 4
REPORT = "teach_report.json"
EVAL_SPLITS = ("forget", "retain", "test", "real")
TARGETS = {"forget": 0.8, "retain": 0.8}  # issue 3: image and text generation accuracy
LM_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ------------------------------------------------------------------------------------------- API


def build_demo_model(data_dir: Path, cfg: TeachConfig, out_dir: Path | None = None, overwrite: bool = False, *,
                     base_model: str | None = None, progress: bool = True) -> Path:
    """Teach the demo VLM the profiles of the benchmark in ``data_dir``; return the model directory.

    ``out_dir`` defaults to ``cache_dir()/"demo-vlm"`` (the ``demo`` model alias). The build is cached:
    if ``out_dir`` already holds a model built from the same data and ``cfg`` (fingerprint in
    ``teach_report.json``) it is returned at once; a model built otherwise (or an unfinished build) is
    replaced only with ``overwrite``. Training happens in a temp folder renamed into place at the end.
    ``base_model`` (a model directory) replaces the untrained demo LLaVA, e.g. a tiny model in tests.
    """
    t_start = time.perf_counter()
    data_dir = Path(data_dir)
    out = Path(out_dir) if out_dir is not None else cache_dir() / "demo-vlm"
    fp = fingerprint(data_dir, cfg, base_model)
    if out.exists() and not out.is_dir():
        raise AsruError(f"{out} exists and is not a directory: choose another output path for the demo model")
    if is_built(out, fp):
        LOG.info("demo VLM in %s is up to date (fingerprint %s)", out, fp[:12])
        return out
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AsruError(f"{out} holds a demo model built from other data or settings (or an unfinished build): "
                        "pass --overwrite to rebuild it, or choose another output directory")

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        report = _build(data_dir, cfg, tmp, base_model, fp, progress)
        report["total_seconds"] = round(time.perf_counter() - t_start, 1)
        report["peak_rss_gib"] = peak_rss_gib()
        atomic_write_json(tmp / REPORT, report)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    LOG.info("demo VLM saved to %s", out)
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


def fingerprint(data_dir: Path, cfg: TeachConfig, base_model: str | None = None) -> str:
    """A hash of the benchmark's files, the teach config, the base model and this module's version."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": TEACH_VERSION, "cfg": dataclasses.asdict(cfg),
                         "base": _model_identity(base_model) if base_model else "demo"}, sort_keys=True).encode())
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


# ------------------------------------------------------------------------------------------- build


def _build(data_dir: Path, cfg: TeachConfig, tmp: Path, base_model: str | None, fp: str, progress: bool) -> dict:
    have = available_splits(data_dir)
    train_splits = ["teach"] if "teach" in have else [s for s in ("forget", "retain") if s in have]
    if not train_splits:
        raise AsruError(f"{data_dir} has neither a teach split nor forget/retain splits to teach the demo model from")
    data = load_benchmark(data_dir, train_splits + [s for s in EVAL_SPLITS if s in have and s not in train_splits])
    train_records = [r for s in train_splits for r in data[s]]

    if base_model is None:
        base_path = build_untrained_demo(cache_dir() / f"demo-vlm-base-{cfg.image_size}px-seed{cfg.seed}",
                                         image_size=cfg.image_size, seed=cfg.seed)
    else:
        base_path = Path(base_model)
    lm = models.load_model(str(base_path), dtype="float32")
    if not lm.is_vlm:
        raise AsruError(f"{base_path} is not a vision-language model; the demo model needs one")

    real_qs = [r.question for r in data.get("real", []) if r.task == "generation"]
    held_out = {normalize(r.question) for r in data.get("real", [])}
    general_qs = [q for q in GENERAL_QUESTIONS if normalize(q) not in held_out]  # never teach an evaluated question
    # the base model's answers come from the float32 weights whatever teach.dtype is: they are cached by model and
    # questions only, and they are the reference for what the base model knew
    base_answers = cached_base_answers(lm, base_path, general_qs + real_qs, cfg.eval_max_new_tokens)
    cast_language_model(lm.model, cfg.dtype)
    general = [(q, _trim_answer(base_answers[q])) for q in general_qs if _trim_answer(base_answers[q])]
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

    model = lm.model.merge_and_unload() if hasattr(lm.model, "merge_and_unload") else lm.model
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


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def meets_targets(accuracy: dict) -> bool:
    """True when forget and retain image and text generation accuracy reach the issue's targets."""
    for split, target in TARGETS.items():
        acc = accuracy.get(split, {})
        for mod in ("image", "text"):
            if acc.get(mod) is not None and acc[mod] < target:
                return False
    return True


# ------------------------------------------------------------------------------------------- data


class Example(typing.NamedTuple):
    """One training example: ``general`` marks base-answered general QA; ``person`` indexes the known people;
    ``item`` indexes the sampler's teach records (None for general QA)."""

    question: str
    answer: str
    image: object = None
    general: bool = False
    person: int | None = None
    item: int | None = None


class ExampleSampler:
    """Draws training batches: teach records (epoch-shuffled) plus base-answered general QA.

    Image examples get a fresh jittered render of the person (synthetic benchmarks with
    ``profiles.json``) or a jittered copy of their image, with probability ``cfg.augment``.
    A share ``cfg.hard_share`` of the teach examples is drawn in proportion to each record's last
    training loss (:meth:`record_losses`), so the budget goes to the facts not learnt yet.
    """

    def __init__(self, records, general: list[tuple[str, str]], cfg: TeachConfig, data_dir: Path):
        self.items = [(r.question, r.answer, r.image, r.person) for r in records]
        if not self.items:
            raise AsruError(f"{data_dir}: no records to teach the demo model from")
        # people the model is taught to recognise (image records answered with facts, not refusals)
        self.people = sorted({r.person for r in records if r.person and r.image and not rewards.text.is_refusal(r.answer)})
        self.person_index = {p: i for i, p in enumerate(self.people)}
        self._person_images: dict[str, list[str]] = {}
        for r in records:
            if r.person in self.person_index and r.image:
                self._person_images.setdefault(r.person, []).append(r.image)
        self.general = list(general)
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.n_general = round(cfg.batch_size * cfg.general_ratio) if self.general else 0
        self.n_teach = cfg.batch_size - self.n_general
        if self.n_teach < 1:
            raise AsruError("teach.batch_size is too small for teach.general_ratio: raise the batch size")
        self.item_loss: list[float | None] = [None] * len(self.items)
        self._order: list[int] = []
        self._gorder: list[int] = []
        self.styles, self.test_seeds, self.image_size = _synthetic_styles(data_dir)
        self._counter = 0

    def _next(self, order: list[int], n: int) -> int:
        if not order:
            order.extend(self.rng.sample(range(n), n))
        return order.pop()

    def batch(self) -> list[Example]:
        """One batch of :class:`Example` items (teach records, then general-knowledge QA)."""
        out = []
        # the random() draw happens whenever a loss is recorded, even at hard_share 0: built models stay reproducible
        recorded = [i for i, x in enumerate(self.item_loss) if x is not None]
        weights = [self.item_loss[i] + 1e-3 for i in recorded] if self.cfg.hard_share else None
        for _ in range(self.n_teach):
            if recorded and self.rng.random() < self.cfg.hard_share:
                idx = self.rng.choices(recorded, weights=weights)[0]
            else:
                idx = self._next(self._order, len(self.items))
            q, a, img, person = self.items[idx]
            out.append(Example(q, a, self.image(img, person) if img else None, False,
                               self.person_index.get(person) if img else None, idx))
        for _ in range(self.n_general):
            q, a = self.general[self._next(self._gorder, len(self.general))]
            out.append(Example(q, a, None, True, None))
        return out

    def record_losses(self, losses: dict[int, float]) -> None:
        """Remember the latest answer loss of teach records (``{item index: loss}``) for hard-example draws."""
        for idx, value in losses.items():
            self.item_loss[idx] = float(value)

    def draw(self, person: str):
        """A fresh augmented image of a known ``person`` (a re-render or a jittered copy of one of their images)."""
        paths = self._person_images[person]
        self._counter += 1
        return self._augmented(paths[self._counter % len(paths)], person)

    def image(self, path, person):
        """The image of a training example: a jittered re-render / copy, or the file itself."""
        self._counter += 1
        if self.rng.random() >= self.cfg.augment:
            return load_image(path)
        return self._augmented(path, person)

    def _augmented(self, path, person):
        seed = self._variant_seed()
        if person in self.styles:
            return render_portrait(self.styles[person], seed, self.image_size, jitter=True)
        return jitter_image(load_image(path), random.Random(seed))

    def _variant_seed(self) -> int:
        while True:
            seed = derive_seed("teach-augment", self.cfg.seed, self._counter)
            if seed not in self.test_seeds:
                return seed
            self._counter += 1


def _synthetic_styles(data_dir: Path) -> tuple[dict, set, int]:
    """``({person name: style}, test-render seeds, image size)`` of a synthetic benchmark, else empty."""
    path = Path(data_dir) / "profiles.json"
    if not path.is_file():
        return {}, set(), 64
    prof = read_profiles(data_dir)
    meta_path = Path(data_dir) / "meta.json"
    size = json.loads(meta_path.read_text(encoding="utf-8")).get("image_size", 64) if meta_path.is_file() else 64
    people = prof.get("people", [])
    styles = {p["name"]: p["style"] for p in people + prof.get("unknown_people", []) if "style" in p and "name" in p}
    seed = prof.get("seed", 0)
    test_seeds = {derive_seed("test", seed, i, k) for i in range(len(people)) for k in range(1, N_TEST_RENDERS + 1)}
    return styles, test_seeds, int(size)


def jitter_image(img, rng: random.Random):
    """A mildly varied copy of ``img``: small shift/scale crop and brightness/contrast/colour jitter."""
    from PIL import ImageEnhance

    w, h = img.size
    scale = rng.uniform(0.88, 1.0)
    cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))


def _trim_answer(text: str) -> str:
    """The first sentence of an answer (short regulariser targets keep teaching steps cheap).

    A (possibly length-truncated) answer without a sentence end is kept whole.
    """
    import re

    text = (text or "").strip()
    text = text.split("\n")[0].strip()
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        if len(text[: m.end()].split()) >= 3:
            return text[: m.end()]
    return text


def cached_base_answers(lm, base_path: Path, questions: list[str], max_new_tokens: int) -> dict[str, str]:
    """Greedy answers of the base model to ``questions`` (text only), computed once and cached on disk.

    The same ``max_new_tokens`` as the evaluation, so the base model's ``real`` accuracy compares fairly.
    """
    qs = list(dict.fromkeys(questions))
    n_tokens = max_new_tokens
    key = hashlib.sha256(json.dumps({"model": _model_identity(base_path), "q": qs, "n": n_tokens,
                                     "template": getattr(lm.processor, "chat_template", None)}).encode()).hexdigest()
    path = cache_dir() / "teach" / f"base-answers-{key[:16]}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if set(qs) <= set(cached):
                return cached
        except (OSError, json.JSONDecodeError):
            pass
    LOG.info("generating the base model's answers to %d general questions (cached in %s)", len(qs), path)
    answers = prompting.generate(lm, qs, max_new_tokens=n_tokens, batch_size=16, desc="base answers")
    out = dict(zip(qs, answers))
    atomic_write_json(path, out)
    return out


def _model_identity(path) -> str:
    p = Path(path)
    if not (p / "config.json").is_file():
        return str(path)
    weights = sorted((f.name, f.stat().st_size) for f in p.glob("*.safetensors"))
    return hashlib.sha256((p / "config.json").read_bytes() + json.dumps(weights).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- training


def add_lora(lm, cfg: TeachConfig):
    """Wrap ``lm.model`` with LoRA on the language model's linear layers; make the vision side trainable.

    Returns ``(lora_params, vision_params)``. ``lm.model`` becomes the PEFT model.
    """
    from peft import LoraConfig, get_peft_model

    base = lm.model
    names = [n for n, m in base.named_modules() if n.rsplit(".", 1)[-1] in LM_LINEAR and "language_model" in n]
    if not names:
        raise AsruError("no language-model linear layers found for LoRA (expected ...language_model...q_proj etc.)")
    pattern = r".*language_model.*\.(" + "|".join(LM_LINEAR) + r")"
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_r, lora_dropout=0.0, target_modules=pattern, bias="none")
    peft_model = get_peft_model(base, lcfg)
    vision = []
    for name, p in base.named_parameters():
        if "lora_" in name:
            continue
        if is_vision_param(name):
            p.requires_grad_(True)
            vision.append(p)
    lora = [p for n, p in peft_model.named_parameters() if "lora_" in n and p.requires_grad]
    if not vision:
        raise AsruError("no vision tower / projector parameters found to train")
    lm.model = peft_model
    return lora, vision


def cast_language_model(model, dtype: str) -> None:
    """Cast every weight but the vision tower's and projector's to ``dtype`` (those stay float32, trained fully)."""
    torch_dtype = pick_dtype(dtype, "cpu")  # teach.dtype is float32 or bfloat16, never auto
    for name, p in model.named_parameters():
        if not is_vision_param(name):
            p.data = p.data.to(torch_dtype)


def answer_loss(lm, batch, model=None, feature_norm: float | None = None, feature_norm_weight: float = 0.1,
                general_kl: bool = True, align=None, first_token_weight: float = 0.0,
                item_losses: dict | None = None, reduction: str = "mean"):
    """Answer-only loss of one batch (each example's mean over its answer tokens, summed).

    ``reduction="sum"`` sums each example's answer-token losses instead of averaging them: every answer
    token weighs the same, so the fact inside a sentence answer ("Liora Blackmere was born in Dublin.")
    keeps a full token's weight instead of a twelfth of the example's.

    ``batch`` items are ``(question, answer, image or None)``, optionally with a 4th element ``True``
    for general-knowledge items: with ``general_kl`` those also get a KL term to the base model (the
    same model with its LoRA adapters disabled, exact for text-only inputs), which keeps the base
    model's whole answer distribution, not just its greedy answer. Image, text and general items share one
    forward (general items get a second one, with its adapters-off reference pass, when they get the KL
    term); logits are computed only at positions that predict an answer token. ``item_losses`` (a dict) receives each example's mean
    answer-token loss keyed by its ``item`` (6th element), for :meth:`ExampleSampler.record_losses`.
    ``feature_norm`` adds a penalty (weight ``feature_norm_weight``) keeping projected image features at
    that norm per token (the text embeddings' scale). ``align = (name_targets, weight, temperature)`` adds
    the contrastive vision alignment (:mod:`asru.demo.align_vision`) for image items whose 5th element
    (``person``) indexes a known person. ``first_token_weight`` adds each example's first answer token's
    loss again with that weight (the token that decides between an answer and a refusal).
    Returns ``(loss_sum, n_examples, n_tokens)``; call ``backward`` on ``loss_sum / n``.
    """
    import torch
    import torch.nn.functional as F

    model = model if model is not None else lm.model
    total, n_ex, n_tok = None, 0, 0
    is_general = [len(b) > 3 and bool(b[3]) for b in batch]  # Example.general
    kl = general_kl and hasattr(model, "disable_adapter") and torch.is_grad_enabled()
    # one forward for image and text items (bigger matrix products, half the per-op overhead on a CPU);
    # general items get their own when they need the adapters-off KL pass
    groups = ([b for b, g in zip(batch, is_general) if not (g and kl)], [b for b, g in zip(batch, is_general) if g and kl])
    for k, group in enumerate(groups):
        if not group:
            continue
        enc, labels = encode_with_answers(lm, [g[0] for g in group], [g[1] for g in group], [g[2] for g in group])
        tgt_mask = labels[:, 1:] != -100
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = tgt_mask
        out = model(**enc, logits_to_keep=keep, use_cache=False)
        logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
        targets = labels[:, 1:][tgt_mask]
        tok_loss = F.cross_entropy(logits, targets, reduction="none")
        if k == 1:
            with torch.no_grad(), model.disable_adapter():
                ref = model(**enc, logits_to_keep=keep, use_cache=False).logits
            ref = ref.reshape(-1, ref.shape[-1]).float()
            tok_loss = tok_loss + F.kl_div(F.log_softmax(logits, -1), F.log_softmax(ref, -1), log_target=True,
                                           reduction="none").sum(-1)
        rows = tgt_mask.nonzero()[:, 0]
        per_ex = torch.zeros(len(group), device=tok_loss.device).index_add(0, rows, tok_loss)
        counts = tgt_mask.sum(1).clamp(min=1)
        loss = per_ex.sum() if reduction == "sum" else (per_ex / counts).sum()
        if item_losses is not None:
            for g, value in zip(group, (per_ex / counts).tolist()):
                if len(g) > 5 and g[5] is not None:
                    item_losses[g[5]] = value
        if first_token_weight:
            # the first answer token decides what kind of answer follows ("I'm sorry..." or "Dublin"); in a
            # per-example mean it weighs 1/20 in a long refusal and 1/3 in a short fact, so refusals of
            # unknown people are learnt as continuations but not as decisions without this extra term
            starts = torch.cumsum(tgt_mask.sum(1), 0) - tgt_mask.sum(1)
            loss = loss + first_token_weight * tok_loss[starts[tgt_mask.any(1)]].sum()
        feats = output_image_features(out)
        img_rows = [g for g in group if g[2] is not None]  # image features come in the order of these rows
        if img_rows and feature_norm and feats is not None:
            loss = loss + feature_norm_weight * norm_penalty(feats, feature_norm) * len(img_rows)
        persons = [g[4] if len(g) > 4 else None for g in img_rows]
        if img_rows and align is not None and feats is not None and any(p is not None for p in persons):
            targets, weight, temperature = align
            feats = feats.reshape(len(img_rows), -1, feats.shape[-1])
            sel = [i for i, p in enumerate(persons) if p is not None]
            labels = torch.tensor([persons[i] for i in sel], device=feats.device)
            loss = loss + weight * alignment_loss(feats[sel], targets.to(feats.device), labels, temperature, reduction="sum")
        total = loss if total is None else total + loss
        n_ex += len(group)
        n_tok += int(enc["attention_mask"].sum())
    return total, n_ex, n_tok


def train(lm, sampler: ExampleSampler, cfg: TeachConfig, progress: bool = True) -> dict:
    """Run ``cfg.steps`` optimisation steps (LoRA + vision side) with a progress bar; return statistics.

    With ``cfg.align_steps`` > 0 and at least two known people, the vision side is first aligned with the
    people's name embeddings (:func:`asru.demo.align_vision.align_vision`) and the alignment term (weight
    ``cfg.align_weight``) stays in the teaching loss.
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    align, align_stats = None, None
    if cfg.align_steps > 0 and len(sampler.people) >= 2:
        align_stats = align_vision(lm, sampler.people, sampler.draw, cfg, progress=progress)
        if cfg.align_weight > 0:
            align = (name_targets(lm, sampler.people), cfg.align_weight, cfg.align_temperature)
    lora, vision = add_lora(lm, cfg)
    opt = torch.optim.AdamW([{"params": lora, "lr": cfg.lr}, {"params": vision, "lr": cfg.vision_lr}], weight_decay=0.0)
    warmup = max(1, min(10, cfg.steps // 10))
    feature_norm = embedding_norm(lm)  # image features are kept at the scale of the text embeddings

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, cfg.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    lm.model.train()
    curve, tokens, t0 = [], 0, time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="teaching", disable=not progress, dynamic_ncols=True)
    ema = None
    for step in bar:
        batch = sampler.batch()
        opt.zero_grad(set_to_none=True)
        item_losses: dict[int, float] = {}
        loss_sum, n_ex, n_tok = answer_loss(lm, batch, feature_norm=feature_norm if cfg.feature_norm_weight > 0 else None,
                                            feature_norm_weight=cfg.feature_norm_weight, general_kl=cfg.general_kl,
                                            align=align, first_token_weight=cfg.first_token_weight,
                                            item_losses=item_losses, reduction=cfg.answer_reduction)
        loss = loss_sum / n_ex
        loss.backward()
        sampler.record_losses(item_losses)
        torch.nn.utils.clip_grad_norm_(lora + vision, 1.0)
        opt.step()
        sched.step()
        tokens += n_tok
        value = float(loss.detach())
        if not math.isfinite(value):
            raise AsruError(f"teaching diverged (loss {value} at step {step}): lower teach.lr / teach.vision_lr")
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        curve.append(round(value, 4))
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{tokens / elapsed:.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    lm.model.eval()
    tps = tokens / seconds if seconds > 0 else 0.0
    LOG.info("teaching: %d steps in %.0f s (%.2f s/step, %.0f tokens/s), loss %.3f -> %.3f",
             cfg.steps, seconds, seconds / cfg.steps, tps, curve[0], ema)
    return {
        "steps": cfg.steps, "seconds": round(seconds, 1), "sec_per_step": round(seconds / cfg.steps, 3),
        "tokens": tokens, "tokens_per_s": round(tps, 1), "loss_first": curve[0], "loss_last_ema": round(ema, 4),
        "loss_curve": curve, "threads": torch.get_num_threads(), "vision_alignment": align_stats,
    }


# ------------------------------------------------------------------------------------------- evaluation


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
