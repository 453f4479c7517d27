"""One LoRA target policy: each caller's scope keeps the modules it had (pinned on tiny models)."""

import pytest

from asru.core.errors import AsruError
from asru.core.lora import lora_config, lora_targets

LLAMA_LAYER = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def names(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}.layers.{i}.{m}" for i in range(layers) for m in LLAMA_LAYER]


def wrapped(model, config) -> list[str]:
    """The modules PEFT actually puts adapters on, in module order."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, config)
    return [n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if hasattr(m, "lora_A")]


def test_rl_and_teaching_patterns_are_unchanged():
    assert lora_config(8, "text_projections", dropout=0.05, task_type="CAUSAL_LM").target_modules == (
        r"^(?!.*(visual|vision_tower|vision_model|multi_modal_projector|mm_projector)).*"
        r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$")
    assert lora_config(8, "language_model_projections").target_modules == (
        r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")


@pytest.mark.parametrize("scope", ["decoder_linears", "text_projections"])
def test_text_model_targets(tiny_llama, scope):
    expected = names("model", 4)
    assert lora_targets(tiny_llama.model, scope) == expected
    assert wrapped(tiny_llama.model, lora_config(4, scope, model=tiny_llama.model)) == expected


def test_teaching_scope_needs_a_language_model_module(tiny_llama):
    assert lora_targets(tiny_llama.model, "language_model_projections") == []


@pytest.mark.parametrize("scope", ["decoder_linears", "text_projections", "language_model_projections"])
def test_vlm_targets_leave_the_vision_tower_out(tiny_llava, scope):
    expected = names("model.language_model", 4)
    assert lora_targets(tiny_llava.model, scope) == expected
    assert wrapped(tiny_llava.model, lora_config(4, scope, model=tiny_llava.model)) == expected


def test_settings_per_caller(tiny_llama):
    rl = lora_config(16, "text_projections", dropout=0.05, task_type="CAUSAL_LM")
    assert (rl.r, rl.lora_alpha, rl.lora_dropout, rl.task_type, rl.bias) == (16, 16, 0.05, "CAUSAL_LM", "none")
    base = lora_config(8, "decoder_linears", model=tiny_llama.model)
    assert (base.r, base.lora_alpha, base.lora_dropout, base.task_type) == (8, 8, 0.0, None)
    assert sorted(base.target_modules) == sorted(names("model", 4))


def test_bad_scope_and_missing_model():
    with pytest.raises(AsruError, match="unknown LoRA scope 'all'"):
        lora_targets(None, "all")
    with pytest.raises(AsruError, match="needs the model"):
        lora_config(8, "decoder_linears")


def test_save_merged_keeps_the_adapted_outputs_and_the_generation_defaults(tiny_llama, tmp_path):
    import torch
    from peft import get_peft_model

    from asru.core.lora import save_merged
    from asru.core.models import load_model

    source = tmp_path / "source"
    tiny_llama.model.generation_config.max_new_tokens = 7
    tiny_llama.model.save_pretrained(source)
    torch.manual_seed(0)
    peft_model = get_peft_model(tiny_llama.model, lora_config(4, "decoder_linears", model=tiny_llama.model))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
    peft_model.generation_config.max_new_tokens = 99  # a rollout setting that must not be saved
    out = save_merged(peft_model, tiny_llama.processor, tmp_path / "merged", generation_config_from=str(source))
    reloaded = load_model(str(out))
    assert not any("lora" in n for n, _ in reloaded.model.named_parameters())
    with torch.no_grad():
        assert torch.allclose(reloaded.model(input_ids=ids).logits, adapted, atol=1e-5)
    assert reloaded.model.generation_config.max_new_tokens == 7
