"""Loss-based membership inference: can the forget set still be told apart from unseen facts?

Members are the forget set's free-text questions with their *true* answers. Non-members are the
*same* questions with a wrong-but-plausible answer (a counterfactual): the value of the same fact
for another forgotten person when there is one, else another person's value of that fact, else the
answer of another record of the same task. A model that never learned the forgotten people has no
reason to prefer the true answer over the counterfactual, so their losses are exchangeable and the
AUC is about 0.5; the vanilla model, which was taught the true answers, gives an AUC near 1.
(Caveat: a counterfactual taken from a retained person was itself taught, which can push the AUC of a
perfect unlearner slightly *below* 0.5; forget-set counterfactuals are preferred for that reason.)

Score = per-token loss (mean negative log-likelihood of the answer). AUC = P(loss_member <
loss_nonmember) + 0.5 * P(tie), computed exactly from ranks (Mann-Whitney U), no sampling.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Sequence

from asru.core.prompting import answer_token_logprobs
from asru.data.schema import Record
from asru.eval.metrics import free_text_prompt

MIN_K = 0.4  # share of the least likely tokens min-k% averages (its paper tries 10-60%; answers here are a few tokens)


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks with ties given their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def auc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """ROC AUC = P(score_pos > score_neg) + 0.5 * P(tie), exactly, via the Mann-Whitney U statistic."""
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    if not n_pos or not n_neg:
        raise ValueError("AUC needs at least one positive and one negative score")
    ranks = _average_ranks(list(positive_scores) + list(negative_scores))
    u = sum(ranks[:n_pos]) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def mia_auc(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> float:
    """Membership-inference AUC: members are predicted by *lower* loss (score = -loss)."""
    return auc([-x for x in member_losses], [-x for x in nonmember_losses])


def counterfactual_tiers(rec: Record, members: Sequence[Record], pool: Sequence[Record]) -> list[list[str]]:
    """Wrong-but-plausible answers for ``rec``, best tier first (see the module docstring); every tier
    sorted, none holding ``rec``'s own answer."""
    forget_people = {r.person for r in members}
    tiers: list[list[str]] = []
    if rec.fact:
        tiers.append(sorted({r.answer for r in members if r.fact == rec.fact and r.person != rec.person and r.person in forget_people}))
        tiers.append(sorted({r.answer for r in pool if r.fact == rec.fact and r.person != rec.person}))
    tiers.append(sorted({r.answer for r in list(members) + list(pool) if r.task == rec.task and r.person != rec.person}))
    own = rec.answer.strip().lower()
    return [[v for v in cands if v.strip().lower() != own] for cands in tiers]


def counterfactual_answers(members: Sequence[Record], pool: Sequence[Record], seed: int = 0) -> list[str | None]:
    """A wrong-but-plausible answer per member record (see the module docstring); None if none exists."""
    rng = random.Random(seed)
    out = []
    for rec in members:
        choice = None
        for cands in counterfactual_tiers(rec, members, pool):
            if cands:
                choice = rng.choice(cands)
                break
        out.append(choice)
    return out


def min_k_score(token_logprobs: Sequence[float], k: float = MIN_K) -> float:
    """Min-k% score (Shi et al.): minus the mean of the lowest ``k`` share of the token log-probabilities
    (at least one token); like a loss, lower = more likely a member."""
    lowest = sorted(token_logprobs)[:max(1, math.ceil(k * len(token_logprobs)))]
    return -sum(lowest) / len(lowest)


def zlib_score(token_logprobs: Sequence[float], text: str) -> float:
    """Zlib ratio (Carlini et al.): the per-token loss over the zlib-compressed length of the text in bytes,
    so answers that are simply easy to predict (short, repetitive) are not taken for members."""
    loss = -sum(token_logprobs) / max(len(token_logprobs), 1)
    return loss / len(zlib.compress(text.encode("utf-8")))


def membership_inference(lm, forget: Sequence[Record], pool: Sequence[Record] = (), batch_size: int = 16, seed: int = 0,
                         reference=None) -> dict:
    """Membership-inference AUCs on the forget set's free-text records, members against counterfactual
    non-members: ``mia_auc`` (loss), ``mia_min_k_auc`` (min-k%), ``mia_zlib_auc`` (zlib ratio) and, with a
    ``reference`` model (e.g. the oracle), ``mia_reference_auc`` (loss minus the reference model's loss);
    plus the mean member / non-member per-token losses and the pair count."""
    members = [r for r in forget if r.task in ("generation", "cloze")]
    wrong = counterfactual_answers(members, [r for r in pool if r.task in ("generation", "cloze")], seed)
    keep = [i for i, w in enumerate(wrong) if w is not None]
    empty = {"mia_auc": None, "mia_min_k_auc": None, "mia_zlib_auc": None, "mia_reference_auc": None,
             "mia_member_loss": None, "mia_nonmember_loss": None, "mia_n": 0}
    if not keep:
        return empty
    qs = [free_text_prompt(members[i]) for i in keep] * 2
    ims = [members[i].image for i in keep] * 2
    texts = [members[i].answer for i in keep] + [wrong[i] for i in keep]
    n = len(keep)
    tokens = answer_token_logprobs(lm, qs, texts, ims, batch_size=batch_size)
    losses = [-sum(t) / max(len(t), 1) for t in tokens]
    scores = {"mia_auc": losses, "mia_min_k_auc": [min_k_score(t) for t in tokens],
              "mia_zlib_auc": [zlib_score(t, x) for t, x in zip(tokens, texts)]}
    if reference is not None:
        ref = answer_token_logprobs(reference, qs, texts, ims, batch_size=batch_size)
        scores["mia_reference_auc"] = [loss + sum(t) / max(len(t), 1) for loss, t in zip(losses, ref)]
    out = {**empty, **{key: mia_auc(v[:n], v[n:]) for key, v in scores.items()}}
    out.update(mia_member_loss=sum(losses[:n]) / n, mia_nonmember_loss=sum(losses[n:]) / n, mia_n=n)
    return out
