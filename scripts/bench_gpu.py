#!/usr/bin/env python
"""GPU benchmark at Qwen3-VL-2B size (or 4B/8B with --size, or a memory preset with --preset; random weights, bf16, CUDA)
of the code paths asru runs.

Measures, each through the library's own code:

* activation collection (:func:`steering.activations.collect_activations`, image+text prompts, up to
  the steering layer): tokens/s and model FLOP utilisation (MFU);
* redirection (:func:`steering.redirect.redirect`): seconds per optimiser step and MFU, at the
  reference batch size 2 and at a larger batch;
* rollouts at batch 64: HF ``generate`` with the dynamic cache, and with a static cache + compile;
  vLLM (dummy weights) when it is importable: generated tokens/s;
* GRPO (:func:`asru.stages.rl.stage.run_rl_stage`, TRL's GRPOTrainer, LoRA, HF-generate rollouts): seconds per step,
  generated tokens/s and an MFU estimate;
* peak GPU memory of each part.

MFU = model FLOPs / (time x the card's dense bf16 peak): H100 SXM and H200 989 TFLOP/s (H100 PCIe 756,
A100 312); ``--peak-tflops`` for other cards. Model FLOPs count 2 x parameters x tokens for every
matmul the pass runs (vision tower, decoder layers actually run, LM head when logits are computed) plus
causal attention (2 x layers x heads x head_dim x T^2 per sequence forward); backward = 2 x forward for
the tensors that need gradients (formulas in the JSON's ``notes``). Results go to a JSON file and a
table on stdout.

Without a CUDA GPU the script refuses with a one-line message (exit 2). ``--dry-run-cpu`` runs every
part on the CPU with a tiny model only to check the script itself (no MFU, numbers meaningless).

    python scripts/bench_gpu.py --out bench_gpu.json
    python scripts/bench_gpu.py --parts grpo --preset configs/qwen3-vl/8b-80gb.yaml --out bench_gpu_8b.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
                    ("L40S", 362.0), ("B200", 2250.0))
TARGETS = {"activation_collection_mfu": 0.40, "training_step_mfu": 0.25, "rollout_tokens_per_s_batch64": 14000.0}
NOTES = {
    "forward_flops": "2 * matmul params * tokens (vision tower on patches, decoder layers run, LM head where logits are "
                     "computed) + causal attention 2 * layers * heads * head_dim * T^2 per sequence",
    "redirection_step": "forward up to the steering layer + backward into that layer's down_proj weight only "
                        "(2 * tokens * hidden * intermediate)",
    "grpo_step": "rollout decode (2 * P * generated tokens) + reference forward (beta > 0) + policy forward and backward "
                 "(LoRA: activation gradients 2 * forward; LoRA weight gradients ignored); gradient-checkpointing "
                 "recompute is NOT counted (model FLOPs, not hardware FLOPs)",
    "rollouts": "generated tokens / wall time of generate(); prompts are text-only, min_new_tokens = max_new_tokens",
}


def peak_tflops(name: str, override: float | None) -> float | None:
    """The dense bf16 peak of a GPU by its name (None when unknown and not given)."""
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


# ---------------------------------------------------------------------------------------------------------
# Model and FLOP accounting


class Shapes:
    """The FLOP-relevant shapes of a Qwen3-VL model."""

    def __init__(self, model):
        text = model.config.text_config
        self.layers = text.num_hidden_layers
        self.hidden = text.hidden_size
        self.ff = text.intermediate_size
        self.heads = text.num_attention_heads
        self.head_dim = getattr(text, "head_dim", None) or self.hidden // self.heads
        self.vocab = text.vocab_size
        lm = model.model.language_model
        self.p_layer = sum(p.numel() for p in lm.layers[0].parameters())
        vis = model.model.visual
        self.p_visual = sum(p.numel() for p in vis.parameters() if p.dim() > 1) - vis.pos_embed.weight.numel()
        vcfg = model.config.vision_config
        self.v_depth, self.v_hidden = vcfg.depth, vcfg.hidden_size
        self.merge = vcfg.spatial_merge_size
        self.p_total = sum(p.numel() for p in model.parameters())

    def text_forward(self, seq_lens, n_layers: int | None = None, logits_tokens: int = 0) -> float:
        """Forward FLOPs of sequences of ``seq_lens`` tokens through ``n_layers`` decoder layers (+ LM head tokens)."""
        n = self.layers if n_layers is None else n_layers
        tokens = sum(seq_lens)
        attn = sum(2.0 * n * self.heads * self.head_dim * t * t for t in seq_lens)
        return 2.0 * n * self.p_layer * tokens + attn + 2.0 * self.vocab * self.hidden * logits_tokens

    def vision_forward(self, patches_per_image) -> float:
        """Forward FLOPs of the vision tower on images of ``patches_per_image`` patches."""
        return sum(2.0 * self.p_visual * p + 4.0 * self.v_depth * self.v_hidden * p * p for p in patches_per_image)

    def decode(self, batch: int, prompt: int, new: int) -> float:
        """FLOPs of generating ``new`` tokens for ``batch`` sequences after a ``prompt``-token prefill."""
        per_tok = 2.0 * (self.layers * self.p_layer + self.vocab * self.hidden)
        attn = sum(4.0 * self.layers * self.heads * self.head_dim * (prompt + i) for i in range(new))
        return batch * (new * per_tok + attn)


def build_lm(size: str, device: str, dtype, image_px: int):
    """A random-weight Qwen3-VL (``asru.testing.tiny.qwen3_vl_config(size)``) with the real Qwen tokenizer and an image processor."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from asru.core.models import LoadedModel
    from asru.testing.tiny import qwen3_vl_config, qwen3_vl_processor

    torch.manual_seed(0)
    config = qwen3_vl_config(size)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    proc = qwen3_vl_processor(max_pixels=image_px * image_px)
    model.generation_config.eos_token_id = proc.tokenizer.eos_token_id
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    return LoadedModel(model=model, processor=proc, tokenizer=proc.tokenizer, is_vlm=True, source=f"random-qwen3-vl-{size}")


def make_image(path: Path, px: int, seed: int) -> Path:
    """A deterministic noise PNG of ``px`` x ``px`` pixels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (px, px, 3), dtype=np.uint8)).save(path)
    return path


def prompts(n: int, words: int, prefix: str) -> list[str]:
    """``n`` distinct questions of equal length (about ``words`` filler words)."""
    filler = " ".join(["please describe the person and the place in detail"] * max(1, words // 9))
    return [f"{prefix} {i:05d}: {filler}?" for i in range(n)]


def token_lengths(lm, questions, images, batch_size: int) -> list[int]:
    """Prompt lengths in tokens (chat template and image tokens included), via the library's encoder."""
    from asru.core.prompting import encode_prompts

    out = []
    for s in range(0, len(questions), batch_size):
        enc = encode_prompts(lm, questions[s:s + batch_size], images[s:s + batch_size] if images else None)
        out += [int(x) for x in enc["attention_mask"].sum(1)]
    return out


def patches(lm, image) -> int:
    """Vision patches of one image after the processor's resize."""
    from asru.core.prompting import load_image

    grid = lm.processor.image_processor(images=[load_image(image)], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod())


class Section:
    """Timing/memory bookkeeping of one benchmark part."""

    def __init__(self, name: str, results: dict, cuda: bool):
        self.name, self.results, self.cuda = name, results, cuda

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.results.setdefault(self.name, {})
        print(f"[bench] {self.name} ...", flush=True)
        self.t0 = time.time()
        return self

    def __exit__(self, exc_type, exc, tb):
        import torch

        entry = self.results.setdefault(self.name, {})
        entry["wall_s"] = round(time.time() - self.t0, 2)
        if self.cuda:
            torch.cuda.synchronize()
            entry["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            entry["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        if exc is not None:
            entry["error"] = f"{exc_type.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            entry["traceback"] = traceback.format_exc(limit=6)
            print(f"[bench] {self.name} FAILED: {entry['error']}", flush=True)
            return True  # record and go on with the other parts
        return False


def sync(cuda: bool):
    """Wait for queued GPU work (no-op on CPU)."""
    if cuda:
        import torch

        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------
# The parts


def bench_activations(lm, shapes, args, image, peak, res, cuda):
    """Activation collection at the steering layer over image+text prompts."""
    from steering.activations import collect_activations

    n = args.n_prompts
    qs_img, qs_txt = prompts(n // 2, args.prompt_words, "Image question"), prompts(n - n // 2, args.prompt_words, "Text question")
    questions, images = qs_img + qs_txt, [image] * len(qs_img) + [None] * len(qs_txt)
    lens = token_lengths(lm, qs_img, [image] * len(qs_img), args.act_batch) + token_lengths(lm, qs_txt, None, args.act_batch)
    layer = args.layer
    collect_activations(lm, questions[: args.act_batch], images[: args.act_batch], layers=[layer], batch_size=args.act_batch)  # warm-up
    sync(cuda)
    t = time.time()
    acts = collect_activations(lm, questions, images, layers=[layer], position="last", batch_size=args.act_batch)
    sync(cuda)
    dt = time.time() - t
    flops = shapes.text_forward(lens, n_layers=layer + 1) + shapes.vision_forward([patches(lm, image)] * len(qs_img))
    out = {"prompts": n, "batch_size": args.act_batch, "layer": layer, "tokens": sum(lens), "seconds": round(dt, 3),
           "tokens_per_s": round(sum(lens) / dt, 1), "tflops": round(flops / 1e12, 3),
           "shape": list(acts.matrix(layer).shape)}
    if peak:
        out["mfu"] = round(flops / dt / (peak * 1e12), 4)
    res.update(out)


def bench_redirection(lm, shapes, args, image, peak, res, cuda):
    """Redirection steps (reference batch 2, and a larger batch)."""
    import torch

    from steering.redirect import redirect

    layer = args.layer
    v = torch.randn(shapes.hidden, generator=torch.Generator().manual_seed(0)) * 2
    w = lm.model.model.language_model.layers[layer].mlp.down_proj.weight
    original = w.detach().clone()
    for bs in args.redirect_batches:
        n = bs * args.redirect_steps
        f_q = prompts(n, args.prompt_words, "Forget question")
        r_q = prompts(n, args.prompt_words, "Retain question")
        f_im = [image] * n
        f_len = token_lengths(lm, f_q, f_im, bs)
        r_len = token_lengths(lm, r_q, None, bs)
        log = redirect(lm, layer, v, f_q, r_q, f_im, None, batch_size=bs, epochs=1, lr=1e-5, position="last")
        with torch.no_grad():
            w.copy_(original)
        steps = len(log.steps)
        fwd = (shapes.text_forward(f_len + r_len, n_layers=layer + 1)
               + shapes.vision_forward([patches(lm, image)] * n))
        bwd = 2.0 * (sum(f_len) + sum(r_len)) * shapes.hidden * shapes.ff
        step_s = log.seconds / steps
        entry = {"batch_size": bs, "steps": steps, "seconds_per_step": round(step_s, 4),
                 "tokens_per_step": round((sum(f_len) + sum(r_len)) / steps, 1), "tflops_per_step": round((fwd + bwd) / steps / 1e12, 4)}
        if peak:
            entry["mfu"] = round((fwd + bwd) / log.seconds / (peak * 1e12), 4)
        res[f"batch_{bs}"] = entry


def bench_rollouts_hf(lm, shapes, args, res, cuda):
    """HF generate at batch B: dynamic cache, then static cache + compile (timed after a warm-up call)."""
    import torch

    vocab_hi = 150000
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_hi, (args.rollout_batch, args.rollout_prompt), generator=g).to(lm.device)
    mask = torch.ones_like(ids)
    new = args.rollout_new
    model = lm.model
    for name, kwargs in (("hf_dynamic", {}), ("hf_static_compiled", {"cache_implementation": "static"})):
        entry = res.setdefault(name, {})
        if kwargs and not cuda:
            entry["skipped"] = "static cache + compile is only timed on a GPU"
            continue
        try:
            calls = []
            for _ in range(2 if kwargs else 1):  # static: first call compiles
                sync(cuda)
                t = time.time()
                with torch.no_grad():
                    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                         do_sample=True, temperature=1.0, top_p=1.0, pad_token_id=lm.tokenizer.pad_token_id,
                                         **kwargs)
                sync(cuda)
                calls.append(time.time() - t)
            dt = calls[-1]
            gen = int((out.shape[1] - ids.shape[1]) * ids.shape[0])
            entry.update({"batch": args.rollout_batch, "prompt_tokens": args.rollout_prompt, "new_tokens": new,
                          "seconds": round(dt, 3), "tokens_per_s": round(gen / dt, 1),
                          "first_call_s": round(calls[0], 2)})
        except Exception as exc:  # noqa: BLE001 - record and continue with the next variant
            entry["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def bench_rollouts_vllm(lm, args, workdir: Path, res):
    """vLLM generation with dummy weights (same shapes) at batch B, when vLLM is importable."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        res["skipped"] = "vLLM is not installed"
        return
    from vllm import LLM, SamplingParams

    d = workdir / "vllm-model"
    lm.model.config.save_pretrained(d)
    lm.model.generation_config.save_pretrained(d)
    lm.processor.save_pretrained(d)
    if not (d / "video_preprocessor_config.json").exists():  # vLLM's Qwen3-VL processor loading wants one
        ip = lm.processor.image_processor
        (d / "video_preprocessor_config.json").write_text(json.dumps({
            "video_processor_type": "Qwen3VLVideoProcessor", "processor_class": "Qwen3VLProcessor",
            "patch_size": ip.patch_size, "temporal_patch_size": ip.temporal_patch_size, "merge_size": ip.merge_size,
            "image_mean": list(ip.image_mean), "image_std": list(ip.image_std), "do_sample_frames": False}))
    llm = LLM(model=str(d), load_format="dummy", dtype="bfloat16", gpu_memory_utilization=args.vllm_memory,
              max_model_len=args.rollout_prompt + args.rollout_new + 64, seed=0, limit_mm_per_prompt={"image": 1, "video": 0})
    import random

    rng = random.Random(0)
    reqs = [{"prompt_token_ids": [rng.randrange(1000, 150000) for _ in range(args.rollout_prompt)]} for _ in range(args.rollout_batch)]
    sp = SamplingParams(max_tokens=args.rollout_new, min_tokens=args.rollout_new, ignore_eos=True, temperature=1.0)
    llm.generate(reqs[:2], sp)  # warm-up
    t = time.time()
    outs = llm.generate(reqs, sp)
    dt = time.time() - t
    gen = sum(len(o.outputs[0].token_ids) for o in outs)
    res.update({"batch": args.rollout_batch, "new_tokens": args.rollout_new, "seconds": round(dt, 3), "tokens_per_s": round(gen / dt, 1)})
    del llm


def bench_grpo(lm, shapes, args, image, workdir: Path, peak, res, cuda):
    """GRPO steps through the RL stage (TRL GRPOTrainer, LoRA, HF-generate rollouts with the stage's cache choice)."""
    from asru.config import build_config
    from asru.data.schema import Record
    from asru.stages.rl.stage import run_rl_stage
    from asru.stages.rl.trainer import cache_implementation

    model_dir = workdir / "grpo-model"
    lm.model.save_pretrained(model_dir, safe_serialization=True)
    lm.processor.save_pretrained(model_dir)
    n = args.grpo_prompts
    qs = prompts(2 * n, args.prompt_words, "Question")
    data = {
        "forget": [Record(id=f"f{i}", split="forget", task="generation", modality="text", question=qs[i], answer="Veltmoor",
                          person="p0", fact="birthplace") for i in range(n)],
        "retain": [Record(id=f"r{i}", split="retain", task="generation", modality="text", question=qs[n + i], answer="Ostrava",
                          person="p1", fact="birthplace") for i in range(n)],
    }
    rl = {"num_generations": args.grpo_generations, "batch_size": args.grpo_batch, "grad_accum": args.grpo_grad_accum,
          "max_completion_length": args.grpo_new, "lora": True, "beta": 0.1}
    if args.preset:  # the preset's own RL settings (batch sizes, accumulation, checkpointing, LoRA)
        rl.update(args.preset_rl)
    rl.update({"forget_size": n, "retain_size": n, "max_steps": args.grpo_steps, "use_vllm": "false",
               "rewards": {"forget": 1.0, "retain": 1.0}, "save_steps": 10000, "logging_steps": 1})
    cfg = build_config({"model": {"device": "cuda" if cuda else "cpu", "dtype": "bfloat16" if cuda else "float32"}, "rl": rl})
    b = cfg.rl.batch_size * cfg.rl.grad_accum
    out = run_rl_stage(cfg, str(model_dir), data, workdir / "grpo-out", reference_path=str(model_dir))
    summary = json.loads((Path(out).parent / "rl_summary.json").read_text())
    steps = [h for h in summary["log_history"] if h.get("step_time") is not None]
    timed = steps[1:] if len(steps) > 1 else steps  # the first step includes compilation
    if not timed:  # no per-step timing logged: fall back to the stage's average (includes the first step)
        timed = [{"step_time": summary["train_seconds"] / max(1, summary["global_step"])}]
        steps = timed
    step_s = sum(h["step_time"] for h in timed) / len(timed)
    comp_len = sum(h.get("completions/mean_length", args.grpo_new) for h in timed) / len(timed)
    prompt_len = sum(token_lengths(lm, qs[:b], None, b)) / b
    gen_tokens = b * comp_len
    seq = [int(prompt_len + comp_len)] * b
    fwd = shapes.text_forward(seq, logits_tokens=int(gen_tokens))
    flops = shapes.decode(b, int(prompt_len), int(comp_len)) + fwd * (1 + 1 + 2)  # ref fwd + policy fwd + bwd
    entry = {"completions_per_step": b, "micro_batch": cfg.rl.batch_size, "grad_accum": cfg.rl.grad_accum,
             "gradient_checkpointing": str(cfg.rl.gradient_checkpointing), "num_generations": cfg.rl.num_generations,
             "max_completion_length": cfg.rl.max_completion_length, "mean_completion_tokens": round(comp_len, 1),
             "steps_timed": len(timed), "seconds_per_step": round(step_s, 3), "first_step_s": round(steps[0]["step_time"], 2),
             "generated_tokens_per_s": round(gen_tokens / step_s, 1), "tflops_per_step": round(flops / 1e12, 3),
             "cache_implementation": cache_implementation("auto", "cuda" if cuda else "cpu", False) or "dynamic"}
    if peak:
        entry["mfu"] = round(flops / step_s / (peak * 1e12), 4)
        hf = res.get("_rollout_tps")
        if hf:  # split off the rollout time measured by the rollout part
            train_s = step_s - gen_tokens / hf
            if train_s > 0:
                entry["train_part_mfu_estimate"] = round(fwd * 4 / train_s / (peak * 1e12), 4)
    res.pop("_rollout_tps", None)
    res.update(entry)


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench_gpu.json", help="JSON results file.")
    p.add_argument("--parts", default="activations,redirection,rollouts,vllm,grpo", help="Comma-separated parts to run.")
    p.add_argument("--peak-tflops", type=float, default=None, help="Dense bf16 peak of the card when its name is not known.")
    p.add_argument("--layer", type=int, default=17, help="Steering layer (the reference's 17 for Qwen3-VL-2B).")
    p.add_argument("--image-px", type=int, default=448, help="Image side in pixels (448 -> 196 image tokens).")
    p.add_argument("--prompt-words", type=int, default=40, help="Filler words per question.")
    p.add_argument("--n-prompts", type=int, default=512, help="Activation collection: prompts (half with an image).")
    p.add_argument("--act-batch", type=int, default=64, help="Activation collection batch size.")
    p.add_argument("--redirect-batches", default="2,32", help="Redirection batch sizes to time.")
    p.add_argument("--redirect-steps", type=int, default=20, help="Redirection: forget (and retain) batches per size.")
    p.add_argument("--rollout-batch", type=int, default=64, help="Rollout batch size.")
    p.add_argument("--rollout-prompt", type=int, default=256, help="Rollout prompt length (tokens).")
    p.add_argument("--rollout-new", type=int, default=256, help="Generated tokens per rollout.")
    p.add_argument("--vllm-memory", type=float, default=0.5, help="vLLM gpu_memory_utilization.")
    p.add_argument("--grpo-prompts", type=int, default=32, help="GRPO: forget and retain prompts each.")
    p.add_argument("--grpo-batch", type=int, default=64, help="GRPO: completions per step.")
    p.add_argument("--grpo-generations", type=int, default=8, help="GRPO: rollouts per prompt.")
    p.add_argument("--grpo-new", type=int, default=128, help="GRPO: max completion tokens.")
    p.add_argument("--grpo-grad-accum", type=int, default=1, help="GRPO: gradient accumulation steps.")
    p.add_argument("--grpo-steps", type=int, default=4, help="GRPO: steps (the first is not timed).")
    p.add_argument("--size", choices=["2b", "4b", "8b"], default=None, help="Qwen3-VL shapes (default 2b, or the preset's).")
    p.add_argument("--preset", default=None, help="A configs/qwen3-vl/*-80gb.yaml preset: its model size and RL settings "
                                                   "are used, so the GRPO part measures the preset's peak memory.")
    p.add_argument("--dry-run-cpu", action="store_true", help="Check the script on the CPU with a tiny model (numbers meaningless).")
    args = p.parse_args(argv)
    args.redirect_batches = [int(x) for x in args.redirect_batches.split(",") if x.strip()]
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - {"activations", "redirection", "rollouts", "vllm", "grpo"}
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}")
    args.preset_rl = {}
    if args.preset:
        from asru.config_yaml import load_yaml

        preset = load_yaml(args.preset)  # resolves `inherits:` (the size presets hold only what differs from base.yaml)
        args.preset_rl = {k: v for k, v in (preset.get("rl") or {}).items() if k not in ("epochs",)}
        name = (preset.get("model") or {}).get("name", "qwen3-vl")
        args.size = args.size or {"qwen3-vl": "2b", "qwen3-vl-2b": "2b", "qwen3-vl-4b": "4b", "qwen3-vl-8b": "8b"}.get(name)
        if args.size is None:
            p.error(f"preset {args.preset} names model {name!r}, not a Qwen3-VL 2B/4B/8B alias")
    args.size = args.size or "2b"
    return args


def shrink_for_cpu(args):
    """Tiny shapes for --dry-run-cpu."""
    args.layer, args.image_px, args.prompt_words, args.n_prompts, args.act_batch = 1, 64, 4, 8, 4
    args.redirect_batches, args.redirect_steps = [2], 2
    args.rollout_batch, args.rollout_prompt, args.rollout_new = 4, 8, 4
    args.grpo_prompts, args.grpo_batch, args.grpo_generations, args.grpo_new, args.grpo_steps = 2, 4, 2, 4, 2


def main(argv=None) -> int:
    """Run the selected parts and write the JSON; exit 2 without a GPU (unless --dry-run-cpu)."""
    args = parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run_cpu:
        print("bench_gpu.py needs a CUDA GPU and none is visible here: nothing was measured "
              "(use --dry-run-cpu only to check the script)", file=sys.stderr)
        return 2
    if args.dry_run_cpu:
        cuda = False
        shrink_for_cpu(args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import transformers

    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or platform.machine()})"
    peak = peak_tflops(name, args.peak_tflops) if cuda else None
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    results: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": name, "dry_run_cpu": bool(args.dry_run_cpu),
        "peak_bf16_tflops": peak, "torch": torch.__version__, "transformers": transformers.__version__,
        "model": f"Qwen3-VL-{args.size.upper()} shapes (asru.testing.tiny.qwen3_vl_config('{args.size}')), random weights, "
                 + str(dtype).replace("torch.", ""), "preset": args.preset,
        "targets": TARGETS, "notes": NOTES, "settings": {k: v for k, v in vars(args).items() if k != "out"},
    }
    t_build = time.time()
    lm = build_lm("tiny" if args.dry_run_cpu else args.size, device, dtype, args.image_px)
    shapes = Shapes(lm.model)
    results["params"] = {"total": shapes.p_total, "per_decoder_layer": shapes.p_layer, "vision_matmul": shapes.p_visual,
                         "decoder_layers": shapes.layers}
    results["build_s"] = round(time.time() - t_build, 1)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(tmp)
        image = make_image(work / "noise.png", args.image_px, 0)
        if "activations" in args.parts:
            with Section("activation_collection", results, cuda):
                bench_activations(lm, shapes, args, image, peak, results["activation_collection"], cuda)
        if "redirection" in args.parts:
            with Section("redirection", results, cuda):
                bench_redirection(lm, shapes, args, image, peak, results["redirection"], cuda)
        if "rollouts" in args.parts:
            with Section("rollouts", results, cuda):
                bench_rollouts_hf(lm, shapes, args, results["rollouts"], cuda)
        if "vllm" in args.parts and cuda:
            with Section("rollouts_vllm", results, cuda):
                bench_rollouts_vllm(lm, args, work, results["rollouts_vllm"])
        if "grpo" in args.parts:
            with Section("grpo", results, cuda):
                static = results.get("rollouts", {}).get("hf_static_compiled", {}).get("tokens_per_s")
                results["grpo"] = {"_rollout_tps": static} if static else {}
                bench_grpo(lm, shapes, args, image, work, peak, results["grpo"], cuda)
    results["verdict"] = verdict(results)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(summary_table(results))
    print(f"[bench] results written to {args.out}")
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


def verdict(results: dict) -> dict:
    """Each target: the measured value and whether it is met (None when not measured)."""
    act = results.get("activation_collection", {}).get("mfu")
    red = [v.get("mfu") for k, v in results.get("redirection", {}).items() if k.startswith("batch_") and isinstance(v, dict)]
    grpo = results.get("grpo", {}).get("train_part_mfu_estimate")
    roll = results.get("rollouts", {}).get("hf_static_compiled", {}).get("tokens_per_s")
    train = max([x for x in red + [grpo] if x is not None], default=None)

    def check(value, target):
        return {"value": value, "target": target, "met": None if value is None else value >= target}

    return {"activation_collection_mfu": check(act, TARGETS["activation_collection_mfu"]),
            "training_step_mfu (best of redirection batches / GRPO train part)": check(train, TARGETS["training_step_mfu"]),
            "rollout_tokens_per_s_batch64 (HF static+compile)": check(roll, TARGETS["rollout_tokens_per_s_batch64"])}


def summary_table(r: dict) -> str:
    """A plain-text summary of the JSON."""
    rows = [f"device: {r['device']}   date: {r['date']}   peak bf16: {r['peak_bf16_tflops']} TFLOP/s"]

    def add(label, d, keys):
        if not isinstance(d, dict):
            return
        if "error" in d:
            rows.append(f"  {label:<34} ERROR {d['error']}")
            return
        vals = ", ".join(f"{k}={d[k]}" for k in keys if k in d)
        if vals:
            rows.append(f"  {label:<34} {vals}")

    add("activation collection", r.get("activation_collection"), ["tokens_per_s", "mfu", "peak_memory_gib"])
    for k, v in (r.get("redirection") or {}).items():
        if k.startswith("batch_"):
            add(f"redirection {k}", v, ["seconds_per_step", "mfu"])
    add("redirection memory", r.get("redirection"), ["peak_memory_gib", "error"])
    for k in ("hf_dynamic", "hf_static_compiled"):
        add(f"rollouts {k}", (r.get("rollouts") or {}).get(k), ["tokens_per_s", "first_call_s"])
    add("rollouts memory", r.get("rollouts"), ["peak_memory_gib"])
    add("rollouts vLLM", r.get("rollouts_vllm"), ["tokens_per_s", "skipped", "peak_memory_gib"])
    add("GRPO step", r.get("grpo"), ["seconds_per_step", "generated_tokens_per_s", "mfu", "train_part_mfu_estimate", "peak_memory_gib"])
    for k, v in r.get("verdict", {}).items():
        rows.append(f"  target {k}: {v['value']} vs {v['target']} -> {'met' if v['met'] else 'NOT met' if v['met'] is False else 'not measured'}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
