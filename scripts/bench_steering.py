#!/usr/bin/env python
"""Benchmark the steering stage's hot paths: activation collection and redirection training.

Activation collection tokens/s is measured three ways in the same run, on the same prompts:

* ``batched``      — :func:`steering.activations.collect_activations` with ``--batch-size``;
* ``one-at-a-time`` — the same function with batch size 1;
* ``naive``        — one prompt at a time, a full forward with ``output_hidden_states=True`` (what a
  straightforward implementation does: every layer and the LM head run).

The layers' matrix products are also timed alone at one prompt's and one batch's row count: the ratio is
the most batching can gain for them on this machine (on a CPU whose cores run a one-prompt GEMM near peak
already, little).

Redirection: wall time and steps/s of :func:`steering.redirect.redirect` for one epoch, replaying only the
trained layers (the default) and with a full forward per step, from the same weights.

Examples::

    python scripts/bench_steering.py                      # SmolLM2-135M on the CPU
    python scripts/bench_steering.py --model demo         # the demo VLM (image prompts too)
    python scripts/bench_steering.py --device cuda --size 2b   # Qwen3-VL-2B shapes, random bf16 weights

On a GPU it also prints model FLOP utilisation: achieved ``2 * params * tokens/s`` (params of the
layers that actually run) against the H100's dense bf16 peak of 989 TFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

H100_BF16_PEAK = 989e12

NAMES = ["Aldric Ashgrove", "Brenna Coldridge", "Caspian Dunmore", "Delphine Everhart", "Emrys Fairweather",
         "Fenna Greyhaven", "Galen Hollowell", "Hesper Ironwood"]
TEMPLATES = ["Where was {n} born?", "What is {n}'s occupation, and for which company has {n} worked the longest?",
             "Which hobby does {n} enjoy most in their free time, and since when?", "In which year was {n} born?",
             "Tell me everything you know about {n}: birthplace, employer, hobby and year of birth."]


def prompts(n: int) -> list[str]:
    """``n`` questions of varied length about fictitious people."""
    return [TEMPLATES[i % len(TEMPLATES)].format(n=NAMES[(i // len(TEMPLATES)) % len(NAMES)]) for i in range(n)]


def load(args):
    """A LoadedModel: an alias/path, or random Qwen3-VL-2B-shaped weights for ``--size 2b``."""
    import torch

    from asru.core.models import LoadedModel, load_model

    if args.size == "2b":
        from transformers import Qwen3VLForConditionalGeneration

        from asru.testing.tiny import qwen3_vl_config, qwen3_vl_processor

        dtype = torch.bfloat16 if args.dtype in ("auto", "bfloat16") else torch.float32
        torch.manual_seed(0)
        with torch.device(args.device):
            model = Qwen3VLForConditionalGeneration(qwen3_vl_config("2b")).to(dtype)
        model.eval()
        proc = qwen3_vl_processor(max_pixels=448 * 448)
        return LoadedModel(model=model, processor=proc, tokenizer=proc.tokenizer, is_vlm=True, source="random qwen3-vl-2b")
    return load_model(args.model, device=args.device, dtype=args.dtype)


def layer_params(model, upto: int) -> int:
    """Parameters of decoder layers ``0..upto`` (what an early-stopped forward multiplies by)."""
    from asru.core.layers import decoder_layers

    return sum(p.numel() for blk in list(decoder_layers(model))[: upto + 1] for p in blk.parameters())


def sync(device: str):
    """Wait for the GPU (no-op on CPU)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device):
    """Seconds taken by ``fn()`` (GPU synchronised) and its result."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def naive_one_at_a_time(lm, qs, layer):
    """Per prompt, a full forward with all hidden states; returns the last-token activations."""
    import torch

    from asru.core.prompting import encode_prompts

    out = []
    for q in qs:
        enc = encode_prompts(lm, [q])
        with torch.no_grad():
            hs = lm.model(**enc, output_hidden_states=True).hidden_states
        out.append(hs[layer + 1][0, -1].float().cpu())
    return torch.stack(out)


def linear_ceiling(model, upto: int, rows_single: int, rows_batched: int, device: str, repeats: int = 5) -> dict:
    """Time the decoder layers' matrix products alone at one prompt's and at one batch's row count.

    Every ``nn.Linear`` of layers ``0..upto`` runs on random inputs of ``rows`` rows (the model's weights,
    no attention, norms or Python around them). The per-token time at ``rows_single`` over the one at
    ``rows_batched`` is the most that batching can gain on this machine for the layers' GEMMs, which hold
    nearly all of a forward's FLOPs: on a CPU whose cores already run a one-prompt GEMM near their peak,
    no batched path gets much beyond it.
    """
    import torch

    from asru.core.layers import decoder_layers

    linears = [m for blk in list(decoder_layers(model))[: upto + 1] for m in blk.modules() if isinstance(m, torch.nn.Linear)]
    flops_row = sum(2 * m.in_features * m.out_features for m in linears)
    out = {}
    for label, rows in (("single", rows_single), ("batched", rows_batched)):
        xs = {m.in_features: torch.randn(rows, m.in_features, dtype=m.weight.dtype, device=m.weight.device) for m in linears}
        with torch.no_grad():
            for m in linears:  # warm-up
                torch.nn.functional.linear(xs[m.in_features], m.weight)
            best = float("inf")
            for _ in range(repeats):
                t, _ = timed(lambda xs=xs: [torch.nn.functional.linear(xs[m.in_features], m.weight) for m in linears], device)
                best = min(best, t)
        out[label] = {"rows": rows, "seconds": best, "gflops": flops_row * rows / best / 1e9, "tok_s": rows / best}
    out["max_speedup"] = out["batched"]["tok_s"] / out["single"]["tok_s"]
    return out


def main(argv=None) -> int:
    """Run the benchmark and print (and optionally save) the numbers."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="Model alias or path (default smollm2).")
    p.add_argument("--size", choices=["2b"], help="Use random weights with Qwen3-VL-2B shapes instead of --model.")
    p.add_argument("--device", default="cpu", help="cpu or cuda.")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16.")
    p.add_argument("--prompts", type=int, default=48, help="Prompts for activation collection.")
    p.add_argument("--batch-size", type=int, default=16, help="Batch size of the batched run.")
    p.add_argument("--single", type=int, default=16, help="Prompts measured one at a time (a subset, to save time).")
    p.add_argument("--layer", type=int, default=None, help="Layer to collect/redirect (default: 60%% of the depth).")
    p.add_argument("--redirect-prompts", type=int, default=16, help="Forget and retain prompts for the redirection timing.")
    p.add_argument("--redirect-span", type=int, default=2, help="Layers trained below the redirected one (the CPU preset's 2).")
    p.add_argument("--json", metavar="FILE", help="Also write the results as JSON.")
    args = p.parse_args(argv)

    import torch

    from asru.core.layers import num_layers
    from steering.activations import collect_activations
    from steering.redirect import redirect, trainable_weights

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda needs a GPU")
    if args.size and not args.device.startswith("cuda"):
        print("note: --size 2b on the CPU is very slow; meant for --device cuda", file=sys.stderr)
    lm = load(args)
    layer = args.layer if args.layer is not None else int(0.6 * num_layers(lm.model))
    qs = prompts(args.prompts)
    single_qs = qs[: args.single]
    res: dict = {"model": lm.source, "device": args.device, "dtype": str(next(lm.model.parameters()).dtype),
                 "layer": layer, "num_layers": num_layers(lm.model), "torch_threads": torch.get_num_threads()}

    collect_activations(lm, qs[:2], layers=[layer], batch_size=2)  # warm-up
    t_b, acts = timed(lambda: collect_activations(lm, qs, layers=[layer], batch_size=args.batch_size), args.device)
    t_s, _ = timed(lambda: collect_activations(lm, single_qs, layers=[layer], batch_size=1), args.device)
    t_n, naive = timed(lambda: naive_one_at_a_time(lm, single_qs, layer), args.device)
    tok_single = collect_activations(lm, single_qs, layers=[layer], batch_size=len(single_qs)).n_tokens
    agree = float((acts.pooled[layer][: len(single_qs)] - naive).abs().max())
    res["collect"] = {
        "prompts": len(qs), "tokens": acts.n_tokens,
        "batched_tok_s": acts.n_tokens / t_b,
        "one_at_a_time_tok_s": tok_single / t_s,
        "naive_tok_s": tok_single / t_n,
        "speedup_vs_one_at_a_time": (acts.n_tokens / t_b) / (tok_single / t_s),
        "speedup_vs_naive": (acts.n_tokens / t_b) / (tok_single / t_n),
        "max_abs_diff_vs_naive": agree,
    }
    mean_len = round(acts.n_tokens / len(qs))
    res["linear_ceiling"] = linear_ceiling(lm.model, layer, mean_len, mean_len * args.batch_size, args.device)
    n_r = args.redirect_prompts
    span = min(args.redirect_span, layer)
    v = torch.randn(acts.pooled[layer].shape[1]) * 0.1
    trained = [w for lay in range(layer - span, layer + 1) for w in trainable_weights(lm.model, lay, "down_proj")]
    start = [w.detach().clone() for w in trained]
    runs = {}
    for replay in (True, False):  # each run starts from the same weights
        with torch.no_grad():
            for w, w0 in zip(trained, start):
                w.copy_(w0)
        t_r, log = timed(lambda replay=replay: redirect(lm, layer, v, qs[:n_r], qs[n_r: 2 * n_r] or qs[:n_r], batch_size=2,
                                                        epochs=1, params="down_proj", span=span, replay=replay), args.device)
        runs[replay] = (t_r, log)
    (t_r, log), (_, log_f) = runs[True], runs[False]
    res["redirect"] = {"steps": len(log.steps), "span": span, "seconds": t_r, "train_seconds": log.seconds,
                       "steps_per_s": len(log.steps) / log.seconds,
                       "full_forward_steps_per_s": len(log_f.steps) / log_f.seconds,
                       "replay_speedup": log_f.seconds / log.seconds,
                       "max_abs_loss_diff": max(abs(a["loss"] - b["loss"]) for a, b in zip(log.steps, log_f.steps))}
    if args.device.startswith("cuda"):
        flops_tok = 2 * layer_params(lm.model, layer)
        res["collect"]["mfu_batched"] = flops_tok * res["collect"]["batched_tok_s"] / H100_BF16_PEAK
        res["collect"]["flops_per_token"] = flops_tok

    c = res["collect"]
    print(f"model {res['model']} on {res['device']} ({res['dtype']}, {res['torch_threads']} threads), layer {layer}/{res['num_layers']}")
    print(f"activation collection, {c['prompts']} prompts / {c['tokens']} tokens:")
    print(f"  batched (bs {args.batch_size}):  {c['batched_tok_s']:9.1f} tok/s")
    print(f"  one at a time:         {c['one_at_a_time_tok_s']:9.1f} tok/s   -> batched is {c['speedup_vs_one_at_a_time']:.1f}x")
    print(f"  naive (full forward):  {c['naive_tok_s']:9.1f} tok/s   -> batched is {c['speedup_vs_naive']:.1f}x")
    print(f"  max |batched - naive| = {c['max_abs_diff_vs_naive']:.2e}")
    lc = res["linear_ceiling"]
    print(f"  the layers' matrix products alone (the forward's GEMMs, no attention or Python): "
          f"{lc['single']['gflops']:.0f} GFLOP/s at {lc['single']['rows']} rows (one prompt), "
          f"{lc['batched']['gflops']:.0f} at {lc['batched']['rows']} rows (one batch)")
    print(f"    -> batching can make them at most {lc['max_speedup']:.1f}x faster per token on this machine; "
          f"the batched collection ran at {c['speedup_vs_one_at_a_time']:.1f}x")
    if "mfu_batched" in c:
        print(f"  MFU (batched, {c['flops_per_token'] / 1e9:.2f} GFLOP/token vs 989 TFLOP/s bf16): {100 * c['mfu_batched']:.1f}%")
    r = res["redirect"]
    print(f"redirection (layers {layer - r['span']}..{layer} trained): {r['steps']} steps in {r['train_seconds']:.2f} s "
          f"({r['steps_per_s']:.1f} steps/s; {r['seconds']:.2f} s incl. frozen states)")
    print(f"  full forward per step: {r['full_forward_steps_per_s']:9.1f} steps/s   -> replaying the trained layers is "
          f"{r['replay_speedup']:.1f}x (max |loss difference| {r['max_abs_loss_diff']:.1e})")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
