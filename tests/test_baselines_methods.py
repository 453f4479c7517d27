"""Baselines: registry, exact step-0 losses, direction of gradient ascent, and run_baseline's checkpoint."""

import math

import pytest
import torch
from eval_fixtures import text_qa

from asru.config import BaselineConfig, RunConfig
from asru.core.errors import AsruError
from asru.stages.baselines import (
    BASELINES,
    IDK_TEMPLATES,
    idk_answer,
    list_baselines,
    register_baseline,
    run_baseline,
    train_baseline,
)
from asru.stages.baselines.common import encode_batch, nll, qa_pairs
from rewards.text import is_refusal


def test_registry():
    assert list_baselines() == ["ga", "graddiff", "idk", "kl", "npo"]
    with pytest.raises(ValueError, match="already registered"):
        register_baseline("ga")(lambda ctx, step: 0)
    assert set(BASELINES) == set(list_baselines())


def test_idk_answers_are_varied_refusals():
    assert all(is_refusal(t.format(subject="this person")) for t in IDK_TEMPLATES)
    recs = text_qa()
    answers = {idk_answer(r, i) for i, r in enumerate(recs)}
    assert len(answers) == len(recs) and all("Aldric Ashgrove" in a for a in answers)


def _cfg(**kw):
    base = {"steps": 1, "batch_size": 4, "lr": 1e-2, "lora_r": 2, "retain_weight": 0.0, "seed": 0}
    return BaselineConfig(**{**base, **kw})


def _forget_nll(lm, recs):
    enc, labels = encode_batch(lm, qa_pairs(recs))
    with torch.no_grad():
        return float(nll(lm.model, enc, labels))


def test_step0_losses_exact(tiny_llama_path):
    from asru.core.models import load_model

    forget = text_qa()
    lm = load_model(str(tiny_llama_path))
    start = _forget_nll(lm, forget)
    # LoRA starts as the identity: NPO's log-ratio is 0 -> loss = (2 / beta) * log 2
    _, losses = train_baseline("npo", lm, forget, [], _cfg(npo_beta=0.4))
    assert losses[0] == pytest.approx(2 / 0.4 * math.log(2), rel=1e-5)
    # GA's first loss is minus the forget NLL of the starting model; KL's retain term is 0 at step 0
    for name in ("ga", "kl"):
        lm = load_model(str(tiny_llama_path))
        _, losses = train_baseline(name, lm, forget, text_qa("retain", "Brenna Coldridge"), _cfg(retain_weight=1.0))
        assert losses[0] == pytest.approx(-start, rel=1e-4)


def test_gradient_ascent_raises_forget_loss_and_idk_teaches_refusals(tiny_llama_path):
    from asru.core.models import load_model

    forget = text_qa()
    lm = load_model(str(tiny_llama_path))
    start = _forget_nll(lm, forget)
    _, losses = train_baseline("ga", lm, forget, [], _cfg(steps=4))
    assert _forget_nll(lm, forget) > start + 0.1 and losses[-1] < losses[0]
    lm = load_model(str(tiny_llama_path))
    _, losses = train_baseline("idk", lm, forget, text_qa("retain", "Brenna Coldridge"), _cfg(steps=5, retain_weight=0.5))
    assert losses[-1] < losses[0]


def test_run_baseline_saves_merged_checkpoint(tiny_llama_path, tmp_path):
    from asru.core.models import load_model

    data = {"forget": text_qa(), "retain": text_qa("retain", "Brenna Coldridge")}
    cfg = RunConfig(method="graddiff", baseline=_cfg(steps=2, retain_weight=1.0))
    path = run_baseline(cfg, str(tiny_llama_path), data, tmp_path / "graddiff")
    assert path == tmp_path / "graddiff" / "model" and (path / "model.safetensors").is_file()
    reloaded = load_model(str(path))
    assert not any("lora" in n for n, _ in reloaded.model.named_parameters())
    orig = load_model(str(tiny_llama_path))
    with torch.no_grad():
        diff = sum(float((a - b).abs().sum()) for a, b in zip(reloaded.model.parameters(), orig.model.parameters()))
    assert diff > 0
    log = (tmp_path / "graddiff" / "train_log.json").read_text()
    assert '"method": "graddiff"' in log and '"steps": 2' in log
    with pytest.raises(AsruError, match="not a baseline"):
        run_baseline(RunConfig(method="asru"), str(tiny_llama_path), data, tmp_path / "x")
    with pytest.raises(AsruError, match="no forget split"):
        run_baseline(cfg, str(tiny_llama_path), {"retain": data["retain"]}, tmp_path / "y")
