"""Is an answer broken text? The degenerate part of :func:`rewards.judge.judge`.

Degenerate (any one is enough), judged on the final answer (``<think>`` spans dropped):

* :func:`rewards.text.is_garbled`: empty, punctuation or symbols only, junk words, long loops;
* repetition: one word 3+ times in a row ("sorry sorry sorry"), a 2-4 word phrase 3+ times in a
  row, the same sentence (3+ words) twice, or at least 6 words of which at most a third distinct;
* broken / glued words: a name glued to a capital "I" ("LiorI", "ThadI"), a sentence restarting
  mid-word ("born in LonThe person ..."), a word with a 4+ capital tail ("BlackmeLTQX");
* keyboard mash: half of the 4+ letter words without a vowel ("qwxzrtplk vbnmqwrt");
* script noise: letters of 3+ writing systems, or 2 systems alternating 3+ times
  ("I don't 知道 know ليس sorry"). One foreign name in brackets ("Tokyo (東京)") is fine.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

from rewards.text import extract_think, is_garbled, normalize, tokens

__all__ = ["is_degenerate", "max_run", "scripts"]

_GLUED_I = re.compile(r"\b[A-Z]\w*[a-z]{2}I\b")
_RESTART = re.compile(r"[a-z]{2,}(?:The|He|She|It|This|They|His|Her|As|My|We|There|Unfortunately|Sorry|I'm|Im)\b")
_CAPS_TAIL = re.compile(r"\b[A-Z]?[a-z]{2,}[A-Z]{4,}\w*")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


def max_run(seq: list) -> int:
    """Length of the longest run of equal consecutive items (0 for an empty list)."""
    best = cur = 0
    prev = object()
    for x in seq:
        cur = cur + 1 if x == prev else 1
        best, prev = max(best, cur), x
    return best


def _phrase_loop(toks: list[str]) -> bool:
    """A 1-4 word unit repeated 3+ times in a row."""
    for n in range(1, 5):
        for start in range(n):
            units = [tuple(toks[i : i + n]) for i in range(start, len(toks) - n + 1, n)]
            if max_run(units) >= 3:
                return True
    return False


def _vowelless(toks: list[str]) -> bool:
    """Keyboard mash: at least half of the 4+ letter words have no vowel ("qwxzrtplk vbnmqwrt")."""
    long = [t for t in toks if len(t) >= 4 and t.isascii() and t.isalpha()]
    return len(long) >= 2 and sum(not set(t) & set("aeiouy") for t in long) * 2 >= len(long)


def scripts(text: str) -> list[str]:
    """The writing system of each letter of ``text`` in order (first word of its Unicode name: LATIN, CJK ...)."""
    out = []
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            out.append(name.split(" ")[0] if name else "?")
    return out


def _script_noise(text: str) -> bool:
    seq = scripts(text)
    kinds = set(seq)
    if len(kinds) >= 3:
        return True
    if len(kinds) == 2:
        switches = sum(a != b for a, b in itertools.pairwise(seq))
        return switches >= 3
    return False


def is_degenerate(text: str | None) -> bool:
    """True for broken output (see the module docstring); ``None`` and empty text are degenerate."""
    if not text or not text.strip():
        return True
    _, answer = extract_think(text)
    if is_garbled(answer):
        return True
    toks = tokens(answer)
    if _phrase_loop(toks):
        return True
    if len(toks) >= 6 and len(set(toks)) * 3 <= len(toks):
        return True
    if _vowelless(toks):
        return True
    sents = [normalize(s) for s in _SENT.split(answer)]
    sents = [s for s in sents if len(s.split()) >= 3]
    if len(set(sents)) < len(sents):
        return True
    if _GLUED_I.search(answer) or _RESTART.search(answer) or _CAPS_TAIL.search(answer):
        return True
    return _script_noise(answer)
