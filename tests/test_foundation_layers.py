"""The one layer resolver finds the language decoder layers of every supported family."""

import pytest
import torch

from asru.core.errors import AsruError
from asru.core.layers import check_layer, decoder_layers, hidden_size, layer_output, replace_layer_output


def _lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))


@pytest.mark.parametrize("fixture, layer_cls, n, hidden", [
    ("tiny_llama", "LlamaDecoderLayer", 4, 64),
    ("tiny_qwen3_vl", "Qwen3VLTextDecoderLayer", 4, 64),
    ("tiny_llava", "LlamaDecoderLayer", 4, 64),
])
def test_decoder_layers_plain_and_peft(request, fixture, layer_cls, n, hidden):
    lm = request.getfixturevalue(fixture)
    layers = decoder_layers(lm.model)
    assert len(layers) == n
    assert all(type(layer).__name__ == layer_cls for layer in layers)
    assert hidden_size(lm.model) == hidden
    # never the vision blocks
    vision = [m for name, m in lm.model.named_modules() if "visual" in name or "vision" in name]
    assert not any(layer is v for layer in layers for v in vision)
    wrapped = _lora(lm.model)
    assert decoder_layers(wrapped) is layers


def test_qwen3_vl_layers_are_language_model_layers(tiny_qwen3_vl):
    assert decoder_layers(tiny_qwen3_vl.model) is tiny_qwen3_vl.model.model.language_model.layers


def test_qwen3_and_qwen2_5_vl_from_config():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen3Config, Qwen3ForCausalLM

    q3 = Qwen3ForCausalLM(Qwen3Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=16))
    assert len(decoder_layers(q3)) == 3 and decoder_layers(q3) is q3.model.layers
    cfg = Qwen2_5_VLConfig(text_config={"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                            "num_attention_heads": 2, "num_key_value_heads": 1,
                                            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]}},
                           vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 1, "out_hidden_size": 32})
    q25 = Qwen2_5_VLForConditionalGeneration(cfg)
    assert decoder_layers(q25) is q25.model.language_model.layers
    assert decoder_layers(_lora(q25)) is q25.model.language_model.layers


def test_check_layer(tiny_llama):
    assert check_layer(tiny_llama.model, 3) == 3
    assert check_layer(tiny_llama.model, -1) == 3
    with pytest.raises(AsruError, match="layer 4 is out of range: this model has 4 decoder layers"):
        check_layer(tiny_llama.model, 4)


def test_layer_output_tensor_and_tuple():
    h = torch.ones(1, 2, 3)
    assert layer_output(h) is h
    assert layer_output((h, "cache")) is h
    new = torch.zeros(1, 2, 3)
    assert replace_layer_output(h, new) is new
    assert replace_layer_output((h, "cache"), new) == (new, "cache")
