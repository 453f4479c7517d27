"""Prompt building, answer masking and batched generation on tiny models."""

import threading
import time

import pytest
import torch

from asru.core.prompting import (
    answer_logprobs,
    encode_prompts,
    encode_with_answers,
    encode_workers,
    generate,
    prefetch,
    prompt_text,
)


def test_prompt_has_image_placeholder(tiny_qwen3_vl, tiny_llava, tiny_llama):
    assert prompt_text(tiny_qwen3_vl, "Who?", True) == "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Who?<|im_end|>\n<|im_start|>assistant\n"
    assert prompt_text(tiny_llava, "Who?", True).startswith("<|im_start|>user\n<image>Who?")
    assert prompt_text(tiny_llama, "Hi", False) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_answer_mask_covers_only_answer(tiny_llama):
    _enc, labels = encode_with_answers(tiny_llama, ["Hi", "What is two plus two?"], ["Paris", "Four"])
    tok = tiny_llama.tokenizer
    for row in range(2):
        kept = labels[row][labels[row] != -100].tolist()
        assert tok.decode(kept).startswith(["Paris", "Four"][row])
        assert tok.decode(kept).rstrip().endswith("<|im_end|>")


def test_batched_generation_equals_single(tiny_qwen3_vl, red_image):
    qs = ["Who is this?", "Tell me who this person is please?", "What is two plus two?"]
    imgs = [red_image, red_image, None]
    batched = generate(tiny_qwen3_vl, qs, imgs, max_new_tokens=4, batch_size=8)
    single = [generate(tiny_qwen3_vl, [q], [i], max_new_tokens=4)[0] for q, i in zip(qs, imgs)]
    assert batched == single


def test_answer_logprobs_match_manual(tiny_llama):
    (lp, n), = answer_logprobs(tiny_llama, ["Hi"], ["Paris"])
    enc, labels = encode_with_answers(tiny_llama, ["Hi"], ["Paris"])
    with torch.no_grad():
        logits = tiny_llama.model(**enc).logits[0, :-1]
    tgt = labels[0, 1:]
    mask = tgt != -100
    manual = torch.log_softmax(logits, -1)[mask].gather(-1, tgt[mask].unsqueeze(-1)).sum()
    assert n == int(mask.sum()) and abs(lp - float(manual)) < 1e-4


def test_answer_logprobs_window_equals_full_logits_in_a_ragged_image_batch(tiny_qwen3_vl, red_image):
    """Scoring only the answer window (logits_to_keep) gives the full-sequence values for every row."""
    qs = ["Who?", "Where was the person in this image born, and in which year?", "Name?"]
    ans = ["Paris", "In a small village by the sea", "Liora Blackmere of Dublin"]
    got = answer_logprobs(tiny_qwen3_vl, qs, ans, [red_image] * 3, batch_size=3)
    enc, labels = encode_with_answers(tiny_qwen3_vl, qs, ans, [red_image] * 3)
    with torch.no_grad():
        logits = tiny_qwen3_vl.model(**enc).logits[:, :-1].float()
    for row, (lp, n) in enumerate(got):
        tgt = labels[row, 1:]
        mask = tgt != -100
        manual = torch.log_softmax(logits[row], -1)[mask].gather(-1, tgt[mask].unsqueeze(-1)).sum()
        assert n == int(mask.sum()) > 0 and lp == pytest.approx(float(manual), abs=1e-4)


def test_prefetch_keeps_order_runs_in_background_and_raises():
    main = threading.get_ident()
    seen = []

    def slow_square(x):
        seen.append(threading.get_ident())
        time.sleep(0.01 * (5 - x % 5))  # later items finish first: order must still hold
        return x * x

    assert list(prefetch(slow_square, range(12), workers=3)) == [x * x for x in range(12)]
    assert main not in seen

    def boom(x):
        if x == 3:
            raise ValueError("bad item 3")
        return x

    got = prefetch(boom, range(6), workers=2)
    assert [next(got), next(got), next(got)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(got)


def test_encodings_from_background_threads_equal_sequential_ones(tiny_qwen3_vl, red_image):
    """Concurrent encoding (same padding side, as activation collection does) gives exactly the sequential tensors."""
    qs = [f"question {i} " + "word " * (i % 7) for i in range(24)]
    batches = [(qs[i : i + 3], [red_image] * 3 if i % 2 else None) for i in range(0, 24, 3)]
    want = [encode_prompts(tiny_qwen3_vl, q, im, padding_side="left") for q, im in batches]
    got = list(prefetch(lambda b: encode_prompts(tiny_qwen3_vl, b[0], b[1], padding_side="left"), batches, workers=4))
    for w, g in zip(want, got):
        assert set(w.keys()) == set(g.keys())
        for key in w:
            assert torch.equal(w[key], g[key]), key


def test_no_background_encoding_on_the_cpu(tiny_llama):
    """On the CPU the forward uses every core: encoding stays inline (workers 0 = the caller's thread)."""
    assert encode_workers(tiny_llama) == 0
    threads = list(prefetch(lambda _: threading.get_ident(), range(3), workers=0))
    assert threads == [threading.get_ident()] * 3
