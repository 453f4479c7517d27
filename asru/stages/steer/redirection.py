"""Redirection in the steering stage: the rows it trains and the training of the steered layers.

:func:`redirection_rows` builds what redirection trains (forget prompts with their answers, retain and
bundled general questions with theirs, open questions, other photos and augmented copies);
:func:`train_redirection` trains the steered layers on them, lowest first. The steering search builds the
rows once and trains its finalists on a share of them (:func:`share_of_rows`) before the chosen settings
are trained on all of them.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from asru.core import prompting
from asru.core.rundir import atomic_write_json
from asru.data.general_questions import entity_retain_questions, general_retain_questions
from asru.data.open_questions import open_question_records
from asru.stages.steer.extra_images import augmented_rows, with_augmented_images, with_known_photos
from asru.stages.steer.prompts import SteerPrompts, with_forget_records
from asru.stages.steer.refusals import counterpart_refusals, usable_records
from steering.hooks import add_steering_layers
from steering.redirect import forget_base_states, redirect

LOG = logging.getLogger("asru.steer")


@dataclasses.dataclass
class RedirectRows:
    """What redirection trains: the forget rows (in ``prompts``) with their answers, and the retain rows
    (retain split, bundled general and entity questions, their other photos and copies) with theirs."""

    prompts: SteerPrompts
    forget_answers: list | None
    retain_questions: list[str]
    retain_images: list
    retain_answers: list | None
    general_questions: list[str]


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


def redirection_targets(steer_models, layers: list[int], dirs, prompts: SteerPrompts, general_questions,
                        all_records, sc, out_dir: Path, seed: int):
    """The answers redirection trains at answer positions, ``(forget_answers, retain_answers)``; both
    ``None`` at prompt positions.

    Forget prompts get the steered model's answers (``steer.redirect_answers steered``) or their
    counterparts' natural refusals; retain questions keep their ground truth, general questions the
    model's own answers.
    """
    if sc.redirect_position != "answer":
        return None, None
    gen, f_q, f_im = steer_models.generation, prompts.forget_questions, prompts.forget_images
    if sc.redirect_answers == "steered":
        with add_steering_layers(gen.model, layers, dirs, sc.coeff):
            f_ans = prompting.generate(gen, f_q, f_im, max_new_tokens=sc.max_new_tokens, batch_size=16, desc="steered answers (forget)", progress=True)
    else:
        f_ans, f_own = counterpart_refusals(steer_models.original_generation, prompts.forget_records, all_records,
                                            out_dir / "unseen", seed=seed, max_new_tokens=sc.max_new_tokens,
                                            name_in_refusal=sc.refusal_names == "forgotten")
        LOG.info("redirection: %d of %d forget prompts paired with the refusal of their own counterpart", sum(f_own),
                 len(prompts.forget_records))
        atomic_write_json(out_dir / "redirect_answers.json", [{"question": q, "image": im, "answer": a, "own_counterpart": o}
                                                               for q, im, a, o in zip(f_q, f_im, f_ans, f_own)])
    gen_ans = prompting.generate(gen, general_questions, None, max_new_tokens=sc.max_new_tokens, batch_size=16,
                                 desc="answers (general)", progress=True) if general_questions else []
    return f_ans, [r.answer for r in prompts.retain_records] + gen_ans


def redirection_rows(steer_models, layers: list[int], dirs, prompts: SteerPrompts, all_records, sc, out_dir: Path,
                     seed: int) -> RedirectRows:
    """Every row redirection trains (see the module docstring); ``layers`` and ``dirs`` matter only for
    ``steer.redirect_answers steered``, whose forget answers are the steered model's."""
    lm = steer_models.model
    gen_q = general_retain_questions(all_records, sc.general_retain) + entity_retain_questions(all_records, sc.entity_retain)
    red_q, red_im = prompts.retain_questions + gen_q, prompts.retain_images + [None] * len(gen_q)
    if sc.open_questions:
        opened = usable_records(lm, open_question_records(prompts.forget_records)[0])
        LOG.info("redirection: %d open questions about the forgotten people added", len(opened))
        prompts = with_forget_records(prompts, opened)
    f_ans, r_ans = redirection_targets(steer_models, layers, dirs, prompts, gen_q, all_records, sc, out_dir, seed)
    if sc.known_photos:
        persons = [r.person for r in prompts.retain_records] + [None] * len(gen_q)
        prompts, f_ans, red_q, red_im, r_ans = with_known_photos(prompts, f_ans, red_q, red_im, r_ans, persons, all_records)
    prompts, f_ans = with_augmented_images(prompts, f_ans, sc.image_augment, seed)
    # the retained people's image questions get copies too, so the boundary between them and the
    # forgotten people holds in new photos (forget copies alone make new photos of kept people refused)
    red_q, red_im, r_ans, _ = augmented_rows(red_q, red_im, r_ans, sc.image_augment, seed + 1)
    return RedirectRows(prompts, f_ans, red_q, red_im, r_ans, gen_q)


def share_of_rows(rows: RedirectRows, share: float, seed: int, exclude_ids=frozenset()) -> RedirectRows:
    """A seeded ``share`` of the forget rows and of the retain rows (at least one of each); forget rows whose
    record id is in ``exclude_ids`` (every copy of a held-out question) are never picked."""
    p = rows.prompts

    def pick(rows_of: list[int], salt: int) -> list[int]:
        n = len(rows_of)
        return sorted(random.Random(seed + salt).sample(rows_of, max(1, round(n * share)))) if n else []

    f = pick([i for i, rec in enumerate(p.forget_records) if rec.id not in exclude_ids], 0)
    r = pick(list(range(len(rows.retain_questions))), 1)
    prompts = dataclasses.replace(p, forget_records=[p.forget_records[i] for i in f],
                                  forget_questions=[p.forget_questions[i] for i in f], forget_images=[p.forget_images[i] for i in f])
    return RedirectRows(prompts, [rows.forget_answers[i] for i in f] if rows.forget_answers is not None else None,
                        [rows.retain_questions[i] for i in r], [rows.retain_images[i] for i in r],
                        [rows.retain_answers[i] for i in r] if rows.retain_answers is not None else None,
                        rows.general_questions)


def steered_base_states(lm, layers: list[int], dirs, prompts: SteerPrompts, forget_answers, sc) -> dict:
    """Per later steered layer, its forget states with the earlier layers' add hooks (``steer.redirect_target
    steered``), taken before any layer is trained so the hooks act on the original weights; else ``{}``."""
    bases = {}
    if sc.redirect_target == "steered":
        for k, lay in enumerate(layers[1:], 1):
            with add_steering_layers(lm.model, layers[:k], dirs, sc.coeff):
                bases[lay] = forget_base_states(lm, lay, prompts.forget_questions, prompts.forget_images,
                                                batch_size=sc.batch_size, position=sc.redirect_position,
                                                forget_answers=forget_answers)
    return bases


def train_redirection(lm, layers: list[int], dirs, rows: RedirectRows, sc, seed: int, progress: bool = True,
                      measure: bool = True) -> list:
    """Redirect each steered layer of ``lm``, lowest first, on ``rows`` with ``sc``'s settings (its coeff and
    epochs); returns the redirection log per layer (with ``measure``, its before/after distances too)."""
    p = rows.prompts
    bases = steered_base_states(lm, layers, dirs, p, rows.forget_answers, sc)
    settings = sc.redirect_settings(shift_answers=sc.redirect_answers == "steered", seed=seed)
    log = []
    for lay, span in zip(layers, redirect_spans(layers, sc.redirect_span)):
        log.append(redirect(lm, lay, dirs[lay], p.forget_questions, rows.retain_questions, p.forget_images, rows.retain_images,
                            dataclasses.replace(settings, span=span), forget_answers=rows.forget_answers,
                            retain_answers=rows.retain_answers, base_states=bases.get(lay), progress=progress, measure=measure))
    return log
