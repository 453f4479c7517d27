"""Model utility as open-unlearning reports it for TOFU: one number for what forgetting must not cost.

On each utility split, the free-text generation questions of ``retain`` (the people kept: TOFU's retain
set) and ``real`` (general knowledge: TOFU's world facts) are scored three ways:

* **answer probability**: on ``retain`` the true answer's length-normalised likelihood
  P(answer | question)^(1/len); on ``real`` that likelihood's share among the true answer's and its
  wrong options' (TOFU normalises the real-world splits over their perturbed answers the same way);
* **ROUGE-L recall** of the model's greedy answer against the true answer;
* **truth ratio** as a utility: the mean of max(0, 1 - R), R = the wrong answers' mean length-normalised
  likelihood over the true answer's (:func:`asru.eval.oracle.truth_ratio`); wrong answers are other
  people's values of the same fact on ``retain`` and the question's own distractor options on ``real``.

``model_utility`` is the harmonic mean of these six values (``scipy.stats.hmean``; 0 when any is 0), so
losing any one of them shows. Values: ``utility_<split>_prob``, ``utility_<split>_rouge``,
``utility_<split>_truth_ratio`` and ``model_utility``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from asru.data.schema import Record
from asru.eval.metrics import mean_or_none
from asru.eval.oracle import answer_scores, perturbed_answers, truth_ratio
from rewards.text import rouge_l

UTILITY_SPLITS = ("retain", "real")



def option_distractors(records: Sequence[Record], split_records: Sequence[Record]) -> list[list[str]]:
    """Per generation record, the wrong options of the classification record of the same item (ids
    ``<item>-generation`` / ``<item>-classification``); ``[]`` where there is none."""
    options = {r.id.rsplit("-", 1)[0]: r for r in split_records if r.task == "classification" and r.options}
    out = []
    for rec in records:
        twin = options.get(rec.id.rsplit("-", 1)[0])
        out.append([o for o in twin.options if o != rec.answer] if twin else [])
    return out


def split_utility(lm, split: str, records: Sequence[Record], answers: Sequence[str], split_records: Sequence[Record],
                  pool: Sequence[Record] = (), batch_size: int = 16, seed: int = 0) -> dict:
    """The three utility values of one split (see the module docstring) for its generation ``records`` and
    the model's greedy ``answers`` to them; ``split_records`` is the whole split (the options), ``pool``
    other splits' records (more people's values of the same fact)."""
    pairs = [(r, a) for r, a in zip(records, answers) if r.task == "generation"]
    gen = [r for r, _ in pairs]
    if not gen:
        return {}
    perturbed = option_distractors(gen, split_records) if split == "real" else perturbed_answers(gen, pool, seed=seed)
    scored = answer_scores(lm, gen, perturbed, batch_size)
    if split == "real":
        probs = [1.0 / (1.0 + sum(math.exp(w - t) for w in wrong)) for t, wrong in scored]
    else:
        probs = [math.exp(t) for t, _ in scored]
    return {
        f"utility_{split}_prob": mean_or_none(probs),
        f"utility_{split}_rouge": mean_or_none([rouge_l(a, r.answer, measure="recall") for r, a in pairs]),
        f"utility_{split}_truth_ratio": mean_or_none([max(0.0, 1.0 - truth_ratio(t, w)) for t, w in scored]),
    }


def model_utility(values: Sequence[float | None]) -> float | None:
    """Harmonic mean of ``values`` (None when any is missing; 0 when any is 0 or below)."""
    if not values or any(v is None for v in values):
        return None
    if any(v <= 0 for v in values):
        return 0.0
    from scipy.stats import hmean

    return float(hmean(list(values)))
