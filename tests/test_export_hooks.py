"""Export of steered models: ablation baked, add/gated hooks refused or shipped beside the weights; hub push."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from asru.config import ExportConfig
from asru.core.errors import AsruError

FAST = {"verify_prompts": 2, "verify_max_new_tokens": 6}


def _steered_dir(base, dest, kind: str, layer: int = 1, seed: int = 0):
    """A copy of ``base`` with ``hooks.json`` + a direction file, as the steering stage writes for hook modes."""
    import torch
    from transformers import AutoConfig

    from asru.stages.export.checkpoint import fresh_meta_model
    from steering.hooks import HookSpec
    from steering.io import save_direction

    shutil.copytree(base, dest)
    meta = fresh_meta_model(SimpleNamespace(config=AutoConfig.from_pretrained(base)))
    v = torch.randn(meta.config.get_text_config().hidden_size, generator=torch.Generator().manual_seed(seed)) * 3
    save_direction(dest / "direction", meta, {layer: v}, position="last")
    (dest / "hooks.json").write_text(json.dumps([HookSpec(kind, layer, alpha=2.0).to_json()]))
    return dest, v


@pytest.mark.parametrize("kind", ["add", "gated"])
def test_unbakeable_hooks_are_refused(tmp_path, tiny_qwen3_vl_path, kind):
    from asru.stages.export.stage import export_model

    model_dir, _ = _steered_dir(tiny_qwen3_vl_path, tmp_path / "steer" / "model", kind)
    with pytest.raises(AsruError, match=f"steered with {kind} hooks .*cannot be written into the weights.*--allow-hooks"):
        export_model(str(model_dir), tmp_path / "out", ExportConfig(**FAST))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_allow_hooks_ships_description_and_push_to_hub_arguments(tmp_path, tiny_qwen3_vl_path, monkeypatch):
    import huggingface_hub
    from transformers import PreTrainedModel, ProcessorMixin

    from asru.stages.export.checkpoint import checkpoint_keys
    from asru.stages.export.stage import export_model

    calls = []
    monkeypatch.setattr(PreTrainedModel, "push_to_hub", lambda self, repo, **kw: calls.append(("model", repo, kw)), raising=False)
    monkeypatch.setattr(ProcessorMixin, "push_to_hub", lambda self, repo, **kw: calls.append(("processor", repo, kw)), raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", lambda self, **kw: calls.append(("file", kw["repo_id"], kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("folder", kw["repo_id"], kw)))

    model_dir, _ = _steered_dir(tiny_qwen3_vl_path, tmp_path / "steer" / "model", "add", layer=2)
    out = export_model(str(model_dir), tmp_path / "out",
                       ExportConfig(allow_hooks=True, push_to_hub="someone/unlearned", hub_private=False, **FAST))
    shipped = json.loads((out / "steering" / "hooks.json").read_text())
    assert [(h["kind"], h["layer"], h["alpha"]) for h in shipped] == [("add", 2, 2.0)]
    assert (out / "steering" / "direction.safetensors").is_file() and (out / "steering" / "direction.json").is_file()
    assert not (out / "direction.safetensors").exists() and not (out / "hooks.json").exists()  # vLLM globs *.safetensors
    assert not [k for k in checkpoint_keys(out) if "layer_" in k]
    card = (out / "README.md").read_text()
    assert "Inference-time hooks (not in the weights)" in card and "`add` hooks at layer(s) 2" in card

    assert [c[0] for c in calls] == ["model", "processor", "file", "folder"]
    assert all(c[1] == "someone/unlearned" for c in calls)
    assert calls[0][2]["private"] is False and calls[0][2]["max_shard_size"] == "5GB" and calls[1][2]["private"] is False
    assert calls[2][2]["path_in_repo"] == "README.md" and calls[2][2]["path_or_fileobj"] == str(out / "README.md")
    assert calls[3][2]["path_in_repo"] == "steering" and calls[3][2]["folder_path"] == str(out / "steering")


def test_push_failure_is_a_one_line_error(tmp_path):
    from asru.stages.export.hub import push_export

    def denied(repo, **kw):
        raise OSError("401 Client Error: Unauthorized for url\nmore detail")

    lm = SimpleNamespace(model=SimpleNamespace(push_to_hub=denied), processor=SimpleNamespace(push_to_hub=denied))
    with pytest.raises(AsruError, match=r"cannot push to the hub repo me/x \(401 Client Error: Unauthorized for url\): log in") as e:
        push_export(lm, tmp_path, "me/x")
    assert "\n" not in str(e.value)


def test_ablation_is_baked_into_the_weights(tmp_path, tiny_qwen3_vl_path, red_image):
    """An ablate hook is folded into the weights: the export's logits equal the hooked original model's."""
    import torch

    from asru.core.models import load_model
    from asru.core.prompting import encode_prompts
    from asru.stages.export.stage import export_model
    from steering.hooks import ablate_direction

    model_dir, v = _steered_dir(tiny_qwen3_vl_path, tmp_path / "steer" / "model", "ablate", layer=1)
    out = export_model(str(model_dir), tmp_path / "out", ExportConfig(**FAST))
    assert not (out / "steering").exists()
    card = (out / "README.md").read_text()
    assert "Baked into the weights: directional ablation of the layer-1 refusal direction" in card

    orig, baked = load_model(str(tiny_qwen3_vl_path)), load_model(str(out))
    for enc in (encode_prompts(orig, ["Who is this?"], [red_image]), encode_prompts(orig, ["Where was Ada born?", "Hi"])):
        with torch.no_grad():
            plain = orig.model(**enc).logits
            with ablate_direction(orig.model, v):
                hooked = orig.model(**enc).logits
            got = baked.model(**enc).logits
        assert (plain - hooked).abs().max() > 1e-3  # the ablation changes the model
        assert torch.allclose(got, hooked, atol=1e-4)
