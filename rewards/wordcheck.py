"""Word fragments in an answer, by word frequency (``wordfreq``): the split / truncated words of broken output.

Checked on lower-case alphabetic words that are not words of the record (question, ground truth,
person), and only in answers that read as English (2+ English function words, a quarter of the words
or more), so that refusals in other languages ("Je ne sais pas", "Ich weiß es nicht") are never read
as broken English:

* a word English does not have at all (Zipf frequency 0: "tify");
* a cut-off word: a rare word (Zipf < 3.3) of 3+ letters that begins a common word (Zipf >= 4.5, and
  1.5 higher): "kno" (know), "pers" (person), "bor" (born). Real rare words do not begin a much more
  common one ("logician", "woodcarving", "chessmaster" stay fine);
* a word split in two: two neighbours that together make a common word (Zipf >= 4) where one part is
  a lone letter other than "a" / "i" or not itself common (Zipf < 4): "comp any", "ci ty", "work s".
  Two common words ("any one", "can not", "a part") stay fine.

Latin-script noise ("ąęść źż ołł"): words with non-ASCII letters that no common language of
``wordfreq`` has, when they are half of the answer's words or more. Lookups are cached: the judge runs
on every GRPO completion.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Collection
from functools import lru_cache

from wordfreq import top_n_list, zipf_frequency

from rewards.text import FUNCTION_WORDS

__all__ = ["has_fragments", "is_latin_noise"]

_RARE = 3.3        # a cut-off word is rarer than this ...
_COMMON = 4.5      # ... and begins a word at least this common ...
_GAP = 1.5         # ... by this many Zipf points
_SPLIT_WHOLE = 4.0  # two parts that make a word this common ...
_SPLIT_PART = 4.0   # ... where one part is rarer than this
_LONE_OK = frozenset({"a", "i"})
# the accented letters of each common Latin-script language (lower case): a word is looked up only in the
# languages whose alphabet has all its accented letters, so one French answer loads the French list
# only (each list is 5-100 MB in memory; loading all of them would cost about half a gigabyte)
_ALPHABETS = {
    "fr": "àâæçéèêëîïôœùûüÿ", "es": "áéíñóúü", "pt": "àáâãçéêíóôõú", "it": "àèéìíîòóùú", "de": "äöüß",
    "nl": "áéëïóöü", "pl": "ąćęłńóśźż", "cs": "áčďéěíňóřšťúůýž", "sk": "áäčďéíĺľňóôŕšťúýž",
    "sl": "čšž", "sh": "čćđšž", "hu": "áéíóöőúüű", "ro": "ăâîșşțţ", "tr": "çğıöşü", "sv": "åäö",
    "da": "æøå", "nb": "æøåéèóòô", "fi": "äöå", "is": "áðéíóúýþæö", "ca": "àçèéíïòóúü",
    "lt": "ąčęėįšųūž", "lv": "āčēģīķļņšūž", "vi": "àáâãèéêìíòóôõùúýăđĩũơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ",
}


@lru_cache(maxsize=65536)
def _zipf(word: str) -> float:
    return zipf_frequency(word, "en")


@lru_cache(maxsize=1)
def _prefix_best() -> dict[str, float]:
    """Proper prefix (3+ letters) of a common English word -> the highest Zipf frequency among those words."""
    best: dict[str, float] = {}
    for w in top_n_list("en", 20000):
        if not w.isalpha() or not w.isascii():
            continue
        f = zipf_frequency(w, "en")
        if f < _COMMON:
            break
        for k in range(3, len(w)):
            p = w[:k]
            if f > best.get(p, 0.0):
                best[p] = f
    return best


def _plain(word: str) -> bool:
    return word.isascii() and word.isalpha() and word.islower()


@lru_cache(maxsize=65536)
def _fragment(word: str) -> bool:
    """``word`` (lower-case ASCII letters) is no English word or a cut-off one (module docstring)."""
    f = _zipf(word)
    if f == 0.0:
        return True
    if len(word) < 3 or f >= _RARE:
        return False
    return _prefix_best().get(word, 0.0) >= max(_COMMON, f + _GAP)


@lru_cache(maxsize=65536)
def _split(a: str, b: str) -> bool:
    """``a b`` is one common word split in two (module docstring)."""
    if _zipf(a + b) < _SPLIT_WHOLE:
        return False
    lone = any(len(p) == 1 and p not in _LONE_OK for p in (a, b))
    return lone or min(_zipf(a), _zipf(b)) < _SPLIT_PART


def _reads_english(words: list[str]) -> bool:
    n = sum(w.lower() in FUNCTION_WORDS for w in words)
    return n >= 2 and n * 4 >= len(words)


def has_fragments(words: list[str], known: Collection[str] = ()) -> bool:
    """True when ``words`` (the answer's whitespace words, edge punctuation off) hold a split or cut-off word.

    ``known``: lower-cased words of the record; they are never fragments.
    """
    if not _reads_english(words):
        return False
    plain = [w if _plain(w) and w not in known else "" for w in words]
    if any(w and _fragment(w) for w in plain):
        return True
    return any(a and b and (a + b) not in known and _split(a, b) for a, b in itertools.pairwise(plain))


@lru_cache(maxsize=65536)
def _noise_word(word: str) -> bool:
    """A lower-case Latin-script word with accented letters that no common language writing them has."""
    if word.isascii() or not word.isalpha() or not word.islower():
        return False
    if any(not unicodedata.name(c, "").startswith("LATIN") for c in word):
        return False
    accented = {c for c in word if not c.isascii()}
    langs = [lang for lang, letters in _ALPHABETS.items() if accented <= set(letters)]
    return all(zipf_frequency(word, lang) == 0.0 for lang in langs)


def is_latin_noise(words: list[str]) -> bool:
    """Half or more of the alphabetic ``words`` are accented-letter noise ("ąęść źż ołł ąę")."""
    alpha = [w for w in words if w.isalpha()]
    if not alpha or all(w.isascii() for w in alpha):
        return False
    return sum(_noise_word(w) for w in alpha) * 2 >= len(alpha)
