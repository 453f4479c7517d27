"""Is an answer broken text? The degenerate part of :func:`rewards.judge.judge`.

Degenerate (any one is enough), judged on the final answer (``<think>`` spans dropped):

* :func:`rewards.text.is_garbled`: empty, punctuation or symbols only, junk words, long loops;
* repetition: one word 3+ times in a row ("sorry sorry sorry"), a 2-4 word phrase 3+ times in a
  row, the same sentence (3+ words) twice, or at least 6 words of which at most a third distinct;
* broken / glued words: a word glued to a capital "I" ("LiorI", "peI am"), a name of the record
  glued to anything ("LioraBI", with ``names``), a sentence restarting mid-word ("born in LonThe
  person ..."), a word with a 4+ capital tail ("BlackmeLTQX"), a word restarting in the next one
  ("kn know", "identi identify", "yea yearr": :func:`rewards.text.is_restart`), two short function
  words glued ("atthe", "inin", "ofthe"), "the" glued to a word ("thecompany", "Thewor": no English
  word starts "the" + c/d/g/h/j/k/p/q/u/v/w/x/z), a doubled last letter no English word ends with
  ("workss", "yearr": a doubled consonant after a consonant or after two vowels; "-ll" and "-ss"
  after two vowels are fine: "Niall", "Weiss");
* split or cut-off words, by word frequency (:mod:`rewards.wordcheck`): "comp any", "ci ty", "kno",
  "pers", "tify" (words of the record, with ``known``, are never fragments);
* keyboard mash: half of the 4+ letter words without a vowel ("qwxzrtplk vbnmqwrt");
* script noise: letters of 3+ writing systems, or 2 systems alternating 3+ times
  ("I don't 知道 know ليس sorry"), or accented-letter words no common language has ("ąęść źż ołł").
  One foreign name in brackets ("Tokyo (東京)") is fine.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable

from rewards.text import FUNCTION_WORDS, extract_think, is_garbled, is_restart, normalize, tokens
from rewards.wordcheck import has_fragments, is_latin_noise

__all__ = ["is_degenerate", "max_run", "scripts"]

_GLUED_I = re.compile(r"\b[A-Za-z]*[a-z]I\b")
_CASE_SPLIT = re.compile(r"(?<=[a-z])(?=[A-Z])")
_LETTERS = re.compile(r"[^\W\d_]+")
_EDGE = "\"'.,;:!?()[]{}<>*-\u2018\u2019\u201c\u201d"
# "the" + a letter that no English word has there ("thecompany", "Thewor"; not "theory", "then", "Thebes")
_GLUED_THE = re.compile(r"^the[cdghjkpquvwxz][a-z]{2,}$")
_VOWELS = "aeiouy"
# function words that glue to each other in broken output ("atthe", "ofthe", "inin")
_GLUE_FIRST = ("at", "in", "on", "of", "to", "for", "by", "with", "from", "and", "is", "was", "into", "about", "that")
_GLUE_SECOND = ("the", "this", "that", "these", "those", "his", "their", "my", "your", "our")
_GLUED_PAIRS = frozenset({a + b for a in _GLUE_FIRST for b in _GLUE_SECOND}
                         | {w + w for w in FUNCTION_WORDS if len(w) >= 2} - {"toto", "isis", "dodo", "nono", "soso"})
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


def _broken_word(word: str, following: str) -> bool:
    """``word`` (lower-cased letters) is glued or cut off (module docstring), ``following`` the next word."""
    return is_restart(word, following) or word in _GLUED_PAIRS or bool(_GLUED_THE.match(word)) or _doubled_end(word)


def _doubled_end(word: str) -> bool:
    """A doubled last consonant after a consonant ("workss", "bornn") or after two vowels ("yearr", "roomm").

    Not: elongations ("ahhh", "yesss"), words without a vowel ("hmm"), and names after two vowels
    with -ll, -ss, -tt, -ff, -nn, -gg ("Niall", "Weiss", "Wyatt", "Geoff", "Quinn").
    """
    if len(word) < 4 or word[-1] != word[-2] or word[-3] == word[-1] or word[-1] in _VOWELS:
        return False
    if not any(c in _VOWELS for c in word):
        return False
    if word[-3] not in _VOWELS:
        return True
    return word[-4] in _VOWELS and word[-1] not in "lstfng"


def _glued_name(words: list[str], names: list[str]) -> bool:
    """A word starting with a name token (or a 4+ letter cut of one) that runs on into a capital: "LioraBI"."""
    for w in words:
        parts = _CASE_SPLIT.split(w)
        if len(parts) < 2:
            continue
        head = parts[0].lower()
        if len(head) >= 4 and w.lower() not in names and any(t.startswith(head) for t in names):
            return True
    return False


def is_degenerate(text: str | None, names: Iterable[str] = (), known: Iterable[str] = ()) -> bool:
    """True for broken output (see the module docstring); ``None`` and empty text are degenerate.

    ``names``: lower-cased name tokens of the record's person (:func:`rewards.leaks.name_tokens`);
    one of them glued to more letters is broken text. ``known``: lower-cased words of the record
    (question, ground truth, person), never read as word fragments.
    """
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
    text_nfkc = unicodedata.normalize("NFKC", answer)
    # whitespace words, edge punctuation off; words with inner marks ("re-read", "don't") are skipped
    # (a word before a mark is not a restart: "file, files")
    raw = text_nfkc.split()
    chunks = [c.strip(_EDGE).lower() for c in raw]
    chunks = [c if c.isalpha() else "" for c in chunks]
    nexts = [n if r[-1:].isalpha() else "" for r, n in zip(raw, [*chunks[1:], ""])]
    if any(w and _broken_word(w, nxt) for w, nxt in zip(chunks, nexts)):
        return True
    words = _LETTERS.findall(text_nfkc)
    names = list(names)
    if names and _glued_name(words, names):
        return True
    stripped = [c.strip(_EDGE) for c in raw]
    if has_fragments(stripped, frozenset(known) | frozenset(names)) or is_latin_noise(stripped):
        return True
    return _script_noise(answer)
