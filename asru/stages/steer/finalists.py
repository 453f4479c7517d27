"""The steering search's second round: a short redirection for each of the best screened trials.

Add hooks shift every prompt that passes the steered layers, retain questions included, so the hook screen
ranks layers and shifts by how readily they make the model refuse but cannot say what redirection, which
is trained to hold the retain states, does to the retain answers. ``steer.search_finalists`` = k > 0 takes
the best screened trials of k different layer sets (:func:`finalist_trials`), redirects each on a seeded share of the stage's
redirection rows (``steer.search_finalist_share``) for ``steer.search_finalist_epochs`` epochs, scores the
redirected model without hooks on the screen's held-out prompts and on more forget image questions (none of
them trained in the share: :func:`asru.stages.steer.search.screen_set`), puts the weights back, and chooses
among them
(:func:`choose_finalist`: within ``steer.search_max_retain_drop`` of the best finalist's retain accuracy,
the best clean refusal, then the lowest leak, then the lowest KL). Results go to ``search/finalists.json`` one by one, so a resumed
search redirects only the finalists it had not checked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.models import copy_weights
from asru.core.rundir import atomic_write_json
from asru.stages.steer.redirection import redirect_spans, share_of_rows, train_redirection
from asru.stages.steer.trial import Trial
from steering.redirect import trainable_weights

LOG = logging.getLogger("asru.steer")


@dataclasses.dataclass
class Finalist(Trial):
    """One screened trial after its short redirection (its scores are the redirected model's), and how long that took."""

    seconds: float = 0.0


def finalist_trials(rows: list, k: int) -> list:
    """Up to ``k`` screened trials that refuse at all, one per set of steered layers (its best: the highest
    clean refusal, then the lowest KL), ordered the same way. What a finalist checks is what redirection at
    its layers does to the retain answers, which two shifts of the same layers mostly share: on the demo VLM
    the two best hook trials were 15 + 17 at c 2.66 and 2.72, and the hooks' KL ranks an early layer (7 + 23)
    above the pair that keeps the retain answers once redirected (15 + 23)."""
    best: dict[tuple, object] = {}
    for r in sorted((r for r in rows if r.refusal > 0), key=lambda r: (-r.refusal, r.kl, r.number)):
        best.setdefault(tuple(r.layers), r)
    return list(best.values())[:k]


def choose_finalist(finals: list[Finalist], margin: float) -> Finalist:
    """Among the feasible finalists within ``margin`` of the best clean refusal, the one that leaks least (a
    fact or the name), then the one with the lowest KL. The leak comes first: it is the failure forgetting is
    for, and the retain side is already held by feasibility (on seed 1 / forget ratio 0.3 two finalists
    refused 0.45 of the held-out questions; the one with the lower KL leaked on 0.50 of them, the other on 0.38,
    and after the full redirection refused 0.79 of the forget questions against the other's 1.00)."""
    feasible = [f for f in finals if f.feasible and f.refusal > 0]
    if not feasible:
        raise AsruError("steering search: no finalist refused a held-out forget prompt while keeping the retain answers "
                        "after its short redirection: raise steer.search_finalists or steer.search_finalist_epochs, "
                        "or set steer.layers and steer.coeff yourself")
    best = max(f.refusal for f in feasible)
    pick = min((f for f in feasible if f.refusal >= best - margin), key=lambda f: (f.leak, f.kl, -f.refusal, f.number))
    pick.chosen = True
    return pick


def format_finalists(finals: list[Finalist]) -> str:
    """The finalists as a fixed-width table (``*`` = chosen, ``x`` = loses retain answers)."""
    lines = ["trial  layers   coeff  refusal  leak  retain      kl  seconds  mark",
             "-----  -------  -----  -------  ----  ------  ------  -------  ----"]
    for f in finals:
        mark = "*" if f.chosen else "x" if not f.feasible else ""
        lines.append(f"{f.number:>5}  {','.join(map(str, f.layers)):<7}  {f.coeff:>5.2f}  {f.refusal:>7.2f}  {f.leak:>4.2f}  "
                     f"{f.retain:>6.2f}  {f.kl:>6.3f}  {f.seconds:>7.1f}  {mark}")
    return "\n".join(lines)


def _trained_weights(lm, layers: list[int], sc) -> list:
    """Every weight redirection of ``layers`` (with their spans) trains."""
    weights = []
    for lay, span in zip(layers, redirect_spans(layers, sc.redirect_span)):
        for trained in range(lay - span, lay + 1):
            weights += trainable_weights(lm.model, trained, sc.redirect_params)
    return weights


def redirect_and_score(steer_models, dirs: dict, rows_for, sc, seed: int, held_out_ids=frozenset()):
    """A ``check(layers, coeff, score_model) -> scores`` that redirects ``steer_models.model`` at ``layers``
    with shift ``coeff`` on a share of ``rows_for(layers, coeff)`` (the search's finalist settings; none of
    the forget rows of the records ``held_out_ids``, which the finalists are scored on), scores the
    generation copy with ``score_model(gen)``, and puts every trained weight back."""
    import torch

    lm, gen = steer_models.model, steer_models.generation

    def check(layers: list[int], coeff: float, score_model) -> dict:
        short = dataclasses.replace(sc, coeff=coeff, epochs=sc.search_finalist_epochs)
        weights = _trained_weights(lm, layers, sc)
        saved = [w.detach().clone() for w in weights]
        try:
            torch.manual_seed(seed)
            train_redirection(lm, layers, dirs, share_of_rows(rows_for(layers, coeff), sc.search_finalist_share, seed, held_out_ids),
                              short, seed, progress=False, measure=False)
            copy_weights(gen, lm)
            return score_model(gen)
        finally:
            with torch.no_grad():
                for w, old in zip(weights, saved):
                    w.copy_(old)
            copy_weights(gen, lm)

    return check


def check_finalists(trials: list, k: int, check, score_model, max_drop: float, path: Path,
                    fingerprint: str) -> list[Finalist]:
    """The ``k`` finalists of ``trials`` (see :func:`finalist_trials`), each checked with
    ``check(layers, coeff, score_model)`` unless ``path`` (written after each) already holds its result
    under ``fingerprint``. A finalist is feasible when its retain accuracy is within ``max_drop`` of the best
    finalist's: a short redirection has not yet learnt to leave the retain states alone (on seed 5 the
    hand-tuned pair kept 0.59 of them after it, 1.00 after the full one), so the finalists are compared with
    each other, not with the unsteered model."""
    from tqdm.auto import tqdm

    done: dict[int, dict] = {}
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            saved = {}
        if saved.get("fingerprint") == fingerprint:
            done = {f["number"]: f for f in saved.get("finalists", [])}
    finals: list[Finalist] = []

    def save() -> None:
        atomic_write_json(path, {"fingerprint": fingerprint, "finalists": [dataclasses.asdict(f) for f in finals]})

    for t in tqdm(finalist_trials(trials, k), desc="steering search: finalists"):
        if t.number in done:
            finals.append(Finalist(**{**done[t.number], "chosen": False}))
            continue
        start = time.time()
        s = check(list(t.layers), t.coeff, score_model)
        finals.append(Finalist(number=t.number, layers=list(t.layers), coeff=t.coeff, refusal=s["refusal"], leak=s["leak"],
                               retain=s["retain"], kl=s["kl"], feasible=True,  # decided below, against the best finalist
                               seconds=round(time.time() - start, 1), example=s.get("example", "")))
        save()
    if not finals:
        raise AsruError("steering search: no screened trial made a held-out forget prompt refuse, so there is no finalist "
                        "to redirect: widen steer.candidate_layers or steer.search_coeff, or add trials")
    best = max(f.retain for f in finals)
    for f in finals:
        f.feasible = best - f.retain <= max_drop + 1e-9
    save()
    return finals
