"""Activation collection: shapes, positions, padding independence, batching, images, errors."""

import pytest
import torch

from asru.core.errors import AsruError
from steering.activations import collect_activations, position_mask, post_instruction_length
from tests.steering_fixtures import QUESTIONS


def test_shapes_and_layers(tiny_llama):
    acts = collect_activations(tiny_llama, QUESTIONS, layers=[0, 2, -1], position="last", batch_size=2)
    assert acts.layers == [0, 2, 3]
    for layer in acts.layers:
        assert acts.pooled[layer].shape == (4, 64)
        assert acts.pooled[layer].dtype == torch.float32
    assert acts.n_tokens > 4 * 5


@pytest.mark.parametrize("position", ["last", "post_instruction", "mean", "all"])
def test_left_and_right_padding_agree(tiny_llama, position):
    left = collect_activations(tiny_llama, QUESTIONS, layers=[1, 3], position=position, batch_size=4, padding_side="left")
    right = collect_activations(tiny_llama, QUESTIONS, layers=[1, 3], position=position, batch_size=4, padding_side="right")
    for layer in (1, 3):
        assert torch.allclose(left.matrix(layer), right.matrix(layer), atol=1e-5)


def test_batched_equals_one_at_a_time(tiny_llama):
    batched = collect_activations(tiny_llama, QUESTIONS, layers=[2], position="last", batch_size=4)
    single = collect_activations(tiny_llama, QUESTIONS, layers=[2], position="last", batch_size=1)
    assert torch.allclose(batched.pooled[2], single.pooled[2], atol=1e-5)


def test_last_position_matches_hidden_states(tiny_llama):
    from asru.core.prompting import encode_prompts

    acts = collect_activations(tiny_llama, QUESTIONS[:1], layers=[1], position="last")
    enc = encode_prompts(tiny_llama, QUESTIONS[:1])
    with torch.no_grad():
        hs = tiny_llama.model(**enc, output_hidden_states=True).hidden_states
    # hidden_states[i + 1] is the output of decoder layer i
    assert torch.allclose(acts.pooled[1][0], hs[2][0, -1].float(), atol=1e-5)


def test_all_positions_give_every_real_token(tiny_llama):
    acts = collect_activations(tiny_llama, QUESTIONS, layers=[0], position="all", batch_size=4)
    lengths = [t.shape[0] for t in acts.pooled[0]]
    assert sum(lengths) == acts.n_tokens
    assert len(set(lengths)) > 1


def test_post_instruction_is_the_assistant_header(tiny_llama):
    # ChatML: "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n" follow the user text
    assert post_instruction_length(tiny_llama, "Where was the person born?", False) == 5
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    w = position_mask(mask, "post_instruction", [2, 3])
    assert torch.allclose(w[0], torch.tensor([0, 0, 0, 0, 0.5, 0.5]))
    assert torch.allclose(w[1], torch.tensor([0, 0, 0, 1 / 3, 1 / 3, 1 / 3]))
    w_right = position_mask(torch.tensor([[1, 1, 1, 0, 0]]), "last")
    assert w_right.tolist() == [[0, 0, 1, 0, 0]]


def test_image_prompts_qwen3_vl(tiny_qwen3_vl, red_image):
    qs = QUESTIONS[:2] + QUESTIONS[:2]
    ims = [red_image, red_image, None, None]
    acts = collect_activations(tiny_qwen3_vl, qs, ims, layers=[0, 1], position="mean", batch_size=2)
    assert acts.pooled[1].shape == (4, 64)
    # the image changes the activations of the same question
    assert (acts.pooled[1][0] - acts.pooled[1][2]).abs().max() > 1e-4
    left = collect_activations(tiny_qwen3_vl, qs[:2], ims[:2], layers=[1], position="last", padding_side="left")
    right = collect_activations(tiny_qwen3_vl, qs[:2], ims[:2], layers=[1], position="last", padding_side="right")
    assert torch.allclose(left.pooled[1], right.pooled[1], atol=1e-5)


def test_llava_works(tiny_llava, red_image):
    acts = collect_activations(tiny_llava, QUESTIONS[:2], [red_image] * 2, layers=[1], position="last")
    assert acts.pooled[1].shape == (2, 64)


def test_errors(tiny_llama):
    with pytest.raises(AsruError, match="out of range"):
        collect_activations(tiny_llama, QUESTIONS, layers=[4])
    with pytest.raises(AsruError, match="position"):
        collect_activations(tiny_llama, QUESTIONS, layers=[1], position="first")
    with pytest.raises(AsruError, match="no prompts"):
        collect_activations(tiny_llama, [], layers=[1])
