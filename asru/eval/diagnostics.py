"""Representation diagnostics, reference vs unlearned model, per decoder layer (REFERENCE.md section 4).

On the same prompts (forget-set questions) both models are run with hidden states:

* ``pca_similarity`` = |cos(u_ref, u_upd)|, u = the first principal component of the layer's
  mean-pooled hidden states X (N x d, mean over the prompt's tokens), fitted separately per model;
* ``pca_shift`` = mean(X_upd . c1) - mean(X_ref . c1), c1 = first component of a 2-component PCA
  fitted on the reference (sign fixed so that its largest-magnitude entry is positive);
* ``cka`` = linear CKA of the *first-token output*: the layer's hidden state at the last prompt token,
  the position that produces the first answer token: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with
  K = Xc Xc^T, L = Yc Yc^T on column-centred X, Y (HSIC(K, L) = trace(K L), constants cancel);
* ``fisher``: diagonal empirical Fisher, mean over batches of (dL/dtheta)^2 for the parameters of
  each layer (L = answer NLL on the forget QA); compared as histograms of log10 values, summarised
  by the mean log10 Fisher per layer.

Reversible forgetting keeps PCA similarity and CKA near 1 and a small shift; an irreversible change
moves them. One PNG per diagnostic (matplotlib, Agg backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asru.core.layers import decoder_layers
from asru.core.prompting import encode_prompts, modality_batches
from asru.data.schema import Record
from asru.eval.metrics import free_text_prompt
from asru.stages.baselines.common import encode_batch, nll, qa_pairs

FISHER_SAMPLE = 20000  # parameters per layer kept for the Fisher histograms


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(0, keepdims=True)


def first_pc(x: np.ndarray) -> np.ndarray:
    """The first principal component (unit vector) of the rows of ``x``, sign fixed (largest entry positive)."""
    _, _, vt = np.linalg.svd(_centre(x), full_matrices=False)
    v = vt[0]
    return v if v[np.argmax(np.abs(v))] >= 0 else -v


def pca_similarity(x_ref: np.ndarray, x_upd: np.ndarray) -> float:
    """|cos| between the first principal components of the two representations."""
    return float(abs(first_pc(x_ref) @ first_pc(x_upd)))


def pca_shift(x_ref: np.ndarray, x_upd: np.ndarray) -> float:
    """mean(x_upd . c1) - mean(x_ref . c1) with c1 the reference's first principal component."""
    c1 = first_pc(x_ref)
    return float(np.asarray(x_upd, np.float64).mean(0) @ c1 - np.asarray(x_ref, np.float64).mean(0) @ c1)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same N samples (rows)."""
    xc, yc = _centre(x), _centre(y)
    k, l_ = xc @ xc.T, yc @ yc.T
    hsic_kl, hsic_kk, hsic_ll = float((k * l_).sum()), float((k * k).sum()), float((l_ * l_).sum())
    if hsic_kk <= 0 or hsic_ll <= 0:
        return float("nan")
    return float(hsic_kl / np.sqrt(hsic_kk * hsic_ll))


def hidden_states(lm, records: Sequence[Record], batch_size: int = 8, model=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per decoder layer: mean-pooled hidden states (N x d) and the last-prompt-token hidden states (N x d)."""
    import torch

    scorer = model if model is not None else lm.model
    images = [r.image for r in records]
    pooled: list[list] = []
    last: list[list] = []
    order: list[int] = []
    for idx in modality_batches(images, len(records), batch_size):
        enc = encode_prompts(lm, [free_text_prompt(records[i]) for i in idx], [images[i] for i in idx], padding_side="left")
        with torch.no_grad():
            hs = scorer(**enc, output_hidden_states=True).hidden_states[1:]
        mask = enc["attention_mask"].unsqueeze(-1).float()
        if not pooled:
            pooled, last = [[] for _ in hs], [[] for _ in hs]
        for li, h in enumerate(hs):
            h = h.float()
            pooled[li].append(((h * mask).sum(1) / mask.sum(1)).cpu().numpy())
            last[li].append(h[:, -1].cpu().numpy())
        order += idx
    inv = np.argsort(order)
    return [np.concatenate(p)[inv] for p in pooled], [np.concatenate(x)[inv] for x in last]


def diagonal_fisher(lm, records: Sequence[Record], batch_size: int = 4, model=None, seed: int = 0) -> list[dict]:
    """Per decoder layer: mean log10 diagonal empirical Fisher and a fixed random sample of log10 values."""
    import torch

    model = model if model is not None else lm.model
    layers = decoder_layers(model)
    saved = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    layer_params = [[p for p in layer.parameters()] for layer in layers]
    for ps in layer_params:
        for p in ps:
            p.requires_grad_(True)
    sums = [[torch.zeros_like(p, dtype=torch.float32) for p in ps] for ps in layer_params]
    items = qa_pairs(records)
    n_batches = 0
    try:
        for idx in modality_batches([it[2] for it in items], len(items), batch_size):
            enc, labels = encode_batch(lm, [items[i] for i in idx])
            model.zero_grad(set_to_none=True)
            nll(model, enc, labels).backward()
            for ps, acc in zip(layer_params, sums):
                for p, a in zip(ps, acc):
                    if p.grad is not None:
                        a += p.grad.detach().float() ** 2
            n_batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in saved.items():
            p.requires_grad_(flag)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for acc in sums:
        flat = torch.cat([a.flatten() for a in acc]) / max(n_batches, 1)
        logf = torch.log10(flat + 1e-30)
        pick = torch.randperm(flat.numel(), generator=gen)[: min(FISHER_SAMPLE, flat.numel())]
        out.append({"mean_log10": float(logf.mean()), "sample": logf[pick.to(logf.device)].cpu().numpy()})
    return out


def _plot_lines(path: Path, layers: list[int], series: dict[str, list[float]], ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, ys in series.items():
        ax.plot(layers, ys, marker="o", ms=3, label=label)
    ax.set_xlabel("decoder layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_fisher(path: Path, layers: list[int], ref: list[dict], upd: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = sorted({layers[0], layers[len(layers) // 3], layers[2 * len(layers) // 3], layers[-1]})
    fig, axes = plt.subplots(1, len(picks), figsize=(3.2 * len(picks), 3), squeeze=False)
    for ax, li in zip(axes[0], picks):
        lo = min(ref[li]["sample"].min(), upd[li]["sample"].min())
        hi = max(ref[li]["sample"].max(), upd[li]["sample"].max())
        bins = np.linspace(max(lo, -30), hi, 50)
        ax.hist(ref[li]["sample"], bins=bins, alpha=0.5, label="reference")
        ax.hist(upd[li]["sample"], bins=bins, alpha=0.5, label="unlearned")
        ax.set_title(f"layer {li}")
        ax.set_xlabel("log10 Fisher")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_diagnostics(lm, reference, records: Sequence[Record], out_dir: Path, batch_size: int = 8, fisher: bool = True, seed: int = 0) -> dict:
    """All diagnostics for ``lm`` (unlearned) vs ``reference`` on ``records``; PNGs in ``out_dir``; per-layer lists + summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pooled_r, last_r = hidden_states(reference, records, batch_size)
    pooled_u, last_u = hidden_states(lm, records, batch_size)
    layers = list(range(len(pooled_r)))
    res = {
        "layers": layers,
        "pca_similarity": [pca_similarity(a, b) for a, b in zip(pooled_r, pooled_u)],
        "pca_shift": [pca_shift(a, b) for a, b in zip(pooled_r, pooled_u)],
        "cka": [linear_cka(a, b) for a, b in zip(last_r, last_u)],
    }
    _plot_lines(out_dir / "pca_similarity.png", layers, {"|cos| first PCs": res["pca_similarity"]}, "PCA similarity", "PCA similarity (reference vs unlearned)")
    _plot_lines(out_dir / "pca_shift.png", layers, {"shift along reference PC1": res["pca_shift"]}, "PCA shift", "PCA shift (unlearned - reference)")
    _plot_lines(out_dir / "cka.png", layers, {"linear CKA": res["cka"]}, "CKA", "Linear CKA, first-token output")
    if fisher:
        f_ref = diagonal_fisher(reference, records, max(1, batch_size // 2), seed=seed)
        f_upd = diagonal_fisher(lm, records, max(1, batch_size // 2), seed=seed)
        res["fisher_ref_mean_log10"] = [f["mean_log10"] for f in f_ref]
        res["fisher_upd_mean_log10"] = [f["mean_log10"] for f in f_upd]
        _plot_fisher(out_dir / "fisher.png", layers, f_ref, f_upd)
        _plot_lines(out_dir / "fisher_mean.png", layers, {"reference": res["fisher_ref_mean_log10"], "unlearned": res["fisher_upd_mean_log10"]},
                    "mean log10 Fisher", "Diagonal empirical Fisher")
    finite = [c for c in res["cka"] if np.isfinite(c)]
    res["summary"] = {
        "pca_similarity_mean": float(np.mean(res["pca_similarity"])),
        "pca_shift_max_abs": float(np.max(np.abs(res["pca_shift"]))),
        "cka_mean": float(np.mean(finite)) if finite else None,
        "cka_min": float(np.min(finite)) if finite else None,
    }
    if fisher:
        res["summary"]["fisher_log10_shift_mean"] = float(np.mean(np.subtract(res["fisher_upd_mean_log10"], res["fisher_ref_mean_log10"])))
    return res
