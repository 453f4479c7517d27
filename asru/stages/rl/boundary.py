"""The boundary set for GRPO: forget questions plus the retain questions the model must keep answering.

Two ways to choose the retain side (``rl.boundary``):

* ``random`` (the reference): a seeded random sample of the retain questions;
* ``similar``: the retain questions nearest to the forget set, the harder boundary (a refusal
  learnt on forget questions spreads first to questions that look like them). "Nearest" is the
  highest cosine similarity to any forget question, measured by ``rl.similarity``:
  ``hidden`` = the model's own mean-pooled last hidden state of the chat-templated prompt (image
  included), or ``tfidf`` = TF-IDF vectors of the question texts (word uni+bigrams; no model needed).

With ``rl.focus_unrefused`` = k > 0 the model answers every chosen forget question greedily first, and
each question whose answer is not a clean refusal by the judge (:mod:`rewards.judge`: it answers, leaks a
fact or part of the name, or is degenerate) is added k more times: GRPO
learns only from groups whose rollouts differ, and a question the model never refuses needs more
draws before one rollout refuses.

With ``rl.image_augment`` = n > 0 every chosen forget and retain image question is added again with n
augmented copies of its image (:mod:`asru.core.image_augment`; ids ``<id>-aug<k>``): the rewards then
judge answers about the people in other photos too, where a refusal may still spell part of the name.
With ``rl.known_photos`` = p > 0 every chosen forget and retain image question is also asked on up to p
other photos of its person from the data (the teach split's renders; ids ``<id>-photo<k>``); with
``rl.focus_unrefused`` the forget copies are checked as well, so a photo on which the model still names
the person gets the extra draws; so are the open questions below (judged against all of the person's facts).
With ``rl.open_questions`` every forgotten person is also asked open questions in the biography wordings
the demo model was taught ("Tell me about {name}.", ids ``open-<k>-<j>``), and the same about their photo
("Tell me about the person in this image.", ids ``open-<k>-i<j>``; the evaluation's own open and image-only
questions are other wordings), with a ``facts`` column holding every fact of that person: a refusal that
then lists the facts ("I'm not familiar with X. X was born in ...") earns no forget reward, nor does an
answer that names the person in the photo.
With ``rl.general_retain`` = m > 0 up to m of the bundled general-knowledge questions join the retain
side (ids ``general-<k>``), the entering model's greedy answer as their ground truth: GRPO then keeps
general answers as it keeps the retain split's, instead of drifting where no reward looks. ``rl.entity_retain``
does the same with the bundled questions about real cities, landmarks and people asked as the benchmark
asks about its people (ids ``entity-<k>``): a refusal learnt for "Where was <name> born?" must not reach
"Where was Mozart born?".

The result is a :class:`datasets.Dataset` in TRL's format: ``prompt`` (conversational messages, with
an image content part for image questions), ``images`` (a list holding the question's PIL image, empty
for text questions: TRL's multi-image column, which unlike ``image`` allows text and image questions in
one batch),
``role`` (``forget``/``retain``), ``answer`` (ground truth), ``question``, ``person`` (the
person's name, "" for none: the forget reward's identity-leak check) and ``id``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from collections.abc import Sequence

from asru.core.errors import AsruError
from asru.core.image_augment import copies_per_image
from asru.core.prompting import chat_messages, encode_prompts, modality_batches
from asru.data.general_questions import entity_retain_questions, general_retain_questions
from asru.data.open_questions import open_question_records
from asru.data.person_photos import known_photos, on_other_photos
from asru.data.schema import Record
from asru.eval.metrics import generate_answers
from rewards.judge import judge
from rewards.text import ngrams, tokens

LOG = logging.getLogger("asru.rl")

FREE_ANSWER_TASKS = ("generation", "cloze")


def select_records(records: Sequence, tasks: Sequence[str], split: str) -> list:
    """Records of ``tasks`` (free-answer questions), with an error naming the split when none are left."""
    bad = [t for t in tasks if t not in FREE_ANSWER_TASKS]
    if bad:
        raise AsruError(f"rl.tasks: {bad} cannot be rewarded by free answers; use {', '.join(FREE_ANSWER_TASKS)}")
    out = [r for r in records if r.task in tasks]
    if not out:
        raise AsruError(f"the {split} split has no {'/'.join(tasks)} questions for the RL boundary set: check the data or rl.tasks")
    return out


def _terms(text: str) -> list:
    """Word unigrams and bigrams of the normalised text (rewards.text tokenisation)."""
    toks = tokens(text)
    return list(ngrams(toks, 1)) + list(ngrams(toks, 2))


def tfidf_similarity(forget_texts: Sequence[str], retain_texts: Sequence[str]) -> list[float]:
    """Max cosine similarity of each retain text to any forget text, on TF-IDF word 1-2-gram vectors.

    tf = raw count, idf = ln((1 + N) / (1 + df)) + 1 over all N texts, vectors L2-normalised.
    """
    from collections import Counter

    docs = [Counter(_terms(t)) for t in list(forget_texts) + list(retain_texts)]
    df = Counter(term for d in docs for term in d)
    n = len(docs)
    idf = {term: math.log((1 + n) / (1 + c)) + 1 for term, c in df.items()}
    vecs = []
    for d in docs:
        v = {term: c * idf[term] for term, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        vecs.append({term: x / norm for term, x in v.items()})
    f, r = vecs[: len(forget_texts)], vecs[len(forget_texts) :]
    return [max((sum(x * fv.get(t, 0.0) for t, x in rv.items()) for fv in f), default=0.0) for rv in r]


def prompt_embeddings(lm, questions: Sequence[str], images: Sequence, batch_size: int = 16):
    """Mean-pooled last-layer hidden states of the chat-templated prompts (L2-normalised), one row per question."""
    import torch

    out = [None] * len(questions)
    model = lm.model
    for idx in modality_batches(images, len(questions), batch_size):
        enc = encode_prompts(lm, [questions[i] for i in idx], [images[i] for i in idx])
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[-1].float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        for j, i in enumerate(idx):
            out[i] = pooled[j]
    return torch.stack(out)


def hidden_similarity(lm, forget: Sequence, retain: Sequence, batch_size: int = 16):
    """Max cosine similarity of each retain question to any forget question in the model's hidden space."""
    f = prompt_embeddings(lm, [r.question for r in forget], [r.image for r in forget], batch_size)
    r = prompt_embeddings(lm, [x.question for x in retain], [x.image for x in retain], batch_size)
    return (r @ f.T).max(dim=1).values.numpy()


def choose_retain(forget: Sequence, retain: Sequence, n: int, mode: str, similarity: str = "hidden", lm=None, seed: int = 0) -> list:
    """``n`` retain records: a seeded random sample, or the ``n`` most similar to the forget set."""
    n = min(n, len(retain))
    if mode == "random":
        return random.Random(seed).sample(list(retain), n)
    if mode != "similar":
        raise AsruError(f"rl.boundary must be random or similar, not {mode!r}")
    if similarity == "hidden":
        if lm is None:
            raise AsruError("rl.similarity=hidden needs the model; pass it, or use rl.similarity=tfidf")
        scores = hidden_similarity(lm, forget, retain)
    elif similarity == "tfidf":
        scores = tfidf_similarity([r.question for r in forget], [r.question for r in retain])
    else:
        raise AsruError(f"rl.similarity must be hidden or tfidf, not {similarity!r}")
    order = sorted(range(len(retain)), key=lambda i: (-float(scores[i]), retain[i].id))
    LOG.info("similar boundary: %d retain questions, similarity %.3f..%.3f (%s)", n, float(scores[order[0]]), float(scores[order[n - 1]]), similarity)
    return [retain[i] for i in order[:n]]


def unrefused(lm, records: Sequence, max_new_tokens: int = 32, batch_size: int = 16,
              facts: dict[str, list[str]] | None = None) -> list:
    """The records whose greedy answer is not a clean refusal by the judge (in input order); a record whose
    id is in ``facts`` is judged against all of those facts (an open question about a person)."""
    facts = facts or {}
    answers = generate_answers(lm, records, max_new_tokens, batch_size, progress=True, desc="forget answers")
    return [r for r, a in zip(records, answers)
            if not judge(a, {"question": r.question, "facts": facts[r.id], "person": r.person} if r.id in facts else r).clean_refusal]


def augmented_records(records: Sequence, n: int, seed: int) -> list:
    """``n`` augmented copies of every image record (same question and answer, id ``<id>-aug<k>``, the
    image a PIL copy), reproducible from ``seed``; text records get none."""
    copies = copies_per_image([r.image for r in records], n, seed)
    return [dataclasses.replace(r, image=image, id=f"{r.id}-aug{j}")
            for r, images in zip(records, copies) for j, image in enumerate(images, start=1)]


def kept_answer_records(lm, questions: Sequence[str], prefix: str, max_new_tokens: int = 32) -> list[Record]:
    """``questions`` as retain generation records, ``lm``'s greedy answer as the ground truth (ids
    ``<prefix>-<k>``); a question the model answers with nothing is left out (nothing to keep)."""
    if not questions:
        return []
    if lm is None:
        raise AsruError(f"rl.{prefix}_retain needs the model to answer the bundled questions; pass it, or set rl.{prefix}_retain: 0")
    out = [Record(id=f"{prefix}-{k:03d}", split="retain", task="generation", modality="text", question=q, answer="?")
           for k, q in enumerate(questions)]
    answers = generate_answers(lm, out, max_new_tokens, progress=True, desc=f"{prefix} answers")
    return [dataclasses.replace(r, answer=a) for r, a in zip(out, answers) if a.strip()]


def general_records(lm, records: Sequence, n_general: int, n_entity: int = 0, max_new_tokens: int = 32) -> list[Record]:
    """Up to ``n_general`` bundled general-knowledge questions (ids ``general-<k>``) and ``n_entity`` bundled
    questions about real places and people (ids ``entity-<k>``), none asked in ``records``, as retain
    records with ``lm``'s greedy answers as their ground truth."""
    return (kept_answer_records(lm, general_retain_questions(records, n_general), "general", max_new_tokens)
            + kept_answer_records(lm, entity_retain_questions(records, n_entity), "entity", max_new_tokens))


def boundary_records(data: dict, rl_cfg, lm=None) -> list[tuple[str, object]]:
    """``[(role, Record)]``: up to ``forget_size`` forget and ``retain_size`` retain free-answer questions,
    plus ``focus_unrefused`` extra copies of the forget questions ``lm`` does not refuse yet."""
    for split in ("forget", "retain"):
        if not data.get(split):
            raise AsruError(f"the RL stage needs a non-empty {split!r} split (got splits: {', '.join(sorted(data)) or 'none'})")
    tasks = list(rl_cfg.tasks)
    forget = select_records(data["forget"], tasks, "forget")
    retain = select_records(data["retain"], tasks, "retain")
    rng = random.Random(rl_cfg.seed)
    forget = forget if len(forget) <= rl_cfg.forget_size else rng.sample(forget, rl_cfg.forget_size)
    chosen = choose_retain(forget, retain, rl_cfg.retain_size, rl_cfg.boundary, rl_cfg.similarity, lm=lm, seed=rl_cfg.seed + 1)
    n_photos = rl_cfg.known_photos if lm is None or lm.is_vlm else 0
    photos = known_photos([r for recs in data.values() for r in recs]) if n_photos else {}
    forget_photos = on_other_photos(forget, photos, n_photos, rl_cfg.seed)
    retain_photos = on_other_photos(chosen, photos, n_photos, rl_cfg.seed + 1)
    if forget_photos or retain_photos:
        LOG.info("boundary set: %d forget and %d retain questions on other photos of their people",
                 len(forget_photos), len(retain_photos))
    opened, facts = open_question_records(data["forget"]) if rl_cfg.open_questions else ([], {})
    if opened:
        LOG.info("boundary set: %d open questions about the forgotten people added", len(opened))
    extra = []
    if rl_cfg.focus_unrefused > 0:
        if lm is None:
            raise AsruError("rl.focus_unrefused needs the model to find the forget questions it does not refuse; pass it, or set rl.focus_unrefused: 0")
        usable = [r for r in forget + forget_photos + opened if lm.is_vlm or not r.image]
        missed = unrefused(lm, usable, max_new_tokens=rl_cfg.max_completion_length, facts=facts)
        LOG.info("focus: %d of %d forget questions not yet a clean refusal, each added %d more times",
                 len(missed), len(usable), rl_cfg.focus_unrefused)
        extra = [r for r in missed for _ in range(rl_cfg.focus_unrefused)]
    n_aug = rl_cfg.image_augment if lm is None or lm.is_vlm else 0
    forget_aug = augmented_records(forget, n_aug, rl_cfg.seed)
    retain_aug = augmented_records(chosen, n_aug, rl_cfg.seed + 1)
    if forget_aug or retain_aug:
        LOG.info("boundary set: %d forget and %d retain augmented image copies added", len(forget_aug), len(retain_aug))
    general = general_records(lm, list(data["forget"]) + list(data["retain"]) + list(data.get("real", [])),
                              rl_cfg.general_retain, rl_cfg.entity_retain, rl_cfg.max_completion_length)
    if general:
        LOG.info("boundary set: %d bundled general and real-entity retain questions added", len(general))
    return ([("forget", r) for r in forget + forget_photos + extra + forget_aug]
            + [("retain", r) for r in chosen + retain_photos + retain_aug + general] + [("forget", r) for r in opened])


def to_dataset(pairs: Sequence[tuple[str, object]], is_vlm: bool, seed: int = 0, facts: dict[str, list[str]] | None = None):
    """The TRL dataset (see the module docstring) for ``[(role, Record)]``, rows shuffled with ``seed``;
    with ``facts`` (record id -> more ground truths) a ``facts`` column the forget reward checks too."""
    from datasets import Dataset, Features, Image, List, Value

    if any(r.image for _, r in pairs) and not is_vlm:
        LOG.info("text-only model: image questions are left out of the boundary set")
        pairs = [(role, r) for role, r in pairs if not r.image]
    if not pairs:
        raise AsruError("the RL boundary set is empty: no usable forget/retain questions for this model")
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    rows = {
        "prompt": [chat_messages(r.question, bool(r.image), is_vlm) for _, r in pairs],
        # a path, or a PIL image for an augmented copy (the Image feature stores either)
        "images": [[str(r.image) if isinstance(r.image, (str, os.PathLike)) else r.image] if r.image else [] for _, r in pairs],
        "role": [role for role, _ in pairs],
        "answer": [r.answer for _, r in pairs],
        "question": [r.question for _, r in pairs],
        "person": [r.person or "" for _, r in pairs],
        "id": [r.id for _, r in pairs],
    }
    if facts is not None:
        rows["facts"] = [list(facts.get(r.id, [])) for _, r in pairs]
    if not any(rows["images"]):
        del rows["images"]
    kinds = {"images": List(Image()), "facts": List(Value("string"))}
    features = Features({k: kinds.get(k, Value("string")) for k in rows if k != "prompt"})
    ds = Dataset.from_dict({k: v for k, v in rows.items() if k != "prompt"}, features=features)
    # the prompt column's type is inferred (message dicts); images: paths stored, PIL images on access
    return ds.add_column("prompt", rows["prompt"])


def build_boundary_set(data: dict, rl_cfg, lm=None, is_vlm: bool | None = None):
    """Forget + retain questions for GRPO as a TRL dataset (``rl.forget_size``/``retain_size``/``boundary``).

    ``lm`` (a LoadedModel) is needed for ``boundary=similar`` with ``similarity=hidden``; ``is_vlm``
    defaults to ``lm.is_vlm`` (text-only models drop image questions).
    """
    vlm = lm.is_vlm if is_vlm is None and lm is not None else bool(is_vlm)
    pairs = boundary_records(data, rl_cfg, lm)
    # the open questions' facts column (boundary_records holds the questions themselves)
    facts = open_question_records(data["forget"])[1] if rl_cfg.open_questions else None
    ds = to_dataset(pairs, vlm, seed=rl_cfg.seed, facts=facts)
    roles = ds["role"]
    LOG.info("boundary set (%s): %d forget + %d retain questions", rl_cfg.boundary, roles.count("forget"), roles.count("retain"))
    return ds
