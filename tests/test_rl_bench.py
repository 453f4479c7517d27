"""The GRPO benchmark script runs on a given model with two weight dtypes and reports each row's speed-up."""

import json


def test_bench_grpo_on_tiny_llava_in_two_dtypes(tiny_llava_path, tmp_path, capsys):
    from scripts.bench_grpo import main

    out = tmp_path / "bench.json"
    assert main(["--model", str(tiny_llava_path), "--dtypes", "float32,bfloat16", "--backends", "hf-dynamic",
                 "--steps", "2", "--warmup", "1", "--batch", "4", "--num-generations", "2",
                 "--max-completion-length", "4", "--prompts", "8", "--image-size", "32", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["backend"], r["dtype"]) for r in rows] == [("hf-dynamic", "float32"), ("hf-dynamic", "bfloat16")]
    for r in rows:
        # every rollout runs to the full length: 4 completions x 4 tokens in the timed step
        assert r["steps_timed"] == 1 and r["s_per_step"] > 0 and r["gen_tokens_per_s"] > 0
        assert 0 < r["gen_share_of_step"] <= 1
    text = capsys.readouterr().out
    assert "1.00x" in text and "bfloat16" in text
