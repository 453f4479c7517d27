"""Prompt building, answer masking and batched generation on tiny models."""

import torch

from asru.prompting import answer_logprobs, encode_with_answers, generate, prompt_text


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
