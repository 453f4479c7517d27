"""Checks made before a run creates or loads anything: model name, layers, rewards, output directory, data.

:func:`check_run` (every run, before its directory is created) and :func:`check_all` (``--dry-run``,
which also reads the data) raise a one-line :class:`~asru.errors.AsruError` naming the fix; what they
cannot check without loading weights or downloading is returned as notes.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

from asru.core.aliases import model_spec, resolve_model_name
from asru.core.errors import AsruError
from asru.core.rundir import check_run_dir
from asru.data.benchmark import default_data_dir, is_current_benchmark
from asru.data.loaders import available_splits, load_benchmark
from rewards import is_factory, resolve_reward, validate_reward

EVAL_SPLITS_NEEDED = ("forget", "retain", "test", "real")


@dataclass
class ModelFacts:
    """What is known about the model without loading its weights (None = unknown here)."""

    num_layers: int | None = None
    is_vlm: bool | None = None
    notes: list[str] = field(default_factory=list)


def model_facts(name: str, trust_remote_code: bool = False) -> ModelFacts:
    """Layer count and modality of ``name`` from its alias, its local ``config.json`` or the local hub cache."""
    hub_id = resolve_model_name(name)
    spec = model_spec(name) or model_spec(hub_id)
    if spec is not None:
        return ModelFacts(spec.num_layers, spec.is_vlm)
    from transformers import AutoConfig

    try:
        conf = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, local_files_only=True)
    except (OSError, ValueError) as exc:
        if Path(name).is_dir():
            raise AsruError(f"cannot read the config of {name}: {str(exc).splitlines()[0]}") from None
        return ModelFacts(notes=[f"layers and modality of {name}: its config is not on this machine (checked when it loads)"])
    text = conf.get_text_config() if hasattr(conf, "get_text_config") else conf
    return ModelFacts(getattr(text, "num_hidden_layers", None), getattr(conf, "vision_config", None) is not None)


def check_layers(cfg, facts: ModelFacts) -> None:
    """Every layer the config names (``steer.layer(s)``, ``steer.candidate_layers``) exists; negative ones count from the end."""
    n = facts.num_layers
    if n is None:
        return
    named = [("steer.layers" if cfg.steer.layers else "steer.layer", lay) for lay in cfg.steer.fixed_layers]
    named += [("steer.candidate_layers", lay) for lay in cfg.steer.candidate_layers]
    for key, layer in named:
        if not -n <= layer < n:
            raise AsruError(f"{key}: layer {layer} is out of range: {cfg.model.name} has {n} decoder layers "
                            f"(use 0..{n - 1}, or -{n}..-1 to count from the end)")


def check_rewards(cfg) -> list[str]:
    """Resolve every ``rl.rewards`` entry and check what can be checked before it is built.

    A plain reward's signature is checked as TRL will call it; a factory's options against its
    parameters (the reward it builds is checked when the RL stage builds it).
    """
    if "rl" not in cfg.stages or cfg.method != "asru":
        return []
    notes = []
    for spec, value in cfg.rl.rewards.items():
        options = {k: v for k, v in value.items() if k != "weight"} if isinstance(value, dict) else {}
        _, obj = resolve_reward(spec)
        if not is_factory(obj):
            if options:
                raise AsruError(f"reward {spec!r} takes no options (got {', '.join(sorted(options))}); "
                                "make it a factory (a class or @reward_factory) to accept options")
            validate_reward(obj, spec)
            continue
        try:
            params = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            continue
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            unknown = sorted(k for k in options if k not in names)
            if unknown:
                raise AsruError(f"reward {spec!r}: unknown option(s) {', '.join(unknown)} (accepted: {', '.join(sorted(names)) or 'none'})")
        notes.append(f"reward {spec}: a factory; the reward it builds is checked when the RL stage builds it")
    return notes


def _writable_dir(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (``path`` itself when it exists)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(cfg) -> None:
    """The run directory can be used as asked: creatable and writable; non-empty only with
    ``--overwrite``/``--resume``; ``--resume`` only on a directory that holds a run."""
    out = Path(cfg.output_dir) if cfg.output_dir else Path("runs")
    if cfg.output_dir:
        check_run_dir(out, cfg.overwrite, cfg.resume)
    base = _writable_dir(out)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise AsruError(f"output dir {out}: no write access to {base}; choose a writable --output-dir")


def check_run(cfg, output_dir: bool = True) -> ModelFacts:
    """The checks every run makes before creating its directory: model, layers, rewards and (with
    ``output_dir``; only the process that creates it under ``accelerate launch``) the output directory."""
    facts = model_facts(cfg.model.name, cfg.model.trust_remote_code)
    check_layers(cfg, facts)
    check_rewards(cfg)
    if output_dir:
        check_output(cfg)
    return facts


def check_data(cfg, facts: ModelFacts) -> list[str]:
    """Read the benchmark the run will use (every line and image) and check it fits the model's modality."""
    if cfg.data.data_dir:
        data_dir = Path(cfg.data.data_dir)
        if not data_dir.is_dir():
            raise AsruError(f"data directory {data_dir} does not exist: generate one with `asru-data generate --out {data_dir}`")
    else:
        data_dir = default_data_dir(cfg.data)
        if not is_current_benchmark(data_dir):
            return [f"data: the built-in benchmark is generated at run time into {data_dir}"]
    splits = list(EVAL_SPLITS_NEEDED) + (["teach"] if "teach" in available_splits(data_dir) else [])
    data = load_benchmark(data_dir, splits, check_images=True)
    notes = []
    if facts.is_vlm is False:
        # steering and GRPO need text questions of forget and retain; evaluation of every split it scores
        needs_text = {"forget", "retain"} | (set(cfg.eval.splits) if "eval" in cfg.stages else set())
        for split in EVAL_SPLITS_NEEDED:
            images = sum(1 for r in data[split] if r.image)
            if images == len(data[split]) and split in needs_text:
                raise AsruError(f"{data_dir}: every {split} question has an image but {cfg.model.name} is a text model: "
                                f"use a vision-language model{' or drop the split from eval.splits' if split not in ('forget', 'retain') else ''}")
            if images:
                notes.append(f"data: {images} of {len(data[split])} {split} questions have images; the text model skips them")
    elif facts.is_vlm is None:
        notes.append("data: modality not checked (the model's config is not on this machine)")
    return notes


def check_all(cfg) -> tuple[ModelFacts, list[str]]:
    """Everything :func:`check_run` checks, plus the data; returns the model facts and what was not checked."""
    facts = check_run(cfg)
    notes = list(facts.notes) + check_rewards(cfg) + check_data(cfg, facts)
    return facts, notes
