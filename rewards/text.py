"""Text matching shared by the rewards and the evaluation (the only copy in the project).

Everything here is a pure function of strings, so that training optimises exactly what evaluation
measures. All comparisons work on :func:`normalize`-d text split on whitespace ("tokens").

Design decisions (documented once, here):

* :func:`contains_answer` is *token-boundary aware*: the normalised ground truth must appear as a
  whole run of tokens in the normalised answer. ``"1990"`` does not match ``"19901"`` and ``"art"``
  does not match ``"the heart"``, but ``"Paris"`` matches ``"Paris, France."``. The price: an
  inflected form (``"nurse"`` vs ``"nurses"``) is not a match. The reference implementation uses a
  plain substring test; ours never counts a fragment of a longer word as a leak.
* :func:`rouge_l` is the LCS F-measure over normalised tokens, without a stemmer (the reference
  uses ``rouge_score`` with the Porter stemmer), so values are exact and reproducible by hand.
* Refusals are judged in :mod:`rewards.refusal` (the speaker declining, not a refusal phrase found
  anywhere); the full answer judgement (refusal, leaks, degenerate text) is :func:`rewards.judge.judge`.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = [
    "FUNCTION_WORDS",
    "bleu",
    "contains_answer",
    "distinct_n",
    "extract_think",
    "has_think",
    "is_garbled",
    "is_junk_word",
    "is_restart",
    "ngram_repetition",
    "ngrams",
    "normalize",
    "rouge_l",
    "tokens",
]

_NON_WORD = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


def normalize(s: str | None) -> str:
    """Lowercase, turn punctuation into spaces and collapse whitespace.

    Unicode is NFKC-folded first (full-width letters, ligatures). Underscore counts as punctuation.
    ``None`` gives ``""``. Example: ``normalize("Dr. O'Brien,  M.D.!") == "dr o brien m d"``.
    Results are cached: several rewards normalise the same completion in one GRPO step.
    """
    if not s:
        return ""
    return _normalize(s)


@functools.lru_cache(maxsize=8192)
def _normalize(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower()
    s = _NON_WORD.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def tokens(s: str | None) -> list[str]:
    """The normalised tokens of ``s`` (``normalize(s).split()``)."""
    return normalize(s).split()


def contains_answer(answer: str | None, ground_truth: str | None) -> bool:
    """True if the normalised ground truth occurs in the normalised answer as whole tokens.

    An empty (or punctuation-only) ground truth never matches. ``contains_answer("Born in 1990.",
    "1990")`` is True; ``contains_answer("19901", "1990")`` is False.
    """
    gt = normalize(ground_truth)
    if not gt:
        return False
    return f" {gt} " in f" {normalize(answer)} "


# --------------------------------------------------------------------------------------------
# Overlap metrics
# --------------------------------------------------------------------------------------------
def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else (max(cur[j - 1], prev[j])))
        prev = cur
    return prev[-1]


def rouge_l(pred: str | None, ref: str | None, measure: str = "f1") -> float:
    """ROUGE-L F1 (or, with ``measure="recall"``, recall: TOFU's answer score) of ``pred`` against ``ref``
    over normalised tokens (no stemming).

    P = LCS / len(pred), R = LCS / len(ref), F = 2PR / (P + R); 0.0 when either side is empty or
    nothing is shared. Example: pred "the cat sat on the mat", ref "the cat is on the mat":
    LCS 5, P = R = 5/6, F = 5/6.
    """
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return 0.0
    lcs = _lcs_length(p, r)
    if lcs == 0:
        return 0.0
    prec, rec = lcs / len(p), lcs / len(r)
    return rec if measure == "recall" else 2 * prec * rec / (prec + rec)


def ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of a token list, in order (empty if it has fewer than ``n`` tokens)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def bleu(pred: str | None, ref: str | None, max_n: int = 4) -> float:
    """Sentence BLEU-``max_n`` of ``pred`` against one reference, over normalised tokens.

    Modified n-gram precisions p_n = matched_n / total_n with clipped counts; smoothing of Lin & Och
    (2004) for n >= 2 (p_n = (matched_n + 1) / (total_n + 1), the same as NLTK's ``method2`` for
    higher orders); p_1 is not smoothed, so no shared word gives 0.0. Brevity penalty
    BP = 1 if c > r else exp(1 - r / c). BLEU = BP * exp(mean_n log p_n). Empty pred or ref: 0.0.
    Example: pred "the cat sat", ref "the cat sat on the mat": p1 = 1, p2 = 3/3, p3 = 2/2,
    p4 = 1/1, BP = exp(1 - 6/3) = e^-1, BLEU = 0.3679.
    """
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        pc = Counter(ngrams(p, n))
        rc = Counter(ngrams(r, n))
        total = sum(pc.values())
        matched = sum(min(c, rc[g]) for g, c in pc.items())
        if n == 1:
            if matched == 0:
                return 0.0
            prec = matched / total
        else:
            prec = (matched + 1) / (total + 1)
        log_sum += math.log(prec)
    c, rl = len(p), len(r)
    bp = 1.0 if c > rl else math.exp(1 - rl / c)
    return bp * math.exp(log_sum / max_n)


# --------------------------------------------------------------------------------------------
# Repetition / diversity
# --------------------------------------------------------------------------------------------
def ngram_repetition(text: str | None, n: int = 3) -> float:
    """Share of the n-grams of ``text`` that repeat an earlier one: 1 - distinct / total.

    0.0 when there are no n-grams. "a b a b a b" with n = 2: 5 bigrams, 2 distinct -> 0.6.
    """
    grams = ngrams(tokens(text), n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(texts: Iterable[str | None], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016) over several texts: distinct n-grams / total n-grams, pooled.

    0.0 when the texts have no n-grams at all. Two identical texts "a b c" with n = 1 -> 3 / 6 = 0.5.
    """
    total = 0
    seen: set[tuple[str, ...]] = set()
    for t in texts:
        grams = ngrams(tokens(t), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


# --------------------------------------------------------------------------------------------
# Reasoning spans
# --------------------------------------------------------------------------------------------
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINK_SPAN = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL)


def has_think(text: str | None) -> bool:
    """True if ``text`` contains a ``<think>`` or ``</think>`` tag."""
    return bool(text) and (THINK_OPEN in text or THINK_CLOSE in text)


def extract_think(text: str | None) -> tuple[str, str]:
    """Split a completion into ``(reasoning, answer)`` at its ``<think>...</think>`` spans.

    * No tag: ``("", text.strip())``.
    * A ``</think>`` before any ``<think>`` (chat templates that put ``<think>`` in the prompt):
      the text before it is reasoning.
    * An unclosed ``<think>`` (generation cut off): everything after it is reasoning.
    * Several spans: reasoning parts joined with a newline; the answer is the rest, stripped.
    """
    if not text:
        return "", ""
    if not has_think(text):
        return "", text.strip()
    close, open_ = text.find(THINK_CLOSE), text.find(THINK_OPEN)
    if close != -1 and (open_ == -1 or close < open_):
        text = THINK_OPEN + text
    parts = [m.group(1).strip() for m in _THINK_SPAN.finditer(text)]
    answer = _THINK_SPAN.sub(" ", text).replace(THINK_CLOSE, " ")
    return "\n".join(p for p in parts if p), _SPACES.sub(" ", answer).strip()


# --------------------------------------------------------------------------------------------
# Garbled output
# --------------------------------------------------------------------------------------------
_RUN = re.compile(r"(.)\1{5,}")  # one character 6+ times in a row: "1111111", "aaaaaa"
_LOOP = re.compile(r"(.{2,6})\1{3,}")  # a 2-6 character unit 4+ times in a row: "IQLXIQLXIQLXIQLX"
_CASE_BREAK = re.compile(r"[a-z][A-Z]{4,}")  # a word turning into capitals: "BlackmeLTQLX"


def is_junk_word(word: str, min_len: int = 10) -> bool:
    """True for a long whitespace-free token that no language writes (see :func:`is_garbled`)."""
    word = word.strip(".,;:!?\"'()[]{}")
    if len(word) < min_len:
        return False
    return bool(_RUN.search(word) or _LOOP.search(word) or _CASE_BREAK.search(word))


def is_garbled(text: str | None, min_alpha: float = 0.5, max_repetition: float = 0.5, max_junk: float = 0.25) -> bool:
    """True for output that is not language: empty, mostly non-letters, junk words, or a repetition loop.

    * empty, whitespace-only, or no word at all;
    * letters are under ``min_alpha`` of the non-space characters (``"#$%^ !! ??"``). For short
      texts (at most 3 tokens) digits count as letters, so ``"1990"`` or ``"42 km"`` are fine;
    * junk words (:func:`is_junk_word`: 10+ characters holding a 6-character run, a 2-6 character unit
      repeated 4 times, or a lower-to-4-capitals break: ``"1337121111111"``, ``"BlackmeLTQLXIQLXIQ"``)
      make up more than ``max_junk`` of the non-space characters;
    * at least 8 tokens and more than ``max_repetition`` of the bigrams repeat an earlier one
      ("I don't know." three times in a row, "no no no no no no no no").
    """
    if not text or not text.strip():
        return True
    toks = tokens(text)
    if not toks:
        return True
    visible = len(text) - sum(map(str.isspace, text))
    good = sum(map(str.isalnum if len(toks) <= 3 else str.isalpha, text))
    if good / visible < min_alpha:
        return True
    junk = sum(len(w) for w in text.split() if is_junk_word(w))
    if junk / visible > max_junk:
        return True
    return len(toks) >= 8 and ngram_repetition(text, 2) > max_repetition


# --------------------------------------------------------------------------------------------
# Word restarts ("kn know", "perso person")
# --------------------------------------------------------------------------------------------
# Short words that English writes right before a longer word starting with them ("he helps",
# "an answer", "the theory", "in inside"): such a pair is text, not a restart.
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "this", "that", "these", "those", "his", "her", "him", "hers", "its", "it", "our", "ours",
    "my", "your", "their", "them", "they", "he", "she", "we", "me", "us", "i", "you", "one", "no", "not", "nor",
    "or", "and", "but", "so", "as", "at", "by", "for", "from", "in", "into", "of", "off", "on", "onto", "out",
    "over", "to", "up", "upon", "with", "is", "was", "are", "be", "been", "am", "do", "did", "does", "done",
    "has", "had", "have", "can", "may", "must", "will", "would", "shall", "should", "could", "all", "any",
    "some", "each", "every", "few", "many", "more", "most", "much", "other", "such", "own", "same", "than",
    "then", "there", "here", "when", "where", "who", "whom", "what", "which", "how", "why", "yes", "yet",
    "also", "just", "only", "very", "too", "now", "new", "old", "man", "art", "car", "per",
})


def is_restart(word: str, following: str) -> bool:
    """True if ``word`` is a broken start of ``following`` ("kn" "know", "perso" "person", "yea" "yearr").

    Both lower-cased tokens; ``word`` has 2+ letters, ``following`` starts with it and is longer, and
    ``word`` is not a short English word written before a longer one ("he helps", "an answer").
    """
    return (len(word) >= 2 and len(following) > len(word) and following.startswith(word)
            and word not in FUNCTION_WORDS and word.isalpha())
