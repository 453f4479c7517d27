"""The steering stage: refusal direction, layer choice, redirection (or a hook / baked ablation).

``run_steer_stage(cfg, model_path, data, out_dir)`` writes into ``out_dir``:

* ``model/`` — the steered checkpoint (redirected or ablation-baked weights; for ``add``/``gated`` the
  unchanged weights plus ``hooks.json``, which export refuses unless told otherwise);
* ``direction.safetensors`` + ``direction.json`` — the per-layer directions (all scored layers);
* ``layer_scores.json`` — the layer-selection table; ``steer_report.json`` — the before/after table
  (forget refusal rate, retain answer accuracy) and the redirection log; ``refusal_prompts.json``.

The refusal side of the direction is the forget set's own questions asked about *unseen* people
(:mod:`asru.stages.steer.refusals`); only those the original model refuses are kept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from asru.core import models
from asru.core.errors import AsruError
from asru.core.layers import check_layer, hidden_size
from asru.core.models import cast_copy, copy_weights, model_identity, save_checkpoint
from asru.core.rundir import atomic_write_json
from asru.stages.steer.finalists import redirect_and_score
from asru.stages.steer.prompts import SteerPrompts
from asru.stages.steer.redirection import RedirectRows, redirection_rows, train_redirection
from asru.stages.steer.refusals import build_refusal_prompts, usable_records
from asru.stages.steer.search import screen_set, search_steering, write_chosen_config
from asru.stages.steer.tables import answer_table, format_before_after
from steering import layer_select
from steering.activations import collect_activations
from steering.bake import bake_ablation
from steering.directions import filter_refusals, refusal_directions, refusal_subspace, require_samples, retain_subspace
from steering.hooks import HookSpec, apply_hook
from steering.io import data_hash, save_direction
from steering.layer_select import default_candidates, format_table, save_scores

LOG = logging.getLogger("asru.steer")


def _unique_records(records):
    """Records with distinct (question, image) pairs, in order."""
    seen, out = set(), []
    for r in records:
        if (r.question, r.image) not in seen:
            seen.add((r.question, r.image))
            out.append(r)
    return out


def recorded_base_model(model_path) -> str | None:
    """The base model a taught model was built from (``teach_report.json``'s ``base_model``), if it exists.

    The demo VLM records the untaught model it was fine-tuned from; with ``steer.original_model: base``
    that is the reference's "original model" whose refusals give the positive side of the direction.
    """
    report = Path(model_path) / "teach_report.json"
    try:
        base = json.loads(report.read_text(encoding="utf-8")).get("base_model") if report.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return str(base) if base and (Path(base) / "config.json").is_file() else None


def _load(cfg, path):
    m = cfg.model
    return models.load_model(path, dtype=m.dtype, device=m.device, trust_remote_code=m.trust_remote_code,
                      attn_implementation=m.attn_implementation)


class StageTimer:
    """Seconds since the stage started, and per phase: ``lap(name)`` ends the phase ``name``."""

    def __init__(self):
        self.start = time.time()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        self.timings[name] = round(time.time() - self.start - sum(self.timings.values()), 1)

    def elapsed(self) -> float:
        return round(time.time() - self.start, 1)


@dataclasses.dataclass
class SteerModels:
    """The model being unlearned, the original model (the refusal side; may be the same) and their
    generation copies in ``steer.generation_dtype``."""

    model: object
    original: object
    original_path: str | None
    generation: object
    original_generation: object


def forget_and_retain(lm, data: dict) -> tuple[list, list]:
    """The forget and retain records usable with ``lm``; a one-line error when either is empty."""
    forget = usable_records(lm, data.get("forget") or [])
    retain = usable_records(lm, data.get("retain") or [])
    if not forget:
        raise AsruError("the forget set is empty (for this model's modality): nothing to unlearn; check the data's forget split")
    if not retain:
        raise AsruError("the retain set is empty (for this model's modality): steering needs retain questions to keep")
    return forget, retain


def candidate_layers(lm, sc) -> list[int]:
    """The layers the direction is computed at (the fixed layers, else the candidates), checked before any expensive work."""
    if sc.fixed_layers:
        return sorted({check_layer(lm.model, lay) for lay in sc.fixed_layers})
    return sorted({check_layer(lm.model, c) for c in sc.candidate_layers}) or default_candidates(lm.model)


def load_original_model(cfg, model_path: str, lm):
    """The original model whose refusals give the direction's positive side, and its path (``None``: ``lm`` itself)."""
    sc = cfg.steer
    orig_path = sc.original_model
    if orig_path == "base":
        orig_path = recorded_base_model(model_path)
        if orig_path is None:
            raise AsruError(f"steer.original_model is 'base' but {model_path} records no base model (teach_report.json); "
                            "name the original model's path instead")
    orig = _load(cfg, orig_path) if orig_path else lm
    LOG.info("refusal side from %s", orig_path or f"{model_path} (the model being unlearned)")
    if orig is not lm and hidden_size(orig.model) != hidden_size(lm.model):
        raise AsruError(f"steer.original_model {sc.original_model} has hidden size {hidden_size(orig.model)}, "
                        f"the model to unlearn has {hidden_size(lm.model)}: use the same base model")
    return orig, orig_path


def refusal_side_prompts(steer_models: SteerModels, forget, all_records, sc, out_dir: Path, seed: int, timer: StageTimer):
    """Refusal-inducing prompts and those the original model refuses (written to ``refusal_prompts.json``).

    Returns ``(tried_questions, kept_questions, kept_images)``.
    """
    ref_q, ref_im = build_refusal_prompts(steer_models.original, forget, all_records, sc.refusal_prompts, sc.refusal_suffix,
                                          sc.refusal_suffix_text, out_dir / "unseen", seed=seed)
    timer.lap("load")
    filt = filter_refusals(steer_models.original_generation, ref_q, ref_im, max_new_tokens=sc.select_max_new_tokens,
                           progress=True)
    timer.lap("refusal_filter")
    LOG.info("refusal filter: kept %d of %d refusal-inducing prompts", len(filt.kept), len(ref_q))
    atomic_write_json(out_dir / "refusal_prompts.json", [
        {"question": q, "image": im, "answer": a, "kept": i in set(filt.kept)}
        for i, (q, im, a) in enumerate(zip(ref_q, ref_im, filt.answers))])
    require_samples(len(filt.kept), len(ref_q), sc.min_samples, "refusal prompts", "refusal filtering",
                    fix="the model refuses too few of them: set steer.refusal_suffix_text / steer.refusal_suffix to a suffix "
                        "that makes it refuse an unknown person (the defaults do), or lower steer.min_samples")
    return ref_q, [ref_q[i] for i in filt.kept], [ref_im[i] for i in filt.kept]


def stage_prompts(steer_models: SteerModels, forget, retain, all_records, sc, out_dir: Path, seed: int,
                  timer: StageTimer) -> SteerPrompts:
    """The refusal, forget and retain prompts; forget generation questions are held out for layer selection."""
    ref_tried, pos_q, pos_im = refusal_side_prompts(steer_models, forget, all_records, sc, out_dir, seed, timer)
    f_recs = _unique_records(forget)
    order = list(range(len(f_recs)))
    random.Random(seed).shuffle(order)
    # held-out forget prompts for layer selection: generation questions not used for the direction
    n_hold = min(sc.select_prompts, max(0, len(f_recs) - sc.min_samples)) if not sc.fixed_layers else 0
    held = [i for i in order if f_recs[i].task == "generation"][:n_hold]
    dir_ids = [i for i in order if i not in set(held)]
    require_samples(len(dir_ids), len(f_recs), sc.min_samples, "forget prompts")
    r_recs = random.Random(seed + 1).sample(retain, min(sc.retain_prompts, len(retain)))
    return SteerPrompts(
        refusal_tried=ref_tried, refusal_questions=pos_q, refusal_images=pos_im, forget_records=f_recs,
        forget_questions=[r.question for r in f_recs], forget_images=[r.image for r in f_recs], held_out=held,
        direction_ids=dir_ids, retain_records=r_recs, retain_questions=[r.question for r in r_recs],
        retain_images=[r.image for r in r_recs])


def candidate_directions(steer_models: SteerModels, prompts: SteerPrompts, candidates: list[int], sc, timer: StageTimer):
    """Refusal (original model) and forget (model being unlearned) activations at the candidate layers and the
    per-layer directions; returns ``(refusal_acts, forget_acts, directions)``."""
    p = prompts
    pos = collect_activations(steer_models.original, p.refusal_questions, p.refusal_images, layers=candidates,
                              position=sc.position, desc="activations (refusal)", progress=True)
    neg = collect_activations(steer_models.model, [p.forget_questions[i] for i in p.direction_ids],
                              [p.forget_images[i] for i in p.direction_ids], layers=candidates,
                              position=sc.position, desc="activations (forget)", progress=True)
    timer.lap("activations")
    dirs = refusal_directions({k: pos.matrix(k) for k in candidates}, {k: neg.matrix(k) for k in candidates}, sc.min_samples)
    return pos, neg, dirs


def choose_layers(generation, dirs, candidates: list[int], prompts: SteerPrompts, sc) -> tuple[list[int], list, str]:
    """The steered layers (selected with the add hook on held-out forget prompts, or as configured),
    the selection table's rows and how they were chosen."""
    if sc.fixed_layers or len(candidates) <= 1:
        how = "steer.layers" if sc.layers else "steer.layer" if sc.layer is not None else "single candidate"
        return (candidates if sc.fixed_layers else candidates[:1]), [], how
    p, n = prompts, sc.select_prompts
    sel_f = p.held_out or p.direction_ids[:n]
    layers, rows = layer_select.select_layers(
        generation, dirs, sc.num_layers, candidates, forget_questions=[p.forget_questions[i] for i in sel_f],
        retain_questions=p.retain_questions[:n], forget_images=[p.forget_images[i] for i in sel_f],
        retain_images=p.retain_images[:n], coeff=sc.select_coeff, kl_weight=sc.kl_weight,
        max_new_tokens=sc.select_max_new_tokens)
    how = "auto (highest score)" if sc.num_layers == 1 else f"auto (greedy, up to {sc.num_layers} layers)"
    if max(r["refusal"] for r in rows) == 0:
        LOG.warning("no candidate layer induced refusals with the add hook (steer.select_coeff %g): the layer was "
                    "chosen by retain KL alone; consider a larger steer.select_coeff or an explicit --layer", sc.select_coeff)
        how = "auto (no layer induced refusals: lowest retain KL)"
    table = format_table(rows, layers)
    LOG.debug("layer selection (add hook, coeff %.2f; held-out forget prompts %d):\n%s", sc.select_coeff, len(sel_f), table)
    print(f"layer selection (add hook h + {sc.select_coeff:g} * v; {len(sel_f)} held-out forget prompts):\n{table}")
    return layers, rows, how


def search_settings(cfg, steer_models: SteerModels, dirs, candidates: list[int], prompts: SteerPrompts, retain, all_records,
                    out_dir: Path, model_path: str, seed: int):
    """The steering search (:mod:`asru.stages.steer.search`, finalists by :mod:`asru.stages.steer.finalists`):
    the chosen trial, written as ``chosen.yaml``, and the redirection rows the finalists were trained on
    (``None`` when there were none, or when they depend on the layers: ``steer.redirect_answers steered``)."""
    sc = cfg.steer
    built: dict = {}

    def rows_for(layers, coeff):
        if sc.redirect_answers == "steered" or "rows" not in built:
            built["rows"] = redirection_rows(steer_models, layers, dirs, prompts, all_records,
                                             dataclasses.replace(sc, coeff=coeff), out_dir, seed)
        return built["rows"]

    screened = screen_set(prompts, retain, all_records, sc, seed)
    scored_ids = frozenset(r.id for r in screened.finalist_forget_pool)
    check = redirect_and_score(steer_models, dirs, rows_for, sc, seed, scored_ids) if sc.search_finalists else None
    pick = search_steering(steer_models.generation, dirs, candidates, screened, sc, out_dir, model_identity(model_path), seed,
                           check=check)
    write_chosen_config(cfg, pick, out_dir / "chosen.yaml")
    # natural-refusal rows depend neither on the layers nor on the shift: the chosen settings train on them again
    return pick, built.get("rows") if sc.redirect_answers != "steered" else None


def save_directions(out_dir: Path, steer_models: SteerModels, model_path: str, dirs, pos, neg, layers: list[int],
                    prompts: SteerPrompts, sc):
    """Write ``direction.safetensors``/``.json`` (with the refusal subspace and the gated hook's retain basis
    when configured); returns ``(subspace_basis, retain_basis)``, each ``None`` when not computed."""
    layer, lm = layers[0], steer_models.model
    extra_tensors, basis = {}, None
    if sc.subspace_energy > 0:
        basis, explained = refusal_subspace(pos.matrix(layer), neg.matrix(layer), sc.subspace_energy)
        extra_tensors[f"subspace_{layer}"] = basis
        LOG.info("refusal subspace at layer %d: k=%d (energy %.2f)", layer, len(basis), float(explained[-1]))
    retain_basis = None
    if sc.mode == "gated" and sc.retain_energy > 0:
        r_acts = collect_activations(lm, prompts.retain_questions, prompts.retain_images, layers=[layer],
                                     position=sc.position, desc="activations (retain)", progress=True)
        retain_basis = retain_subspace(r_acts.matrix(layer), sc.retain_energy)
        extra_tensors["retain_basis"] = retain_basis
    dir_ids = prompts.direction_ids
    save_direction(out_dir / "direction", lm.model, dirs, position=sc.position,
                   prompts_hash=data_hash(prompts.refusal_questions + [prompts.forget_questions[i] for i in dir_ids]),
                   tensors=extra_tensors,
                   extra={"chosen_layer": layer, "chosen_layers": layers, "mode": sc.mode,
                          "n_positive": len(prompts.refusal_questions), "n_negative": len(dir_ids),
                          "n_refusal_tried": len(prompts.refusal_tried),
                          "original_model": steer_models.original_path or model_path})
    return basis, retain_basis


def steer_and_evaluate(steer_models: SteerModels, layers: list[int], dirs, basis, retain_basis, prompts: SteerPrompts,
                       forget, retain, all_records, sc, out_dir: Path, seed: int, rows: RedirectRows | None = None):
    """Steer as ``steer.mode`` says (redirect, bake the ablation, or hooks) and take the after-table;
    redirection trains ``rows`` when given (the search built them), else builds them.

    Returns ``(after, redirection log, hook specs, general questions)``.
    """
    lm, gen = steer_models.model, steer_models.generation
    log: list = []
    hooks: list = []
    gen_q: list[str] = []
    if sc.mode == "redirect":
        rows = rows or redirection_rows(steer_models, layers, dirs, prompts, all_records, sc, out_dir, seed)
        log, gen_q = train_redirection(lm, layers, dirs, rows, sc, seed), rows.general_questions
        copy_weights(gen, lm)
        after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    elif sc.mode == "ablate":
        baked = bake_ablation(lm.model, basis if basis is not None else dirs[layers[0]])
        LOG.info("ablation baked into %d residual writers", len(baked))
        copy_weights(gen, lm)
        after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    else:
        hooks = [HookSpec(sc.mode, lay, alpha=sc.hook_alpha, threshold=sc.gate_threshold) for lay in layers]
        with ExitStack() as stack:
            for spec in hooks:
                stack.enter_context(apply_hook(gen.model, spec, dirs[spec.layer], retain_basis))
            after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    return after, log, hooks, gen_q


def save_steered_model(lm, out_dir: Path, hooks: list) -> Path:
    """Save the steered checkpoint into ``out_dir/model``; hooks travel with it as ``hooks.json`` + the direction."""
    model_dir = save_checkpoint(lm.model, lm.processor, out_dir / "model")
    if hooks:
        shutil.copy(out_dir / "direction.safetensors", model_dir / "direction.safetensors")
        shutil.copy(out_dir / "direction.json", model_dir / "direction.json")
        atomic_write_json(model_dir / "hooks.json", [h.to_json() for h in hooks])
    return model_dir


def write_steer_report(out_dir: Path, sc, layers: list[int], how: str, dirs, before: dict, after: dict,
                       prompts: SteerPrompts, general_questions: list[str], log: list, hooks: list, timer: StageTimer) -> None:
    """Print the before/after table and write ``steer_report.json``."""
    layer = layers[0]
    table = format_before_after(before, after)
    where = f"layer {layer}" if len(layers) == 1 else f"layers {', '.join(map(str, layers))}"
    print(f"steering ({sc.mode}) at {where}:\n{table}")
    LOG.debug("steering (%s) at %s:\n%s", sc.mode, where, table)
    atomic_write_json(out_dir / "steer_report.json", {
        "mode": sc.mode, "layer": layer, "layers": layers, "layer_choice": how, "direction_norm": float(dirs[layer].norm()),
        "before": before, "after": after, "seconds": timer.elapsed(),
        "n_refusal_kept": len(prompts.refusal_questions), "n_refusal_tried": len(prompts.refusal_tried),
        "n_forget_prompts": len(prompts.forget_questions), "n_retain_prompts": len(prompts.retain_questions),
        "n_general_retain": len(general_questions),
        "redirect_position": sc.redirect_position, "redirect_target": sc.redirect_target,
        "redirect": log[0].to_json() if log else None,
        "redirect_by_layer": [entry.to_json() for entry in log] if len(log) > 1 else None,
        "hook": hooks[0].to_json() if hooks else None, "timings": timer.timings,
    })


def run_steer_stage(cfg, model_path: str, data: dict, out_dir: Path) -> Path:
    """Run the steering stage on ``model_path`` with ``data`` and return ``out_dir / "model"``."""
    import torch

    sc = cfg.steer
    seed = getattr(cfg, "seed", 0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timer = StageTimer()
    torch.manual_seed(seed)
    lm = _load(cfg, model_path)
    all_records = [r for recs in data.values() for r in recs]
    forget, retain = forget_and_retain(lm, data)
    candidates = candidate_layers(lm, sc)
    orig, orig_path = load_original_model(cfg, model_path, lm)
    # greedy generation runs on copies in steer.generation_dtype (the weights are copied in again after training)
    gen = cast_copy(lm, sc.generation_dtype)
    steer_models = SteerModels(lm, orig, orig_path, gen, gen if orig is lm else cast_copy(orig, sc.generation_dtype))

    prompts = stage_prompts(steer_models, forget, retain, all_records, sc, out_dir, seed, timer)
    pos, neg, dirs = candidate_directions(steer_models, prompts, candidates, sc, timer)
    searched_rows = None
    if sc.search and not sc.fixed_layers:
        pick, searched_rows = search_settings(cfg, steer_models, dirs, candidates, prompts, retain, all_records, out_dir,
                                              model_path, seed)
        sc = dataclasses.replace(sc, layers=list(pick.layers), layer=None, coeff=pick.coeff)
        layers, rows, how = list(pick.layers), [], f"search (trial {pick.number}, c {pick.coeff:g})"
    else:
        layers, rows, how = choose_layers(gen, dirs, candidates, prompts, sc)
    timer.lap("layer_selection")
    save_scores(out_dir / "layer_scores.json", rows, layers, how,
                {"coeff": sc.select_coeff, "kl_weight": sc.kl_weight, "held_out": bool(prompts.held_out),
                 "num_layers": sc.num_layers})
    basis, retain_basis = save_directions(out_dir, steer_models, model_path, dirs, pos, neg, layers, prompts, sc)

    before = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    timer.lap("table_before")
    after, log, hooks, general_questions = steer_and_evaluate(steer_models, layers, dirs, basis, retain_basis, prompts,
                                                              forget, retain, all_records, sc, out_dir, seed,
                                                              rows=searched_rows)
    timer.lap("steer_and_table_after")
    model_dir = save_steered_model(lm, out_dir, hooks)
    write_steer_report(out_dir, sc, layers, how, dirs, before, after, prompts, general_questions, log, hooks, timer)
    return model_dir
