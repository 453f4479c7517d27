"""scripts/bench_gpu.py: refuses without a GPU, peak lookup and FLOP accounting at Qwen3-VL-2B shapes."""

import subprocess
import sys
from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_gpu.py"


def _bench():
    return load_script("bench_gpu")


def test_refuses_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the refusal path does not apply")
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and "nothing was measured" in lines[0]
    assert not out.exists()


def test_peak_lookup():
    b = _bench()
    assert b.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert b.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert b.peak_tflops("NVIDIA H200", None) == 989.0
    assert b.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert b.peak_tflops("Some Future GPU", None) is None
    assert b.peak_tflops("Some Future GPU", 500.0) == 500.0


def test_flop_accounting_at_2b_shapes():
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from asru.testing.tiny import qwen3_vl_config

    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(qwen3_vl_config("2b"))
    s = _bench().Shapes(model)
    assert s.layers == 28 and s.hidden == 2048 and s.ff == 6144 and s.heads == 16 and s.head_dim == 128
    # one decoder layer: q (2048x2048), k, v (2048x1024 each), o (2048x2048), MLP 3 x 2048x6144, 4 norms
    assert s.p_layer == 2048 * 2048 * 2 + 2 * 2048 * 1024 + 3 * 2048 * 6144 + 2 * 2048 + 2 * 128
    assert 2.0e9 < s.p_total < 2.3e9
    # forward of one 100-token sequence through all layers, no logits
    want = 2 * 28 * s.p_layer * 100 + 2 * 28 * 16 * 128 * 100**2
    assert s.text_forward([100]) == pytest.approx(want)
    assert s.text_forward([100], n_layers=18) == pytest.approx(want * 18 / 28)
    # decoding: per token 2 x (layers + LM head) params, plus attention over the growing context
    per_tok = 2 * (28 * s.p_layer + 151936 * 2048)
    assert s.decode(1, 10, 1) == pytest.approx(per_tok + 4 * 28 * 16 * 128 * 10)
