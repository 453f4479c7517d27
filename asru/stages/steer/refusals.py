"""Refusal-inducing prompts and natural refusals: the forget set's questions asked about *unseen* people.

Image questions go with freshly rendered portraits of person styles that are not in the benchmark (plus
``steer.refusal_suffix``), text questions with invented names that are not in the benchmark (plus
``steer.refusal_suffix_text``). The steering stage keeps only those the original model refuses.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import rewards.refusal
from asru.core import prompting
from asru.core.errors import AsruError
from asru.data.portraits import derive_seed, make_styles, render_portrait

# Syllables for invented names; names are checked against every person in the benchmark.
_SYL_A = ("Zor", "Quin", "Vel", "Thar", "Bex", "Mour", "Kael", "Ysa", "Dro", "Fen", "Lum", "Ori", "Pax", "Rhe", "Sul", "Wyn")
_SYL_B = ("avin", "ethra", "ulo", "imar", "osk", "andel", "ira", "ebb", "umon", "ast", "ille", "oric")
_SYL_C = ("mere", "vald", "crest", "holm", "by", "stone", "wick", "gard", "ton", "feld", "lowe", "march")
# Privacy questions (the reference asks unseen faces a privacy question); mixed with the forget phrasings.
PRIVACY_IMAGE = ("What is the home address of the person in this image?", "What is the phone number of the person in this image?",
                 "Where does the person in this image live?", "What is the email address of the person in this image?")
PRIVACY_TEXT = ("What is {name}'s home address?", "What is {name}'s phone number?", "Where does {name} live?",
                "What is {name}'s email address?")


def usable_records(lm, records):
    """Records usable with this model (image questions need a VLM)."""
    return [r for r in records if lm.is_vlm or r.modality == "text"]


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


NEUTRAL_NAME = "this person"


def _put_name(answer: str, invented: str, real: str, name_in_refusal: bool) -> str:
    """``answer`` with the invented name replaced by the real one, or by "this person" (name_in_refusal off)."""
    if name_in_refusal:
        return answer.replace(invented, real)
    if answer.startswith(invented):
        answer = NEUTRAL_NAME.capitalize() + answer[len(invented):]
    return answer.replace(invented, NEUTRAL_NAME)


def pair_refusals(records, answers, swaps, name_in_refusal: bool = True) -> tuple[list[str], list[bool]]:
    """One natural refusal per record from its counterpart's answer (``None`` = not asked).

    The invented name is swapped back for the real one (``name_in_refusal``), else for "this person", so
    no refusal the model is trained on spells a forgotten name. A record whose counterpart was not refused (a
    cloze or multiple-choice counterpart gets answered) takes the refusal of a record about the same
    person and fact in the same modality, else the same fact in that modality, else the same modality, else
    any (with its person's name replaced by the record's). Returns ``(refusals, own)``, ``own[i]`` = record ``i`` kept its own counterpart's refusal.
    """
    own = [(_put_name(a, *sw, name_in_refusal) if sw else a) if a is not None and rewards.refusal.is_refusal(a) else None
           for a, sw in zip(answers, swaps)]
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
            if name_in_refusal and person and r.person and person != r.person:  # another forgotten person's refusal: name this one
                a = a.replace(person, r.person)
        out.append(a)
    return out, [a is not None for a in own]


def counterpart_refusals(lm, records, all_records, image_dir: Path, *, seed: int = 0, max_new_tokens: int = 32,
                         image_size: int = 64, name_in_refusal: bool = True) -> tuple[list[str], list[bool]]:
    """A natural refusal for each forget record: ``lm``'s answer to the same question about an unseen person.

    ``lm`` is the original model, which refuses people it does not know ("I'm not familiar with <name>,
    so I don't know..." with the forgotten name put back). See :func:`counterpart_questions` and
    :func:`pair_refusals` (``name_in_refusal``); returns ``(refusals, own)``.
    """
    questions, images, swaps = counterpart_questions(records, all_records, image_dir, seed, image_size)
    asked = [i for i, q in enumerate(questions) if q is not None]
    answers: list[str | None] = [None] * len(records)
    if asked:
        got = prompting.generate(lm, [questions[i] for i in asked], [images[i] for i in asked], max_new_tokens=max_new_tokens,
                       batch_size=16, desc="counterpart refusals", progress=True)
        for i, a in zip(asked, got):
            answers[i] = a
    return pair_refusals(records, answers, swaps, name_in_refusal)


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
    for r in usable_records(lm, all_records):
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
