"""The untrained demo LLaVA built from parts, and (slow) the taught demo model's accuracy."""

from __future__ import annotations

import json

import pytest

from asru.core.errors import AsruError


def test_vision_config_needs_a_multiple_of_the_patch():
    from asru.demo.model import vision_config

    cfg = vision_config(64)
    assert (cfg["image_size"], cfg["patch_size"], cfg["hidden_size"], cfg["num_hidden_layers"]) == (64, 16, 192, 4)
    with pytest.raises(AsruError, match="multiple of 16"):
        vision_config(60)


def test_build_from_parts_keeps_the_language_model(tiny_llama_path, tmp_path):
    """With a tiny Llama as the language model: strict weights, tied head, <image> token, stock processor."""
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    from asru.core.models import load_model
    from asru.core.prompting import encode_prompts, generate, prompt_text
    from asru.demo.model import IMAGE_TOKEN, build_untrained_demo

    out = build_untrained_demo(tmp_path / "demo", image_size=32, seed=0, lm_path=tiny_llama_path)
    lm = load_model(str(out))
    assert lm.is_vlm and type(lm.model).__name__ == "LlavaForConditionalGeneration"
    assert type(lm.processor).__name__ == "LlavaProcessor"
    image_id = lm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert lm.model.config.image_token_id == image_id
    assert lm.model.config.vision_feature_select_strategy == "full"

    src = load_file(str(tiny_llama_path / "model.safetensors"))
    lang = lm.model.model.language_model.state_dict()
    for k, v in src.items():
        if k.startswith("model."):
            key = k[len("model."):]
            if key == "embed_tokens.weight":
                assert torch.equal(lang[key][: v.shape[0]], v)
                assert lang[key].shape[0] == v.shape[0] + 1  # one new token: <image>
            else:
                assert torch.equal(lang[key], v), key
    assert lm.model.lm_head.weight.data_ptr() == lm.model.get_input_embeddings().weight.data_ptr()

    text = prompt_text(lm, "Who is this?", True)
    assert text == f"<|im_start|>user\n{IMAGE_TOKEN}Who is this?<|im_end|>\n<|im_start|>assistant\n"
    enc = encode_prompts(lm, ["Who is this?"], [Image.new("RGB", (50, 40), (10, 200, 30))])
    assert int((enc["input_ids"] == image_id).sum()) == 4  # (32 / 16) ** 2 image tokens
    assert tuple(enc["pixel_values"].shape) == (1, 3, 32, 32)
    outs = generate(lm, ["Who is this?", "Hello?"], [Image.new("RGB", (32, 32)), None], max_new_tokens=3)
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)
    # a second call returns the existing build untouched
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert build_untrained_demo(out, image_size=32, lm_path=tiny_llama_path) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.tmp-build"))


def test_untied_or_foreign_weights_are_refused(tiny_llama_path, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from asru.demo.model import build_untrained_demo

    bad = tmp_path / "lm"
    shutil.copytree(tiny_llama_path, bad)
    state = load_file(str(bad / "model.safetensors"))
    state["extra.weight"] = state["model.norm.weight"].clone()
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(AsruError, match="unexpected weights"):
        build_untrained_demo(tmp_path / "demo", image_size=32, lm_path=bad)
    state.pop("extra.weight")
    state["lm_head.weight"] = state["model.embed_tokens.weight"] + 1.0
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(AsruError, match="untied lm_head"):
        build_untrained_demo(tmp_path / "demo2", image_size=32, lm_path=bad)


@pytest.mark.slow
def test_untrained_demo_answers_like_smollm2():
    """The real build: SmolLM2's weights untouched, so it still knows the capital of France."""
    import torch
    from safetensors.torch import load_file

    from asru.core.models import cache_dir, load_model, materialize_smollm2
    from asru.core.prompting import generate
    from asru.demo.model import build_untrained_demo

    out = build_untrained_demo(cache_dir() / "demo-vlm-base-64px-seed0", image_size=64, seed=0)
    lm = load_model(str(out))
    assert lm.is_vlm
    src = load_file(str(materialize_smollm2() / "model.safetensors"))
    lang = lm.model.model.language_model.state_dict()
    assert torch.equal(lang["layers.7.mlp.down_proj.weight"], src["model.layers.7.mlp.down_proj.weight"])
    answer = generate(lm, ["What is the capital of France?"], max_new_tokens=16)[0]
    assert "Paris" in answer


@pytest.mark.slow
def test_taught_demo_model_knows_the_profiles(tmp_path):
    """Build (or reuse the cached) demo VLM on the default benchmark; check the issue's accuracy targets."""
    from asru.config import TeachConfig
    from asru.core.models import cache_dir, load_model
    from asru.data.synthetic import generate_benchmark
    from asru.demo.teach import build_demo_model, fingerprint, is_built

    data = tmp_path / "data"
    generate_benchmark(data, people=20, forget_ratio=0.1, seed=0)
    cfg = TeachConfig()
    fp = fingerprint(data, cfg)
    # reuse a cached build of the same data and settings (whatever its benchmark directory was called);
    # never replace a cached model here
    cached = [p for p in cache_dir().glob(f"demo-vlm-*-{fp[:12]}") if is_built(p, fp)]
    out = build_demo_model(data, cfg, cached[0] if cached else tmp_path / "demo-vlm")
    report = json.loads((out / "teach_report.json").read_text())
    acc = report["accuracy"]
    for split in ("forget", "retain"):
        assert acc[split]["image"] >= 0.8, (split, acc[split])
        assert acc[split]["text"] >= 0.8, (split, acc[split])
    assert acc["real"]["text"] >= report["base_accuracy"]["real"]["text"] - 0.1
    assert report["meets_targets"]
    assert load_model(str(out)).is_vlm
