"""A checkpoint write interrupted by a full disk leaves the previous checkpoint intact and says so in one line."""

import errno
import json

import pytest

from asru.core.checkpoints import last_complete_checkpoint
from asru.core.errors import AsruError
from asru.core.models import load_model, save_checkpoint


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_model_save_on_a_full_disk_keeps_the_previous_model(tiny_llama_path, tmp_path, monkeypatch):
    lm = load_model(str(tiny_llama_path), device="cpu")
    out = save_checkpoint(lm.model, lm.processor, tmp_path / "model")
    before = _snapshot(out)

    def half_written(save_directory, **kwargs):  # the weights get written, then the disk is full
        (save_directory / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (save_directory / "model.safetensors").write_bytes(b"partial")
        _enospc()

    monkeypatch.setattr(lm.model, "save_pretrained", half_written)
    with pytest.raises(AsruError, match=r"cannot write .*model: No space left on device \(disk full\): free space"):
        save_checkpoint(lm.model, lm.processor, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .tmp left behind


def test_partial_trainer_checkpoints_are_skipped(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"w")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert not (tmp_path / "checkpoint-15").exists()


def test_grpo_checkpoint_on_a_full_disk_keeps_the_previous_one_and_resumes(tiny_llama_path, red_image, tmp_path, monkeypatch):
    from transformers import Trainer

    from asru.stages.rl.stage import run_rl_stage
    from tests.rl_fixtures import rl_config, small_benchmark

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    cfg = rl_config(tmp_path, max_steps=2, save_steps=1, rewards={"forget": 1.0, "retain": 1.0})
    out_dir = tmp_path / "rl"
    real = Trainer._save_optimizer_and_scheduler
    first: dict = {}

    def full_at_step_2(self, output_dir):  # the weights of checkpoint-2 are written, then the disk is full
        if self.state.global_step == 2:
            first.update(_snapshot(out_dir / "checkpoints" / "checkpoint-1"))
            _enospc()
        real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", full_at_step_2)
    with pytest.raises(AsruError, match=r"cannot write .*checkpoint-2: No space left on device \(disk full\)") as err:
        run_rl_stage(cfg, str(tiny_llama_path), data, out_dir, None)
    assert "\n" not in str(err.value)
    ckpts = out_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-1"]
    assert first and _snapshot(ckpts / "checkpoint-1") == first  # the previous checkpoint is untouched

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", real)  # space freed: resume
    run_rl_stage(cfg, str(tiny_llama_path), data, out_dir, None)
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-1" and summary["global_step"] == 2
