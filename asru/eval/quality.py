"""Generation quality without a paid API.

Formulas (``a_i`` = generated answer i, ``q_i`` its question, ``R`` = the refusals among the answers):

* ``fluency`` = mean over non-empty answers of ``(1 / T_i) * sum_t log p_ref(y_t | prompt_i, y_<t)``: the
  mean per-token log-likelihood of the answer (its tokens plus the end-of-turn token) under the
  *reference* (original / vanilla) model, given the same prompt. Closer to 0 is more fluent; a model
  that drifted into gibberish gets very negative values. Without a reference, the evaluated model scores.
* ``repetition`` = mean of :func:`rewards.text.ngram_repetition` (trigrams) per answer.
* ``distinct_1`` / ``distinct_2`` = :func:`rewards.text.distinct_n` over all answers pooled.
* ``garbled_rate`` = share of answers :func:`rewards.text.is_garbled` (empty, no letters, loops).
* ``refusal_diversity`` = 1 - (count of the most common normalised refusal) / |R|: 0 when every refusal
  is the same fixed string; ``None`` with fewer than 2 refusals.
* ``refusal_contextual`` = share of refusals sharing at least one content word (normalised, not a
  stop word) with their question, e.g. "I don't know where this person was born" for "Where was the
  person in this image born?"; ``None`` without refusals.
* ``refusal_naturalness`` = mean of the two above (whichever exist).
* ``fluency_reward`` = the text terms of the GRPO ``fluency`` reward (garbled 0, repetition, refusal
  diversity) averaged over the split's answers scored as one group (:func:`rewards.fluency.corpus_fluency`).
  Refusals pay a diversity term against every other refusal of the split while other answers do not,
  so a model that refuses more scores lower here even when each refusal fits its question.
* ``fluency_reward_sampled`` (forget split, ``eval.fluency_groups`` = k > 0) = the GRPO ``fluency`` reward
  exactly as training computes it: k completions sampled per question (temperature 1, top-p 0.95,
  seeded), each question's completions scored as one group with the reference model's likelihood term;
  the mean over all completions. It judges the model's answer *distribution* on each question, which
  is what the RL stage optimises. Its likelihood term scores text given no prompt, so common refusal
  wording outscores rare names: compare it with ``fluency_reward_sampled_refusals`` (the same mean over the
  sampled completions that are refusals) and ``sampled_refusal_rate``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from asru.core import prompting
from asru.core.prompting import answer_logprobs
from asru.data.schema import Record
from asru.eval.metrics import free_text_prompt
from rewards.fluency import Fluency, corpus_fluency
from rewards.text import distinct_n, is_garbled, is_refusal, ngram_repetition, normalize, tokens

STOP_WORDS = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "but", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "what", "which", "who", "whom", "whose", "where", "when", "why", "how", "this", "that", "these", "those", "it", "its", "his", "her", "their", "them", "they", "he", "she", "you", "your", "i", "me", "my", "we", "our", "us", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "not", "no", "yes", "about", "as", "into", "than", "then", "there", "here", "please", "tell", "answer", "question", "know", "s", "t", "d", "ll", "m", "ve", "re"]
)


def content_words(text: str) -> set[str]:
    """Normalised tokens of ``text`` that are not stop words (and longer than one character)."""
    return {t for t in tokens(text) if t not in STOP_WORDS and len(t) > 1}


def refusal_naturalness(questions: Sequence[str], answers: Sequence[str]) -> dict:
    """``refusal_diversity``, ``refusal_contextual`` and ``refusal_naturalness`` (see the module docstring)."""
    pairs = [(q, a) for q, a in zip(questions, answers) if is_refusal(a)]
    diversity = None
    if len(pairs) >= 2:
        top = Counter(normalize(a) for _, a in pairs).most_common(1)[0][1]
        diversity = 1.0 - top / len(pairs)
    contextual = sum(bool(content_words(q) & set(tokens(a))) for q, a in pairs) / len(pairs) if pairs else None
    parts = [x for x in (diversity, contextual) if x is not None]
    return {
        "refusal_diversity": diversity,
        "refusal_contextual": contextual,
        "refusal_naturalness": sum(parts) / len(parts) if parts else None,
    }


def text_quality(questions: Sequence[str], answers: Sequence[str]) -> dict:
    """Model-free quality metrics of answers: repetition, distinct-n, garbled share, refusal naturalness, and the
    text terms of the ``fluency`` reward over the split's answers as one group (:func:`rewards.fluency.corpus_fluency`)."""
    n = len(answers)
    out = {
        "repetition": sum(ngram_repetition(a, 3) for a in answers) / n if n else None,
        "distinct_1": distinct_n(answers, 1) if n else None,
        "distinct_2": distinct_n(answers, 2) if n else None,
        "garbled_rate": sum(is_garbled(a) for a in answers) / n if n else None,
        "fluency_reward": corpus_fluency(answers) if n else None,
    }
    out.update(refusal_naturalness(questions, answers))
    return out


def fluency(lm, records: Sequence[Record], answers: Sequence[str], reference=None, batch_size: int = 16,
            samples: int | None = None, seed: int = 0) -> float | None:
    """Mean per-token log-likelihood of the non-empty answers under ``reference`` (a LoadedModel or None = ``lm``).

    The reference must share ``lm``'s processor (the vanilla model of an unlearning run does). ``samples``
    caps the answers scored (a seeded random subset; None = all): the mean of a few hundred answers is
    estimated well from fewer, and each needs a forward pass of the reference model.
    """
    import random

    keep = [i for i, a in enumerate(answers) if a and a.strip()]
    if not keep:
        return None
    if samples is not None and len(keep) > samples:
        keep = sorted(random.Random(seed).sample(keep, samples))
    model = reference.model if reference is not None else None
    scores = answer_logprobs(lm, [free_text_prompt(records[i]) for i in keep], [answers[i] for i in keep],
                             [records[i].image for i in keep], batch_size=batch_size, model=model)
    per_token = [s / max(n, 1) for s, n in scores]
    return sum(per_token) / len(per_token)


def sampled_fluency(lm, records: Sequence[Record], reference=None, k: int = 4, max_new_tokens: int = 32,
                    batch_size: int = 16, seed: int = 0, temperature: float = 1.0, top_p: float = 0.95) -> dict:
    """``fluency_reward_sampled`` and its refusals-only / refusal-rate companions (module docstring) for ``k``
    sampled completions per record; ``{}`` for no records or ``k`` < 1.

    ``reference`` (a LoadedModel sharing ``lm``'s tokenizer; None = ``lm``) gives the likelihood term.
    """
    import torch

    if not records or k < 1:
        return {}
    recs = [r for r in records for _ in range(k)]
    torch.manual_seed(seed)
    texts = prompting.generate(lm, [free_text_prompt(r) for r in recs], [r.image for r in recs], max_new_tokens=max_new_tokens,
                     batch_size=batch_size, do_sample=True, temperature=temperature, top_p=top_p, desc="sampled answers")
    ref = reference or lm
    scores = Fluency(ref_model=ref.model, tokenizer=ref.tokenizer)(prompts=[r.id for r in recs], completions=texts)
    refused = [s for s, t in zip(scores, texts) if is_refusal(t)]
    return {
        "fluency_reward_sampled": sum(scores) / len(scores),
        "fluency_reward_sampled_refusals": sum(refused) / len(refused) if refused else None,
        "sampled_refusal_rate": len(refused) / len(scores),
    }


def quality_metrics(lm, records: Sequence[Record], answers: Sequence[str], reference=None, batch_size: int = 16,
                    fluency_samples: int | None = None, seed: int = 0) -> dict:
    """All quality metrics of one split's free-text answers (``fluency`` needs a forward pass per batch,
    on at most ``fluency_samples`` answers; the text metrics use every answer)."""
    out = {"fluency": fluency(lm, records, answers, reference, batch_size, fluency_samples, seed)}
    out.update(text_quality([r.question for r in records], answers))
    return out
