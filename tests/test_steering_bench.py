"""The steering benchmark script runs end to end on a tiny model and reports consistent numbers."""

import json


def test_bench_script_on_tiny_llama(tiny_llama_path, tmp_path, capsys):
    from scripts.bench_steering import main

    out = tmp_path / "bench.json"
    assert main(["--model", str(tiny_llama_path), "--prompts", "8", "--single", "4", "--batch-size", "8",
                 "--redirect-prompts", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    c = res["collect"]
    assert c["tokens"] > 8 * 10 and c["batched_tok_s"] > 0 and c["one_at_a_time_tok_s"] > 0
    assert c["max_abs_diff_vs_naive"] < 1e-4  # batched activations equal the naive full-forward ones
    r = res["redirect"]
    assert r["steps"] == 2  # 1 forget + 1 retain batch of 2, one epoch
    # the replayed and the full-forward runs start from the same weights and train the same losses
    assert r["span"] == 2 and r["max_abs_loss_diff"] < 1e-5 and r["full_forward_steps_per_s"] > 0
    lc = res["linear_ceiling"]  # the layers' GEMMs alone, at one prompt's and at one batch's row count
    assert lc["batched"]["rows"] == 8 * lc["single"]["rows"] > 0
    assert lc["single"]["gflops"] > 0 and lc["max_speedup"] == lc["batched"]["tok_s"] / lc["single"]["tok_s"]
    out_text = capsys.readouterr().out
    assert "batched is" in out_text and "replaying the trained layers is" in out_text
    assert "batching can make them at most" in out_text
