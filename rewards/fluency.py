"""``fluency``: penalises gibberish, repetition loops and one-size-fits-all refusals.

Formula, for completion i (text t_i, final answer a_i = the text after any ``<think>`` span):

    fluency_i = 0                                        if is_garbled(t_i)
              = (1 - rep_i) * (0.5 + 0.5 * div_i) * lm_i  otherwise                 (in [0, 1])

* ``rep_i`` = :func:`rewards.text.ngram_repetition` of t_i with n = ``n`` (default 3): the share of
  its n-grams that repeat an earlier one;
* ``div_i`` = diversity of a refusal within its group (the completions sampled for the same prompt
  and image): 1 - mean over the other group members j of Jaccard(B_i, B_j), with B the set of
  ``diversity_n``-grams (default bigrams; unigrams for a one-word answer) of the normalised answer.
  Non-refusals and lone completions get div = 1, so agreeing *correct* answers are never penalised;
  a refusal copied verbatim by the whole group gets div = 0 and so half the score of a refusal
  worded for its context. (Distinct-n of the whole group would give every member the same value,
  which GRPO's group-relative advantage cancels; a per-completion term does not.)
* ``lm_i`` = 1 without a reference model. With ``ref_model`` (a causal LM sharing the policy's
  tokenizer): sigmoid((mean token log-prob of the completion - ``lm_center``) / ``lm_scale``), the
  log-probs of the completion tokens given only BOS (not the prompt; prompt building is not a
  reward's job). Defaults center -4, scale 1: a mean log-prob of -2 gives 0.88, -8 gives 0.018.

``roles`` limits the reward to completions of those dataset roles (others get None, which TRL leaves out
of the sum). On retain questions the likelihood term favours a common refusal over a correct answer that
names a rare entity, so GRPO can learn to refuse retain questions it answers unsurely; scoring the forget
role only keeps the fluency pressure on the refusals (README, session 9).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from asru.core.errors import AsruError
from rewards.interface import completion_text, group_keys, roles
from rewards.registry import register_reward
from rewards.text import extract_think, is_garbled, is_refusal, ngram_repetition, ngrams, tokens


def _grams(answer: str, n: int) -> frozenset:
    toks = tokens(answer)
    return frozenset(ngrams(toks, n) if len(toks) >= n else ngrams(toks, 1))


def _jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def group_diversity(answers: Sequence[str], keys: Sequence, n: int = 2) -> list[float]:
    """Per-completion ``div_i`` (see the module docstring): 1 for non-refusals and lone completions."""
    members: dict = defaultdict(list)
    for i, k in enumerate(keys):
        members[k].append(i)
    grams = [_grams(a, n) for a in answers]
    out = [1.0] * len(answers)
    for idx in members.values():
        if len(idx) < 2:
            continue
        for i in idx:
            if not is_refusal(answers[i]):
                continue
            sims = [_jaccard(grams[i], grams[j]) for j in idx if j != i]
            out[i] = 1.0 - sum(sims) / len(sims)
    return out


def text_fluency(text: str, div: float = 1.0, n: int = 3) -> float:
    """``(1 - rep) * (0.5 + 0.5 * div)`` for one text, or 0.0 if it is garbled."""
    if is_garbled(text):
        return 0.0
    return (1.0 - ngram_repetition(text, n)) * (0.5 + 0.5 * div)


@register_reward("fluency")
class Fluency:
    """Fluency in [0, 1]: 0 for gibberish, lower for repetition and for refusals copied across the group."""

    def __init__(
        self,
        ref_model=None,
        tokenizer=None,
        n: int = 3,
        diversity_n: int = 2,
        use_ref_model: bool = True,
        lm_center: float = -4.0,
        lm_scale: float = 1.0,
        max_tokens: int = 256,
        batch_size: int = 16,
        roles: Sequence[str] | str | None = None,
    ):
        """Options: ``n`` (repetition n-gram size), ``diversity_n``, ``use_ref_model`` (ignore a given
        reference model when false), ``lm_center``/``lm_scale`` (log-prob -> [0,1] mapping),
        ``max_tokens`` (completion tokens scored), ``batch_size``, ``roles`` (score only completions of these
        dataset roles, e.g. ``[forget]``; None = every role). Context: ``ref_model``, ``tokenizer``."""
        if n < 1 or diversity_n < 1:
            raise AsruError(f"fluency: n and diversity_n must be >= 1 (got {n}, {diversity_n})")
        if lm_scale <= 0:
            raise AsruError(f"fluency: lm_scale must be > 0 (got {lm_scale})")
        self.ref_model = ref_model if use_ref_model else None
        self.tokenizer = tokenizer
        self.n, self.diversity_n = n, diversity_n
        self.lm_center, self.lm_scale = float(lm_center), float(lm_scale)
        self.max_tokens, self.batch_size = max_tokens, batch_size
        if isinstance(roles, str):
            roles = [roles]
        if roles is not None and (not roles or not all(isinstance(r, str) and r.strip() for r in roles)):
            raise AsruError(f"fluency: roles must be a non-empty list of role names such as [forget], not {roles!r}")
        self.roles = {r.strip().lower() for r in roles} if roles is not None else None
        self.__name__ = "fluency"

    # -- reference-model term -----------------------------------------------------------------
    def _ids(self, texts: list[str], completion_ids) -> list[list[int]]:
        if completion_ids is not None:
            return [list(map(int, ids))[: self.max_tokens] for ids in completion_ids]
        if self.tokenizer is None:
            raise AsruError("fluency: a ref_model needs a tokenizer (or TRL's completion_ids) to score text")
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"][: self.max_tokens] for t in texts]

    def mean_logprobs(self, texts: list[str], completion_ids=None) -> list[float | None]:
        """Mean log-prob per completion token under the reference model (None if nothing to score)."""
        import torch

        model = self.ref_model
        ids = self._ids(texts, completion_ids)
        bos = getattr(self.tokenizer, "bos_token_id", None) if self.tokenizer is not None else None
        if bos is None:
            bos = getattr(getattr(model, "config", None), "bos_token_id", None)
        prefix = [bos] if isinstance(bos, int) else []
        pad = 0
        device = next(model.parameters()).device
        out: list[float | None] = [None] * len(ids)
        seqs = [(i, prefix + s) for i, s in enumerate(ids) if len(prefix + s) >= 2]
        for start in range(0, len(seqs), self.batch_size):
            chunk = seqs[start : start + self.batch_size]
            width = max(len(s) for _, s in chunk)
            inp = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, s) in enumerate(chunk):
                inp[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            inp, mask = inp.to(device), mask.to(device)
            with torch.inference_mode():
                logits = model(input_ids=inp, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, inp[:, 1:, None])[..., 0]
            tgt = mask[:, 1:].float()
            # with a BOS prefix every completion token is scored; without one, tokens 2..L
            means = (logp * tgt).sum(1) / tgt.sum(1)
            for row, (i, _) in enumerate(chunk):
                out[i] = float(means[row])
        return out

    def lm_score(self, mean_logprob: float | None) -> float:
        """Map a mean token log-prob to [0, 1]: sigmoid((lp - lm_center) / lm_scale); None -> 1."""
        if mean_logprob is None:
            return 1.0
        z = (mean_logprob - self.lm_center) / self.lm_scale
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    # -- the reward -----------------------------------------------------------------------------
    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        """Score every completion (of ``roles``; None for others); see the module docstring for the formula."""
        texts = [completion_text(c) for c in completions]
        scored = [r in self.roles for r in roles(kwargs, len(texts), "fluency")] if self.roles is not None else [True] * len(texts)
        answers = [extract_think(t)[1] for t in texts]
        keys = group_keys(list(prompts) if prompts is not None else [None] * len(texts), kwargs)
        if len(keys) != len(texts):
            raise AsruError(f"fluency: {len(keys)} prompts for {len(texts)} completions")
        div = group_diversity(answers, keys, self.diversity_n)
        scores = [text_fluency(t, d, self.n) for t, d in zip(texts, div)]
        live = [i for i, s in enumerate(scores) if s > 0 and scored[i]]
        if self.ref_model is not None and live:
            ids = [completion_ids[i] for i in live] if completion_ids is not None else None
            lps = self.mean_logprobs([texts[i] for i in live], ids)
            for i, lp in zip(live, lps):
                scores[i] *= self.lm_score(lp)
        return [s if keep else None for s, keep in zip(scores, scored)]


def corpus_fluency(texts: Sequence[str], n: int = 3, diversity_n: int = 2) -> float:
    """Mean text-only fluency of a set of answers treated as ONE group (for evaluation).

    Greedy evaluation has one answer per question, so per-prompt groups would all have size one;
    pooling a split's answers into a single group makes a model that gives every forget question
    the same canned refusal score lower than one whose refusals fit each question. 0.0 for no texts.
    """
    if not texts:
        return 0.0
    scores = Fluency(n=n, diversity_n=diversity_n)(prompts=["corpus"] * len(texts), completions=list(texts))
    return sum(scores) / len(scores)
