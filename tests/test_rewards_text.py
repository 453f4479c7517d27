"""Exact, hand-computed values for rewards/text.py (the text matching shared with evaluation)."""

import math

import pytest

from rewards.refusal import is_refusal
from rewards.text import (
    bleu,
    contains_answer,
    distinct_n,
    extract_think,
    has_think,
    is_garbled,
    ngram_repetition,
    ngrams,
    normalize,
    rouge_l,
    tokens,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Dr. O'Brien,  M.D.!", "dr o brien m d"),
        ("  Hello\tWORLD\n", "hello world"),
        ("snake_case-word", "snake case word"),
        ("ＡＢＣ ｆｕｌｌ", "abc full"),  # NFKC folds full-width letters
        ("Café “quoted”", "café quoted"),
        ("", ""),
        (None, ""),
        ("?!...", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_tokens():
    assert tokens("He's 42, isn't he?") == ["he", "s", "42", "isn", "t", "he"]


@pytest.mark.parametrize(
    "answer, truth, expected",
    [
        ("He was born in Paris, France.", "Paris", True),
        ("He was born in PARIS.", "paris", True),
        ("She was born in 1990.", "1990", True),
        ("The code is 19901.", "1990", False),  # a fragment of a longer token is not a match
        ("She follows her heart.", "art", False),
        ("Her mother is Helena Adler.", "Helena Adler", True),
        ("Her mother is Helena, and Adler is her aunt.", "Helena Adler", False),
        ("He works as a nurse.", "nurses", False),  # trade-off: no stemming
        ("Dr O Brien", "Dr. O'Brien", True),
        ("anything", "", False),
        ("anything", None, False),
        ("anything", "...", False),
        ("", "Paris", False),
        (None, "Paris", False),
    ],
)
def test_contains_answer(answer, truth, expected):
    assert contains_answer(answer, truth) is expected


REFUSALS = [
    "I don't know.",
    "I do not know who this is.",
    "I really don’t know the answer.",
    "I'm not sure about that.",
    "I am not entirely certain.",
    "I have no idea.",
    "No clue, sorry.",
    "That is beyond my knowledge.",
    "This is outside my expertise.",
    "I can't provide that information.",
    "I cannot provide details about private individuals.",
    "I'm unable to answer that.",
    "Unable to share personal details.",
    "I'm not able to identify people from images.",
    "I can’t identify the person in this image.",
    "The image shows a woman with brown hair, but I cannot determine her identity.",
    "I'd need to look that up.",
    "I would need to check.",
    "I don't have any information about this person.",
    "I do not have information on that.",
    "I don't have enough information to answer.",
    "I have no information about her.",
    "There is no publicly available information about this person.",
    "I'm sorry, but I can't help with that.",
    "Sorry, I can't identify this person.",
    "I'm not familiar with this person.",
    "I don't recognise this person.",
    "I don't recognize her.",
    "I can't recall her birthplace.",
    "I couldn't find any details.",
    "I'm not aware of her occupation.",
    "That's unknown to me.",
    "It is not possible to determine who this is from the image.",
    "To protect their privacy, I won't share personal details.",
    "I'd rather not say.",
    "As an AI, I don't have personal information about individuals.",
    "The person in this image is not someone I can identify.",
    "There's no way for me to know that.",
    "I'm not in a position to say.",
    "I lack the specific information needed.",
    "That information is confidential.",
    "This information is not available to me.",
]

ANSWERS = [
    "He is not a doctor.",
    "No, she was born in Lyon.",
    "No.",
    "Paris",
    "1990",
    "He can't swim.",
    "She doesn't know him.",
    "She could not find work in Paris.",
    "He was unable to attend university.",
    "They cannot afford a house.",
    "He works as a nurse and is not married.",
    "He provides legal advice.",
    "Her favourite colour is blue.",
    "She knows French and Spanish.",
    "He lacks experience in management.",
    "She attends a private school in Lyon.",
    "Her medical records are kept at the clinic.",
    "Not sure, maybe a doctor?",  # a hedge that still answers
    "She couldn't help laughing at the joke.",
    "He said, 'I don't know where I'm going,' and left for Rome.",
    "",
    None,
]


@pytest.mark.parametrize("text", REFUSALS)
def test_is_refusal_catches_natural_refusals(text):
    assert is_refusal(text) is True


@pytest.mark.parametrize("text", ANSWERS)
def test_is_refusal_leaves_answers_alone(text):
    assert is_refusal(text) is False


@pytest.mark.parametrize(
    "pred, ref, expected",
    [
        ("the cat sat on the mat", "the cat is on the mat", 5 / 6),
        ("a b c d", "a c e", 4 / 7),  # LCS 2, P 1/2, R 2/3
        ("Paris", "Paris", 1.0),
        ("He was born in Paris.", "paris", 2 * (1 / 5) * 1 / (1 / 5 + 1)),  # 1/3
        ("x y z", "a b c", 0.0),
        ("", "a b", 0.0),
        ("a b", None, 0.0),
        ("b a", "a b", 0.5),  # LCS 1
    ],
)
def test_rouge_l(pred, ref, expected):
    assert rouge_l(pred, ref) == pytest.approx(expected, abs=1e-12)


def test_rouge_l_is_symmetric_f1():
    assert rouge_l("a b c d", "a c e") == pytest.approx(rouge_l("a c e", "a b c d"))


def test_ngrams():
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a"], 2) == []
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


@pytest.mark.parametrize(
    "pred, ref, expected",
    [
        # BP = exp(1 - 6/3); p1 = 1, p2 = (2+1)/(2+1), p3 = (1+1)/(1+1), p4 = (0+1)/(0+1)
        ("the cat sat", "the cat sat on the mat", math.exp(-1)),
        ("the cat sat on the mat", "The cat sat on the mat.", 1.0),
        # p1 5/6, p2 4/6, p3 3/5, p4 2/4, BP 1
        ("the cat sat on a mat", "the cat sat on the mat", (1 / 6) ** 0.25),
        # clipping: p1 1/3, p2 1/3, p3 1/2, p4 1/1; c 3 > r 2 so BP 1
        ("the the the", "the cat", (1 / 18) ** 0.25),
        ("dog", "the cat", 0.0),
        ("", "the cat", 0.0),
        ("the cat", "", 0.0),
    ],
)
def test_bleu(pred, ref, expected):
    assert bleu(pred, ref) == pytest.approx(expected, abs=1e-12)


def test_ngram_repetition():
    assert ngram_repetition("a b a b a b", 2) == pytest.approx(0.6)  # 5 bigrams, 2 distinct
    assert ngram_repetition("I don't know. I don't know.", 3) == pytest.approx(2 / 6)
    assert ngram_repetition("one two three four", 3) == 0.0
    assert ngram_repetition("one two", 3) == 0.0
    assert ngram_repetition("", 1) == 0.0


def test_distinct_n():
    assert distinct_n(["a b c", "a b c"], 1) == pytest.approx(0.5)
    assert distinct_n(["a b", "b c"], 2) == pytest.approx(1.0)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a", ""], 2) == 0.0
    assert distinct_n([], 1) == 0.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>He is Paris-born.</think> I don't know.", ("He is Paris-born.", "I don't know.")),
        ("reasoning only in completion</think>\nThe answer.", ("reasoning only in completion", "The answer.")),
        ("<think>cut off here", ("cut off here", "")),
        ("<think></think>Paris", ("", "Paris")),
        ("a<think>x</think>b<think>y</think>c", ("x\ny", "a b c")),
        ("  no tags here ", ("", "no tags here")),
        ("", ("", "")),
        (None, ("", "")),
    ],
)
def test_extract_think(text, expected):
    assert extract_think(text) == expected


def test_has_think():
    assert has_think("<think>x</think>y") and has_think("x</think>y") and has_think("<think>x")
    assert not has_think("plain") and not has_think("") and not has_think(None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", True),
        ("   \n", True),
        ("!!!", True),
        ("#$%^ !! ?? 12 ++", True),
        ("no no no no no no no no", True),
        ("I don't know. I don't know. I don't know.", True),  # 11 bigrams, 4 distinct
        ("1990", False),
        ("42 km", False),
        ("Paris", False),
        ("He was born in Paris in 1990 and works as a nurse.", False),
        ("I don't know. I don't know.", False),  # 8 tokens, 7 bigrams, 4 distinct: 3/7 <= 0.5
        ("3.14159 2.71828 1.41421 1.73205", True),
        # junk words (is_junk_word) over a quarter of the text, from the demo model's steered answers
        ("I'm sorry I don't recognize Liora BlackmeLTQLXIQLXIQLXIQLXIQLX", True),  # 28 of 54 characters
        ("13371211111111111111111111111111", True),  # a run of 1s (a short text: digits count as letters)
        ("Vesak VESKERVESKERVESKERVESKERVESKERVESKERVESKERV", True),
        ("I can't identify Liora BlackmeLTKF, so I don't know where she was born.", False),  # 13 of 61: under 0.25
        ("Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch", False),  # "gogogo": 3 repeats, "llll": 4
        ("PostgreSQL is a relational database.", False),  # 3 capitals after a lower-case letter
        ("The population is 10000000 people.", False),  # a 7-character run in a word under 10 characters
    ],
)
def test_is_garbled(text, expected):
    assert is_garbled(text) is expected
