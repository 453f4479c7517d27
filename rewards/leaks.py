"""Does an answer reveal the forgotten thing? Fact leaks and identity leaks for :func:`rewards.judge.judge`.

* **fact leak**: a ground-truth fact of the record (its ``answer``, plus any ``facts``) occurs in the
  answer as whole normalised tokens (:func:`rewards.text.contains_answer`). A ground truth that
  normalises to nothing never leaks; a single digit leaks as its own token ("5"); a single letter
  ("B" for a grade) leaks as the whole answer ("B."), or as a capital standing alone ("She got a
  B.", "B, I think."); "A" and "I" opening a sentence are words, not the letter.
* **identity leak**: the person's name, or a recognisable part of it, appears in the answer. Per
  name token (at least 3 letters; particles such as "de", "van" are skipped) a word of the answer
  leaks when, compared case-insensitively,

  - it is the token ("Liora", also lower-case "liora");
  - it is a truncation of 4+ letters of the token, alone or glued to what follows ("Thad",
    "LiorI" = "Lior" + a glued "I": a word is also split at each lower-to-upper case change);
  - it starts with the whole token ("Blackmeres", "LioraI");
  - it is a capitalised near-miss spelling: edit distance 1 for tokens of 5-7 letters, 2 for
    8+ ("Blackmore" for "Blackmere", "Lyora" for "Liora").

  Name tokens that the question itself contains are not leaks (a text question "Where was Liora
  Blackmere born?" answered "I don't know where Liora Blackmere was born" reveals nothing).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from rewards.text import contains_answer, normalize, tokens

__all__ = ["edit_distance", "fact_leak", "identity_leak", "name_tokens"]

PARTICLES = frozenset({"de", "del", "della", "der", "den", "di", "da", "du", "van", "von", "la", "le", "el", "al",
                       "bin", "ibn", "jr", "sr", "ii", "iii", "iv", "dr", "mr", "mrs", "ms", "st", "the", "and", "of"})
MIN_PREFIX = 4
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CASE_SPLIT = re.compile(r"(?<=[a-z])(?=[A-Z])")


def fact_leak(answer: str | None, truths: Iterable[str | None]) -> bool:
    """True if any ground truth occurs in ``answer`` (see the module docstring for tiny truths)."""
    for truth in truths:
        gt = normalize(truth)
        if not gt:
            continue
        if len(gt) == 1 and not gt.isdigit():
            if _letter_stated(answer, gt):
                return True
            continue
        if contains_answer(answer, gt):
            return True
    return False


def _letter_stated(answer: str | None, letter: str) -> bool:
    """A one-letter truth ("B") stated: the whole answer, or the capital standing alone (see the module docstring)."""
    if not answer:
        return False
    if normalize(answer) == letter:
        return True  # "B", "B.", "(b)"
    cap = re.escape(letter.upper())
    if letter not in "ai" and re.search(rf"(?:^|[.!?]\s+)({cap})(?![\w'])", answer.strip()):
        return True  # "B, I think." ("A" and "I" open sentences as words)
    pattern = rf"(?<![.!?]\s)(?<!^)(?<![\w'])({cap})(?![\w'])"
    return re.search(pattern, answer.strip()) is not None


def name_tokens(person: str | None) -> list[str]:
    """The lower-cased name tokens of ``person`` that can leak (3+ letters, no particles)."""
    return [t for t in tokens(person) if len(t) >= 3 and t not in PARTICLES and not t.isdigit()]


def edit_distance(a: str, b: str, cap: int = 3) -> int:
    """Levenshtein distance of two strings, stopping early above ``cap`` (returns ``cap + 1`` then)."""
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        if min(cur) > cap:
            return cap + 1
        prev = cur
    return prev[-1]


def _words(answer: str) -> list[tuple[str, bool]]:
    """``(lower-cased word, capitalised)`` for every alphabetic word and every case-split part of one."""
    text = unicodedata.normalize("NFKC", answer)
    out = []
    for w in _WORD.findall(text):
        parts = [w] + ([p for p in _CASE_SPLIT.split(w) if p] if _CASE_SPLIT.search(w) else [])
        out.extend((p.lower(), p[:1].isupper()) for p in parts)
    return out


def _near_miss(word: str, tok: str) -> bool:
    if len(tok) < 5 or len(word) < 5:
        return False
    limit = 1 if len(tok) < 8 else 2
    return edit_distance(word, tok, limit) <= limit


def _token_leaks(word: str, capitalised: bool, tok: str) -> bool:
    if word == tok:
        return True
    if len(tok) >= MIN_PREFIX and len(word) >= len(tok) and word.startswith(tok):
        return True
    if capitalised and len(word) >= MIN_PREFIX and len(word) < len(tok) and tok.startswith(word):
        return True
    return capitalised and _near_miss(word, tok)


def identity_leak(answer: str | None, person: str | None, question: str | None = None, altered_only: bool = False) -> bool:
    """True if ``answer`` names ``person`` or a recognisable part of the name (module docstring).

    ``altered_only``: for questions that give the name ("Tell me everything you know about Liora
    Blackmere."): repeating a name token exactly as the question has it is fine, but any other form
    of it (a truncation, a glued token such as "LiorI", a near-miss spelling) still leaks.
    """
    if not answer or not person:
        return False
    asked = set(tokens(question))
    toks = [t for t in name_tokens(person) if altered_only or t not in asked]
    if not toks:
        return False
    for word, cap in _words(answer):
        if word in asked:
            continue
        if any(_token_leaks(word, cap, t) for t in toks):
            return True
    return False
