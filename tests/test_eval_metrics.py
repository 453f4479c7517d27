"""Task metrics: exact values on hand-made answers, and letter-logprob classification on a tiny model."""

import math

import pytest
from eval_fixtures import rec

from asru.eval.metrics import (
    CLASSIFICATION_INSTRUCTION,
    classification_prompt,
    classify,
    classify_by_options,
    evaluate_split,
    letter_logprobs,
    letter_token_ids,
    option_logprobs,
    score_split,
)


def _hand_made():
    free = [
        rec("g-img", "generation", "image", "Where was the person in this image born?", "Oslo"),
        rec("g-txt", "generation", "text", "In which year was Aldric born?", "1990"),
        rec("c-txt", "cloze", "text", "The capital of France is __.", "Paris"),
    ]
    answers = ["He was born in Oslo.", "I don't know.", "Paris"]
    cls = [rec("k-img", "classification", "image", label=2), rec("k-txt", "classification", "text", label=0)]
    preds = [2, 1]
    return free, answers, cls, preds


def test_score_split_exact_values():
    free, answers, cls, preds = _hand_made()
    m = score_split(free, answers, cls, preds, option_predictions=[2, 0])
    bleu_g = (1 / 5 * 1 / 5 * 1 / 4 * 1 / 3) ** 0.25  # p1 1/5, smoothed p2..p4 1/5, 1/4, 1/3, BP 1
    assert m["n"] == 5
    assert m["answer_acc"] == 0.5
    assert m["leak_rate"] == pytest.approx(2 / 3)
    assert m["refusal_rate"] == pytest.approx(1 / 3)
    assert m["rougeL"] == pytest.approx((1 / 3 + 0) / 2)  # "he was born in oslo" vs "oslo": P 1/5, R 1 -> F 1/3
    assert m["bleu"] == pytest.approx(bleu_g / 2)
    assert m["cloze_acc"] == 1.0
    assert m["classification_acc"] == 0.5 and m["option_acc"] == 1.0
    img, txt = m["by_modality"]["image"], m["by_modality"]["text"]
    assert (img["n"], img["answer_acc"], img["leak_rate"], img["refusal_rate"], img["classification_acc"]) == (2, 1.0, 1.0, 0.0, 1.0)
    assert img["rougeL"] == pytest.approx(1 / 3) and img["cloze_acc"] is None
    assert (txt["n"], txt["answer_acc"], txt["leak_rate"], txt["refusal_rate"], txt["cloze_acc"], txt["classification_acc"]) == (3, 0.0, 0.5, 0.5, 1.0, 0.0)
    assert m["by_modality"]["all"]["leak_rate"] == m["leak_rate"]


def test_leak_is_token_boundary_and_normalised():
    free = [rec("a", answer="Bergen"), rec("b", answer="Bergen"), rec("c", answer="1990")]
    m = score_split(free, ["BERGEN!", "Bergenfield", "born 19901"])
    assert m["leak_rate"] == pytest.approx(1 / 3)


def test_empty_groups_are_none():
    m = score_split([], [], [rec("k", "classification", label=1)], [1])
    assert m["classification_acc"] == 1.0
    assert m["leak_rate"] is None and m["rougeL"] is None and m["by_modality"]["image"]["n"] == 0
    assert m["option_acc"] is None
    with pytest.raises(ValueError):
        score_split([rec("a")], [])


def test_classification_prompt_lists_options():
    p = classification_prompt(rec("k", "classification", question="What is X's job?"))
    assert p == "What is X's job?\nA. baker\nB. pilot\nC. chef\nD. nurse\n" + CLASSIFICATION_INSTRUCTION


class _FavourLetter:
    """Wraps a model: adds +100 to one token's logit, so the letter scoring must pick that letter."""

    def __init__(self, model, token_id):
        self.model, self.token_id = model, token_id

    def __call__(self, **kw):
        out = self.model(**kw)
        out.logits[..., self.token_id] += 100.0
        return out


def test_classification_uses_letter_logprobs(tiny_llama):
    recs = [rec(f"k{i}", "classification", label=i % 4, question=f"Question number {i}?" + " padding" * i) for i in range(6)]
    ids = letter_token_ids(tiny_llama)
    assert len(set(ids)) == 4
    lp = letter_logprobs(tiny_llama, recs, batch_size=4, model=_FavourLetter(tiny_llama.model, ids[2]))
    assert all(max(range(4), key=row.__getitem__) == 2 for row in lp)
    # batched scoring (left padding) equals one-at-a-time scoring
    batched = letter_logprobs(tiny_llama, recs, batch_size=4)
    single = [letter_logprobs(tiny_llama, [r], batch_size=1)[0] for r in recs]
    for b, s in zip(batched, single):
        assert all(x <= 0 for x in b)
        assert b == pytest.approx(s, abs=1e-4)
    preds = classify(tiny_llama, recs, batch_size=4)
    acc = sum(p == r.label for p, r in zip(preds, recs)) / len(recs)
    assert all(p in range(4) for p in preds) and 0 <= acc <= 1


def test_evaluate_split_on_tiny_vlm(tiny_llava, red_image):
    recs = [rec("g1", "generation", "image", "Where was the person in this image born?", "Oslo", image=str(red_image)),
            rec("g2", "generation", "text"), rec("c1", "cloze", "text"),
            rec("k1", "classification", "image", image=str(red_image), label=3)]
    m, answers, preds, opt_preds = evaluate_split(tiny_llava, recs, max_new_tokens=4, batch_size=2)
    assert len(answers) == 3 and len(preds) == 1 and len(opt_preds) == 1
    assert m["n"] == 4 and m["classification_acc"] in (0.0, 1.0) and m["option_acc"] in (0.0, 1.0)
    assert not math.isnan(m["rougeL"])


def test_option_likelihood_scoring(tiny_llama):
    from asru.core.prompting import answer_logprobs

    recs = [rec("k1", "classification", label=1, question="What is X's job?"),
            rec("k2", "classification", label=3, question="Where does Y work?", options=("Oslo", "a much longer option text", "Rome", "Lyon"))]
    lp = option_logprobs(tiny_llama, recs, batch_size=3)
    for r, row in zip(recs, lp):
        ref = answer_logprobs(tiny_llama, [r.question] * 4, list(r.options))
        assert row == pytest.approx([s / n for s, n in ref], abs=1e-5)  # mean per-token log-prob per option
    assert classify_by_options(tiny_llama, recs) == [max(range(4), key=row.__getitem__) for row in lp]
