#!/usr/bin/env python
"""Benchmark GRPO steps: seconds per step and generated tokens/s, per rollout backend, in one run.

Backends (``--backends``, default: every one that applies here):
  hf-dynamic  TRL's HF ``generate`` with the default dynamic KV cache;
  hf-static   HF ``generate`` with ``cache_implementation="static"``, compiled (GPU);
  vllm        vLLM colocate rollouts (only when vLLM can be imported).

Models are random-weight Qwen3-VL built from configs (no download): ``--size tiny`` (the test model,
head_dim 32) or ``--size 2b`` (Qwen3-VL-2B-Instruct's shapes; use ``--device cuda``). Random weights
rarely emit EOS, so every rollout runs to ``--max-completion-length``: a clean throughput measure.
Prompts mix image and text questions, as the RL stage does. The first ``--warmup`` steps of each
backend (compilation, engine start-up) are excluded from the averages. ``--model`` benchmarks a given model
instead (a path or alias, e.g. ``demo``, the built-in default's VLM); ``--dtypes float32,bfloat16`` runs each
backend once per weight dtype (``rl.dtype``: with LoRA the frozen base in that dtype, the adapters float32)
and prints each row's speed-up over the first.

    python scripts/bench_grpo.py                                   # CPU, tiny model
    python scripts/bench_grpo.py --size 2b --device cuda --batch 64 --num-generations 8 \
        --max-completion-length 256 --steps 6
    python scripts/bench_grpo.py --model demo --dtypes float32,bfloat16   # the CPU default's model and rl.dtype
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    from asru.core.openmp import set_wait_policy

    set_wait_policy()  # the CLI's OpenMP wait policy, before torch is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_model(size: str, out: Path, device: str) -> Path:
    """A random Qwen3-VL saved to ``out`` (with the video processor config vLLM wants)."""
    import torch

    from asru.testing.tiny import _save, qwen3_vl_config, qwen3_vl_processor, tiny_qwen3_vl

    if size == "tiny":
        path = tiny_qwen3_vl(out, head_dim=32)
    else:
        from transformers import Qwen3VLForConditionalGeneration

        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen3VLForConditionalGeneration(qwen3_vl_config("2b")).to(torch.bfloat16)
        proc = qwen3_vl_processor(max_pixels=256 * 256)
        model.generation_config.eos_token_id = proc.tokenizer.eos_token_id
        model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
        path = _save(model, proc, out)
        del model
    image = json.loads((path / "processor_config.json").read_text()).get("image_processor", {})
    video = {"video_processor_type": "Qwen3VLVideoProcessor", "processor_class": "Qwen3VLProcessor",
             "patch_size": image.get("patch_size", 16), "temporal_patch_size": 2, "merge_size": 2,
             "size": {"shortest_edge": 4096, "longest_edge": 65536}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
             "do_sample_frames": False}
    (path / "video_preprocessor_config.json").write_text(json.dumps(video))
    return path


def dataset(n: int, image_size: int, tmp: Path):
    """``n`` forget/retain questions, half with a random image."""
    import numpy as np
    from PIL import Image

    from asru.data.schema import Record
    from asru.stages.rl.boundary import to_dataset

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        img = None
        if i % 2 == 0:
            img = tmp / f"img{i}.png"
            Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)).save(img)
        q = "Who is the person in this image?" if img else f"Where was person {i} born?"
        rec = Record(id=f"b{i}", split="forget" if i % 4 < 2 else "retain", task="generation",
                     modality="image" if img else "text", question=q, answer=f"Town{i}", image=str(img) if img else None)
        pairs.append((rec.split, rec))
    return to_dataset(pairs, is_vlm=True)


def parity_reward(prompts, completions, completion_ids=None, **kwargs):
    """A reward with variance inside each group even for random weights (so every step has a gradient)."""
    return [sum(i % 2 for i in ids) / max(1, len(ids)) for ids in completion_ids]


def bench_backend(backend: str, model_path: Path, ds, a, work: Path, dtype: str = "auto") -> dict:
    """Run ``a.steps`` GRPO steps with one rollout backend and weight dtype; return timings."""
    import torch
    from transformers import TrainerCallback

    from asru.config import build_config
    from asru.core.models import load_model
    from asru.stages.rl.trainer import grpo_args, lora_config, make_trainer
    from rewards import load_rewards

    rl = build_config({"rl": {
        "num_generations": a.num_generations, "batch_size": a.batch, "max_completion_length": a.max_completion_length,
        "max_steps": a.steps, "save_steps": 10**6, "lr": 1e-5, "beta": a.beta, "temperature": 1.0,
        "cache_implementation": "static" if backend == "hf-static" else "dynamic",
        "vllm_gpu_memory_utilization": a.vllm_gpu_memory_utilization,
    }}).rl
    lm = load_model(str(model_path), device=a.device, dtype=dtype)
    funcs, weights = load_rewards({"forget": 1.0, "retain": 1.0})
    use_vllm = backend == "vllm"
    on_gpu = a.device.startswith("cuda")
    # every rollout runs to the full length (min tokens), so tokens/s compares like with like
    full = {"min_tokens": a.max_completion_length} if use_vllm else {"min_new_tokens": a.max_completion_length}
    args = grpo_args(rl, work / f"{backend}-{dtype}", device=a.device, use_vllm=use_vllm, bf16=on_gpu and dtype in ("auto", "bfloat16"),
                     reward_weights=weights + [1.0], save_strategy="no", generation_kwargs=full)
    marks: list[float] = []
    gen: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            marks.append(time.perf_counter())

    trainer = make_trainer(model=lm.model, reward_funcs=funcs + [parity_reward], args=args, train_dataset=ds,
                           processing_class=lm.processor, peft_config=lora_config(rl) if a.lora else None,
                           callbacks=[Clock()], compile_generation=backend == "hf-static" and on_gpu)
    real = trainer._generate_single_turn

    def timed(*args_, **kw):
        if on_gpu:
            torch.cuda.synchronize()
        t = time.perf_counter()
        ids, logprobs = real(*args_, **kw)
        if on_gpu:
            torch.cuda.synchronize()
        gen.append((time.perf_counter() - t, sum(len(x) for x in ids)))
        return ids, logprobs

    trainer._generate_single_turn = timed
    trainer.train()
    steps = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    keep = slice(a.warmup, None)
    s, g = steps[keep], gen[keep]
    res = {
        "backend": backend,
        "dtype": dtype,
        "steps_timed": len(s),
        "s_per_step": round(sum(s) / len(s), 3) if s else None,
        "gen_tokens_per_s": round(sum(n for _, n in g) / sum(t for t, _ in g), 1) if g else None,
        "gen_share_of_step": round(sum(t for t, _ in g) / sum(s), 3) if s and g else None,
        "first_step_s": round(steps[0], 2) if steps else None,
    }
    del trainer, lm
    if on_gpu:
        torch.cuda.empty_cache()
    return res


def main(argv=None) -> int:
    """Parse arguments, run each backend, print a table (and write --out JSON)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "2b"], default="tiny")
    p.add_argument("--model", default=None, help="benchmark this model (path or alias, e.g. demo) instead of a random Qwen3-VL")
    p.add_argument("--dtypes", default="auto", help="comma list of weight dtypes to run each backend with (auto, float32, bfloat16)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backends", default="auto", help="comma list of hf-dynamic, hf-static, vllm (auto: all that apply)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=8, help="completions per step")
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--max-completion-length", type=int, default=32)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    import importlib.util

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    on_gpu = a.device.startswith("cuda")
    if a.backends == "auto":
        backends = ["hf-dynamic"] + (["hf-static"] if on_gpu else [])
        backends += ["vllm"] if importlib.util.find_spec("vllm") is not None else []
    else:
        backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    from asru.config import DTYPES

    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        p.error(f"--dtypes: unknown {bad or a.dtypes!r}; use auto, float32, bfloat16, float16")
    if a.warmup >= a.steps:
        p.error("--warmup must be below --steps")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.time()
        if a.model:
            model_path, name = a.model, a.model  # load_model resolves aliases (demo) and paths
        else:
            model_path, name = build_model(a.size, tmp / "model", a.device), f"random Qwen3-VL {a.size}"
            print(f"built {name} in {time.time() - t:.0f} s", flush=True)
        ds = dataset(a.prompts, a.image_size, tmp)
        rows = []
        for b in backends:
            for dtype in dtypes:
                t = time.time()
                rows.append(bench_backend(b, model_path, ds, a, tmp, dtype))
                print(f"{b} {dtype}: done in {time.time() - t:.0f} s: {rows[-1]}", flush=True)
    print(f"\nGRPO bench: {name} on {a.device}, {a.batch} completions/step ({a.num_generations} per prompt), "
          f"{a.max_completion_length} new tokens, LoRA {a.lora}, beta {a.beta}")
    print(f"{'backend':<12} {'dtype':<9} {'s/step':>8} {'gen tok/s':>10} {'gen share':>10} {'first step s':>13} {'speed-up':>9}")
    base = rows[0]["s_per_step"] if rows else None
    for r in rows:
        ratio = f"{base / r['s_per_step']:.2f}x" if base and r["s_per_step"] else "-"
        print(f"{r['backend']:<12} {r['dtype']:<9} {r['s_per_step']!s:>8} {r['gen_tokens_per_s']!s:>10} "
              f"{r['gen_share_of_step']!s:>10} {r['first_step_s']!s:>13} {ratio:>9}")
    if a.out:
        a.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is not None and not torch.cuda.is_available():
        # CPU vLLM needs test-side patches (never in the package): reuse them from the tests
        from tests.vllm_fixtures import apply_cpu_vllm_patches

        apply_cpu_vllm_patches(Path(tempfile.mkdtemp()) / "site")
    sys.exit(main())
