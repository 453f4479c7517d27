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
from rewards.refusal import is_refusal


def test_registry():
    assert list_baselines() == ["dpo", "ga", "graddiff", "idk", "kl", "npo", "rmu", "simnpo"]
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


def test_simnpo_and_dpo_step0_losses_exact(tiny_llama_path):
    from asru.core.models import load_model
    from asru.stages.baselines.common import sequence_logprobs

    forget = text_qa()
    lm = load_model(str(tiny_llama_path))
    enc, labels = encode_batch(lm, qa_pairs(forget))
    with torch.no_grad():
        s, n, _, _ = sequence_logprobs(lm.model, enc, labels)
    beta, gamma = 2.5, 0.5
    want = float(-(2 / beta) * torch.nn.functional.logsigmoid(-beta * s / n - gamma).mean())
    _, losses = train_baseline("simnpo", lm, forget, [], _cfg(simnpo_beta=beta, simnpo_gamma=gamma))
    assert losses[0] == pytest.approx(want, rel=1e-4)
    # DPO: the adapters start at zero, both log-ratios are 0 -> loss = log 2
    lm = load_model(str(tiny_llama_path))
    _, losses = train_baseline("dpo", lm, forget, [], _cfg())
    assert losses[0] == pytest.approx(math.log(2), rel=1e-5)


def test_dpo_prefers_refusals_and_simnpo_lowers_forget_likelihood(tiny_llama_path):
    from asru.core.models import load_model
    from asru.stages.baselines.common import sequence_logprobs

    forget = text_qa()
    refusals = [(r.question, idk_answer(r, i), r.image) for i, r in enumerate(forget)]

    def margin(lm):
        out = []
        for batch in (refusals, qa_pairs(forget)):
            enc, labels = encode_batch(lm, batch)
            with torch.no_grad():
                s, n, _, _ = sequence_logprobs(lm.model, enc, labels)
            out.append(float((s / n).mean()))
        return out[0] - out[1]

    lm = load_model(str(tiny_llama_path))
    before = margin(lm)
    _, losses = train_baseline("dpo", lm, forget, [], _cfg(steps=4, dpo_beta=0.5))
    assert margin(lm) > before + 0.1 and losses[-1] < losses[0]
    lm = load_model(str(tiny_llama_path))
    start = _forget_nll(lm, forget)
    # beta small enough that the random tiny model's high loss does not saturate the sigmoid
    train_baseline("simnpo", lm, forget, [], _cfg(steps=4, simnpo_beta=0.05))
    assert _forget_nll(lm, forget) > start + 0.1


def test_rmu_trains_only_its_layers_mlps_and_moves_forget_states(tiny_llama_path):
    from asru.core.layers import num_layers
    from asru.core.models import load_model

    forget, retain = text_qa(), text_qa("retain", "Brenna Coldridge")
    lm = load_model(str(tiny_llama_path))
    layer = num_layers(lm.model) - 1
    model, losses = train_baseline("rmu", lm, forget, retain, _cfg(steps=6, rmu_layer=layer, rmu_coeff=5.0, rmu_alpha=1.0))
    # LoRA B starts at zero: the adapters that moved are the ones RMU trained
    moved = [n for n, p in model.named_parameters() if "lora_B" in n and float(p.detach().abs().sum()) > 0]
    assert moved and all(".mlp." in n for n in moved)
    assert {int(n.split("layers.")[1].split(".")[0]) for n in moved} == set(range(max(0, layer - 2), layer + 1))
    assert losses[-1] < losses[0]
    lm = load_model(str(tiny_llama_path))
    with pytest.raises(AsruError, match="out of range"):
        train_baseline("rmu", lm, forget, retain, _cfg(rmu_layer=99))
