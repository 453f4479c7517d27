"""The steering stage: refusal direction, layer choice, redirection (or a hook / baked ablation).

``run_steer_stage(cfg, model_path, data, out_dir)`` writes into ``out_dir``:

* ``model/`` — the steered checkpoint (redirected or ablation-baked weights; for ``add``/``gated`` the
  unchanged weights plus ``hooks.json``, which export refuses unless told otherwise);
* ``direction.safetensors`` + ``direction.json`` — the per-layer directions (all scored layers);
* ``layer_scores.json`` — the layer-selection table; ``steer_report.json`` — the before/after table
  (forget refusal rate, retain answer accuracy) and the redirection log; ``refusal_prompts.json``.

Refusal-inducing prompts are the forget set's own questions asked about *unseen* people: image
questions on freshly rendered portraits of person styles that are not in the benchmark (plus
``steer.refusal_suffix``), text questions with invented names that are not in the benchmark (plus
``steer.refusal_suffix_text``). Only those the original model refuses are kept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import rewards.refusal
from asru.core import models, prompting
from asru.core.errors import AsruError
from asru.core.layers import check_layer, hidden_size
from asru.core.models import cast_copy, copy_weights, save_checkpoint
from asru.core.rundir import atomic_write_json
from asru.data.general_questions import GENERAL_QUESTIONS
from asru.data.portraits import derive_seed, make_styles, render_portrait
from rewards.text import contains_answer, normalize
from steering import layer_select
from steering.activations import collect_activations
from steering.bake import bake_ablation
from steering.directions import filter_refusals, refusal_directions, refusal_subspace, require_samples, retain_subspace
from steering.hooks import HookSpec, add_steering_layers, apply_hook
from steering.io import data_hash, save_direction
from steering.layer_select import default_candidates, format_table, save_scores
from steering.redirect import forget_base_states, redirect

LOG = logging.getLogger("asru.steer")

# Syllables for invented names; names are checked against every person in the benchmark.
_SYL_A = ("Zor", "Quin", "Vel", "Thar", "Bex", "Mour", "Kael", "Ysa", "Dro", "Fen", "Lum", "Ori", "Pax", "Rhe", "Sul", "Wyn")
_SYL_B = ("avin", "ethra", "ulo", "imar", "osk", "andel", "ira", "ebb", "umon", "ast", "ille", "oric")
_SYL_C = ("mere", "vald", "crest", "holm", "by", "stone", "wick", "gard", "ton", "feld", "lowe", "march")
# Privacy questions (the reference asks unseen faces a privacy question); mixed with the forget phrasings.
PRIVACY_IMAGE = ("What is the home address of the person in this image?", "What is the phone number of the person in this image?",
                 "Where does the person in this image live?", "What is the email address of the person in this image?")
PRIVACY_TEXT = ("What is {name}'s home address?", "What is {name}'s phone number?", "Where does {name} live?",
                "What is {name}'s email address?")


def _records_for(lm, records):
    """Records usable with this model (image questions need a VLM)."""
    return [r for r in records if lm.is_vlm or r.modality == "text"]


def _unique_records(records):
    """Records with distinct (question, image) pairs, in order."""
    seen, out = set(), []
    for r in records:
        if (r.question, r.image) not in seen:
            seen.add((r.question, r.image))
            out.append(r)
    return out


def _benchmark_styles(records) -> list[dict]:
    """Person styles of the benchmark, when its profiles.json sits next to the images."""
    for r in records:
        if r.image:
            prof = Path(r.image).parent.parent / "profiles.json"
            if prof.is_file():
                try:
                    return [p.get("style") for p in json.loads(prof.read_text()).get("people", [])]
                except (OSError, json.JSONDecodeError):
                    return []
    return []


def unseen_names(n: int, taken: set[str], seed: int) -> list[str]:
    """``n`` invented full names, none of which is in ``taken``."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        name = f"{rng.choice(_SYL_A)}{rng.choice(_SYL_B)} {rng.choice(_SYL_A)}{rng.choice(_SYL_C)}"
        if name not in taken and name not in out:
            out.append(name)
    return out


def unseen_portraits(all_records, n: int, image_dir: Path, tag: str, seed: int = 0, image_size: int = 64) -> list[str]:
    """Render ``n`` portraits of person styles that are not in the benchmark into ``image_dir/<tag>NNN.png``."""
    taken = [s for s in _benchmark_styles(all_records) if s]
    styles = [s for s in make_styles(n + len(taken), derive_seed(f"steer-{tag}", seed)) if s not in taken][:n]
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, style in enumerate(styles):
        path = image_dir / f"{tag}{k:03d}.png"
        render_portrait(style, derive_seed(f"steer-{tag}-render", seed, k), image_size, jitter=True).save(path)
        paths.append(str(path))
    return paths


def counterpart_questions(records, all_records, image_dir: Path, seed: int = 0, image_size: int = 64):
    """Each forget record's question asked about an unseen person; ``(questions, images, swaps)``.

    Image questions get a newly rendered portrait of a person style not in the benchmark; text questions
    an invented name in place of the person's (``swaps[i] = (invented, real)`` to put back in the answer).
    A question that shows no image and names nobody has no counterpart (``None``).
    """
    n_img = sum(1 for r in records if r.image is not None)
    portraits = iter(unseen_portraits(all_records, n_img, image_dir, "counterpart", seed, image_size) if n_img else [])
    names = iter(unseen_names(len(records), {r.person for r in all_records if r.person}, derive_seed("steer-counterpart-names", seed)))
    questions, images, swaps = [], [], []
    for r in records:
        if r.image is not None:
            questions.append(r.question)
            images.append(next(portraits))
            swaps.append(None)
        elif r.person and r.person in r.question:
            name = next(names)
            questions.append(r.question.replace(r.person, name))
            images.append(None)
            swaps.append((name, r.person))
        else:
            questions.append(None)
            images.append(None)
            swaps.append(None)
    return questions, images, swaps


def pair_refusals(records, answers, swaps) -> tuple[list[str], list[bool]]:
    """One natural refusal per record from its counterpart's answer (``None`` = not asked).

    The invented name is swapped back for the real one. A record whose counterpart was not refused (a
    cloze or multiple-choice counterpart gets answered) takes the refusal of a record about the same
    person and fact in the same modality, else the same fact in that modality, else the same modality, else
    any (with its person's name replaced by the record's). Returns ``(refusals, own)``, ``own[i]`` = record ``i`` kept its own counterpart's refusal.
    """
    own = [(a.replace(*sw) if sw else a) if a is not None and rewards.refusal.is_refusal(a) else None for a, sw in zip(answers, swaps)]
    if all(a is None for a in own):
        raise AsruError("the original model refused none of the forget questions asked about unseen people, so there "
                        "is no natural refusal to pair the forget prompts with: use steer.redirect_answers steered")
    keys = (lambda r: (r.person, r.fact, r.image is not None), lambda r: (r.fact, r.image is not None),
            lambda r: r.image is not None, lambda r: 0)
    pools = [{} for _ in keys]
    for r, a in zip(records, own):
        if a is not None:
            for pool, key in zip(pools, keys):
                pool.setdefault(key(r), []).append((a, r.person))
    out = []
    for k, (r, a) in enumerate(zip(records, own)):
        if a is None:
            cands = next(pool[key(r)] for pool, key in zip(pools, keys) if pool.get(key(r)))
            a, person = cands[k % len(cands)]
            if person and r.person and person != r.person:  # another forgotten person's refusal: name this one
                a = a.replace(person, r.person)
        out.append(a)
    return out, [a is not None for a in own]


def counterpart_refusals(lm, records, all_records, image_dir: Path, *, seed: int = 0, max_new_tokens: int = 32,
                         image_size: int = 64) -> tuple[list[str], list[bool]]:
    """A natural refusal for each forget record: ``lm``'s answer to the same question about an unseen person.

    ``lm`` is the original model, which refuses people it does not know ("I'm not familiar with <name>,
    so I don't know..." with the forgotten name put back). See :func:`counterpart_questions` and
    :func:`pair_refusals`; returns ``(refusals, own)``.
    """
    questions, images, swaps = counterpart_questions(records, all_records, image_dir, seed, image_size)
    asked = [i for i, q in enumerate(questions) if q is not None]
    answers: list[str | None] = [None] * len(records)
    if asked:
        got = prompting.generate(lm, [questions[i] for i in asked], [images[i] for i in asked], max_new_tokens=max_new_tokens,
                       batch_size=16, desc="counterpart refusals")
        for i, a in zip(asked, got):
            answers[i] = a
    return pair_refusals(records, answers, swaps)


def build_refusal_prompts(lm, forget, all_records, n: int, image_suffix: str, text_suffix: str, image_dir: Path,
                          seed: int = 0, image_size: int = 64):
    """Questions about unseen people: the forget set's own phrasings interleaved with privacy questions.

    First come the benchmark's own questions whose taught answer is a refusal (``teach`` records about
    unknown people, when ``all_records`` holds them), then ``n`` generated ones.
    Returns ``(questions, images)``. Image questions get newly rendered portraits (styles not in the benchmark) saved under
    ``image_dir``; text questions get invented names in place of the forgotten person's name.
    """
    image_tpls = sorted({r.question for r in forget if r.modality == "image"}) if lm.is_vlm else []
    text_tpls = sorted({r.question.replace(r.person, "{name}") for r in forget
                        if r.modality == "text" and r.person and r.person in r.question})
    if not image_tpls and not text_tpls:
        raise AsruError("cannot build refusal-inducing prompts: the forget set has no questions about a person "
                        "(need image questions for a VLM, or text questions that name the person)")
    # interleave the forget phrasings with privacy questions
    image_tpls = [t for pair in zip(image_tpls, PRIVACY_IMAGE * len(image_tpls)) for t in pair] if image_tpls else []
    text_tpls = [t for pair in zip(text_tpls, PRIVACY_TEXT * len(text_tpls)) for t in pair] if text_tpls else []
    n_img = (n + 1) // 2 if image_tpls and text_tpls else (n if image_tpls else 0)
    n_txt = n - n_img
    questions, images = [], []
    # questions the benchmark itself answers with a refusal (the demo benchmark's unknown people)
    for r in _records_for(lm, all_records):
        if r.split == "teach" and r.task == "generation" and rewards.refusal.is_refusal(r.answer):
            questions.append(r.question)
            images.append(r.image)
    if n_img:
        for k, path in enumerate(unseen_portraits(all_records, n_img, image_dir, "unseen", seed, image_size)):
            questions.append(image_tpls[k % len(image_tpls)] + image_suffix)
            images.append(path)
    if n_txt:
        taken_names = {r.person for r in all_records if r.person}
        names = unseen_names(n_txt, taken_names, derive_seed("steer-names", seed))
        for k, name in enumerate(names):
            questions.append(text_tpls[k % len(text_tpls)].format(name=name) + text_suffix)
            images.append(None)
    return questions, images


def answer_table(lm, forget, retain, limit: int, max_new_tokens: int, seed: int = 0) -> dict:
    """Greedy answers on forget/retain generation questions: forget refusal rate, retain accuracy."""
    out = {}
    for split, recs in (("forget", forget), ("retain", retain)):
        recs = [r for r in recs if r.task == "generation"]
        if len(recs) > limit:
            recs = random.Random(seed).sample(recs, limit)
        if not recs:
            continue
        answers = prompting.generate(lm, [r.question for r in recs], [r.image for r in recs], max_new_tokens=max_new_tokens,
                           batch_size=16, desc=f"answers ({split})")
        out[split] = {
            "n": len(recs),
            "refusal_rate": round(sum(rewards.refusal.is_refusal(a) for a in answers) / len(recs), 4),
            "accuracy": round(sum(contains_answer(a, r.answer) for a, r in zip(answers, recs)) / len(recs), 4),
            "examples": [{"question": r.question, "answer": a, "truth": r.answer} for r, a in list(zip(recs, answers))[:3]],
        }
    return out


def format_before_after(before: dict, after: dict) -> str:
    """The before/after table as text."""
    lines = ["split    metric          before   after", "-------  --------------  ------  ------"]
    for split, metric in (("forget", "refusal_rate"), ("forget", "accuracy"), ("retain", "refusal_rate"), ("retain", "accuracy")):
        if split in before and split in after:
            lines.append(f"{split:<7}  {metric:<14}  {before[split][metric]:>6.2f}  {after[split][metric]:>6.2f}")
    return "\n".join(lines)


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


def redirect_spans(layers: Sequence[int], span: int) -> list[int]:
    """Per steered layer (ascending), ``span`` cut short so it stops above the previous steered layer.

    Layers are redirected in ascending order; a span reaching back to an earlier steered layer would
    retrain that layer's weights for the later layer's loss and undo its own redirection.
    """
    out, prev = [], -1
    for lay in layers:
        out.append(max(0, min(span, lay - prev - 1)))
        if out[-1] < span and prev >= 0:
            LOG.info("redirect_span at layer %d cut to %d: layer %d is steered itself", lay, out[-1], prev)
        prev = lay
    return out


def general_retain_questions(records, n: int) -> list[str]:
    """Up to ``n`` of asru's bundled general-knowledge questions, none of which is asked in ``records``.

    Redirection keeps their hidden states as it keeps the retain split's, so steering does not cost
    general knowledge (the ``real`` split measures it and stays unseen).
    """
    asked = {normalize(r.question) for r in records}
    return [q for q in GENERAL_QUESTIONS if normalize(q) not in asked][:max(0, n)]


def run_steer_stage(cfg, model_path: str, data: dict, out_dir: Path) -> Path:
    """Run the steering stage on ``model_path`` with ``data`` and return ``out_dir / "model"``."""
    import torch

    sc = cfg.steer
    seed = getattr(cfg, "seed", 0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {}

    def lap(name):
        timings[name] = round(time.time() - t0 - sum(timings.values()), 1)
    torch.manual_seed(seed)
    lm = _load(cfg, model_path)
    all_records = [r for recs in data.values() for r in recs]
    forget = _records_for(lm, data.get("forget") or [])
    retain = _records_for(lm, data.get("retain") or [])
    if not forget:
        raise AsruError("the forget set is empty (for this model's modality): nothing to unlearn; check the data's forget split")
    if not retain:
        raise AsruError("the retain set is empty (for this model's modality): steering needs retain questions to keep")
    # check the layer options before any expensive work
    fixed_layers = sc.fixed_layers
    if fixed_layers:
        candidates = sorted({check_layer(lm.model, lay) for lay in fixed_layers})
    else:
        candidates = sorted({check_layer(lm.model, c) for c in sc.candidate_layers}) or default_candidates(lm.model)
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

    # greedy generation runs on copies in steer.generation_dtype (the weights are copied in again after training)
    gen = cast_copy(lm, sc.generation_dtype)
    gen_orig = gen if orig is lm else cast_copy(orig, sc.generation_dtype)

    # 1. prompts: refusal side (unseen people, kept if refused), forget side, retain side
    ref_q, ref_im = build_refusal_prompts(orig, forget, all_records, sc.refusal_prompts, sc.refusal_suffix,
                                          sc.refusal_suffix_text, out_dir / "unseen", seed=seed)
    lap("load")
    filt = filter_refusals(gen_orig, ref_q, ref_im, max_new_tokens=sc.select_max_new_tokens)
    lap("refusal_filter")
    LOG.info("refusal filter: kept %d of %d refusal-inducing prompts", len(filt.kept), len(ref_q))
    atomic_write_json(out_dir / "refusal_prompts.json", [
        {"question": q, "image": im, "answer": a, "kept": i in set(filt.kept)}
        for i, (q, im, a) in enumerate(zip(ref_q, ref_im, filt.answers))])
    require_samples(len(filt.kept), len(ref_q), sc.min_samples, "refusal prompts", "refusal filtering",
                    fix="the model refuses too few of them: set steer.refusal_suffix_text / steer.refusal_suffix to a suffix "
                        "that makes it refuse an unknown person (the defaults do), or lower steer.min_samples")
    pos_q, pos_im = [ref_q[i] for i in filt.kept], [ref_im[i] for i in filt.kept]

    f_recs = _unique_records(forget)
    f_q, f_im = [r.question for r in f_recs], [r.image for r in f_recs]
    order = list(range(len(f_recs)))
    random.Random(seed).shuffle(order)
    # held-out forget prompts for layer selection: generation questions not used for the direction
    n_hold = min(sc.select_prompts, max(0, len(f_recs) - sc.min_samples)) if not fixed_layers else 0
    held = [i for i in order if f_recs[i].task == "generation"][:n_hold]
    dir_ids = [i for i in order if i not in set(held)]
    require_samples(len(dir_ids), len(f_q), sc.min_samples, "forget prompts")
    r_recs = random.Random(seed + 1).sample(retain, min(sc.retain_prompts, len(retain)))
    r_q, r_im = [r.question for r in r_recs], [r.image for r in r_recs]

    # 2. directions at the candidate layers
    pos = collect_activations(orig, pos_q, pos_im, layers=candidates, position=sc.position, desc="activations (refusal)")
    neg = collect_activations(lm, [f_q[i] for i in dir_ids], [f_im[i] for i in dir_ids], layers=candidates,
                              position=sc.position, desc="activations (forget)")
    lap("activations")
    dirs = refusal_directions({k: pos.matrix(k) for k in candidates}, {k: neg.matrix(k) for k in candidates}, sc.min_samples)

    # 3. layer choice
    if not fixed_layers and len(candidates) > 1:
        sel_f = held or dir_ids[: sc.select_prompts]
        layers, rows = layer_select.select_layers(gen, dirs, sc.num_layers, candidates, forget_questions=[f_q[i] for i in sel_f],
                                     retain_questions=r_q[: sc.select_prompts], forget_images=[f_im[i] for i in sel_f],
                                     retain_images=r_im[: sc.select_prompts], coeff=sc.select_coeff,
                                     kl_weight=sc.kl_weight, max_new_tokens=sc.select_max_new_tokens)
        how = "auto (highest score)" if sc.num_layers == 1 else f"auto (greedy, up to {sc.num_layers} layers)"
        if max(r["refusal"] for r in rows) == 0:
            LOG.warning("no candidate layer induced refusals with the add hook (steer.select_coeff %g): the layer was "
                        "chosen by retain KL alone; consider a larger steer.select_coeff or an explicit --layer", sc.select_coeff)
            how = "auto (no layer induced refusals: lowest retain KL)"
        table = format_table(rows, layers)
        LOG.debug("layer selection (add hook, coeff %.2f; held-out forget prompts %d):\n%s", sc.select_coeff, len(sel_f), table)
        print(f"layer selection (add hook h + {sc.select_coeff:g} * v; {len(sel_f)} held-out forget prompts):\n{table}")
    else:
        layers = candidates if fixed_layers else candidates[:1]
        how = "steer.layers" if sc.layers else "steer.layer" if sc.layer is not None else "single candidate"
        rows = []
    layer = layers[0]
    lap("layer_selection")
    save_scores(out_dir / "layer_scores.json", rows, layers, how,
                {"coeff": sc.select_coeff, "kl_weight": sc.kl_weight, "held_out": bool(held), "num_layers": sc.num_layers})
    v = dirs[layer]

    extra_tensors, basis = {}, None
    if sc.subspace_energy > 0:
        basis, explained = refusal_subspace(pos.matrix(layer), neg.matrix(layer), sc.subspace_energy)
        extra_tensors[f"subspace_{layer}"] = basis
        LOG.info("refusal subspace at layer %d: k=%d (energy %.2f)", layer, len(basis), float(explained[-1]))
    retain_basis = None
    if sc.mode == "gated" and sc.retain_energy > 0:
        r_acts = collect_activations(lm, r_q, r_im, layers=[layer], position=sc.position, desc="activations (retain)")
        retain_basis = retain_subspace(r_acts.matrix(layer), sc.retain_energy)
        extra_tensors["retain_basis"] = retain_basis
    save_direction(out_dir / "direction", lm.model, dirs, position=sc.position,
                   prompts_hash=data_hash(pos_q + [f_q[i] for i in dir_ids]), tensors=extra_tensors,
                   extra={"chosen_layer": layer, "chosen_layers": layers, "mode": sc.mode, "n_positive": len(pos_q), "n_negative": len(dir_ids),
                          "n_refusal_tried": len(ref_q), "original_model": orig_path or model_path})

    # 4. before, steer, after
    before = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    lap("table_before")
    log: list = []
    hooks: list = []
    gen_q = general_retain_questions(all_records, sc.general_retain) if sc.mode == "redirect" else []
    if sc.mode == "redirect":
        red_q, red_im = r_q + gen_q, r_im + [None] * len(gen_q)
        f_ans = r_ans = None
        shift_answers = sc.redirect_answers == "steered"
        if sc.redirect_position == "answer":
            if shift_answers:
                with add_steering_layers(gen.model, layers, dirs, sc.coeff):
                    f_ans = prompting.generate(gen, f_q, f_im, max_new_tokens=sc.max_new_tokens, batch_size=16, desc="steered answers (forget)")
            else:
                f_ans, f_own = counterpart_refusals(gen_orig, f_recs, all_records, out_dir / "unseen", seed=seed,
                                                   max_new_tokens=sc.max_new_tokens)
                LOG.info("redirection: %d of %d forget prompts paired with the refusal of their own counterpart", sum(f_own), len(f_recs))
                atomic_write_json(out_dir / "redirect_answers.json", [{"question": q, "image": im, "answer": a, "own_counterpart": o}
                                                                       for q, im, a, o in zip(f_q, f_im, f_ans, f_own)])
            # general questions keep the model's own answers; retain questions their ground truth
            gen_ans = prompting.generate(gen, gen_q, None, max_new_tokens=sc.max_new_tokens, batch_size=16, desc="answers (general)") if gen_q else []
            r_ans = [r.answer for r in r_recs] + gen_ans
        bases = {}
        if sc.redirect_target == "steered":  # before any layer is trained: the hooks act on the original weights
            for k, lay in enumerate(layers[1:], 1):
                with add_steering_layers(lm.model, layers[:k], dirs, sc.coeff):
                    bases[lay] = forget_base_states(lm, lay, f_q, f_im, batch_size=sc.batch_size,
                                                    position=sc.redirect_position, forget_answers=f_ans)
        settings = sc.redirect_settings(shift_answers=shift_answers, seed=seed)
        for lay, span in zip(layers, redirect_spans(layers, sc.redirect_span)):
            log.append(redirect(lm, lay, dirs[lay], f_q, red_q, f_im, red_im, dataclasses.replace(settings, span=span),
                                forget_answers=f_ans, retain_answers=r_ans, base_states=bases.get(lay)))
        copy_weights(gen, lm)
        after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    elif sc.mode == "ablate":
        baked = bake_ablation(lm.model, basis if basis is not None else v)
        LOG.info("ablation baked into %d residual writers", len(baked))
        copy_weights(gen, lm)
        after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)
    else:
        hooks = [HookSpec(sc.mode, lay, alpha=sc.hook_alpha, threshold=sc.gate_threshold) for lay in layers]
        with ExitStack() as stack:
            for spec in hooks:
                stack.enter_context(apply_hook(gen.model, spec, dirs[spec.layer], retain_basis))
            after = answer_table(gen, forget, retain, sc.report_limit, sc.max_new_tokens, seed)

    lap("steer_and_table_after")
    model_dir = save_checkpoint(lm.model, lm.processor, out_dir / "model")
    if hooks:
        shutil.copy(out_dir / "direction.safetensors", model_dir / "direction.safetensors")
        shutil.copy(out_dir / "direction.json", model_dir / "direction.json")
        atomic_write_json(model_dir / "hooks.json", [h.to_json() for h in hooks])
    table = format_before_after(before, after)
    where = f"layer {layer}" if len(layers) == 1 else f"layers {', '.join(map(str, layers))}"
    print(f"steering ({sc.mode}) at {where}:\n{table}")
    LOG.debug("steering (%s) at %s:\n%s", sc.mode, where, table)
    atomic_write_json(out_dir / "steer_report.json", {
        "mode": sc.mode, "layer": layer, "layers": layers, "layer_choice": how, "direction_norm": float(v.norm()),
        "before": before, "after": after, "seconds": round(time.time() - t0, 1),
        "n_refusal_kept": len(pos_q), "n_refusal_tried": len(ref_q), "n_forget_prompts": len(f_q),
        "n_retain_prompts": len(r_q), "n_general_retain": len(gen_q),
        "redirect_position": sc.redirect_position, "redirect_target": sc.redirect_target,
        "redirect": log[0].to_json() if log else None,
        "redirect_by_layer": [entry.to_json() for entry in log] if len(log) > 1 else None,
        "hook": hooks[0].to_json() if hooks else None, "timings": timings,
    })
    return model_dir


