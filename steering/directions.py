"""Refusal directions: difference of means, optional SVD subspace, retain-subspace projection.

The reference's direction (REFERENCE.md section 1, step 1) at one layer is

    v = mean(activations of refusal-inducing prompts on the ORIGINAL model, kept if it refused)
      - mean(activations of forget-set prompts on the model to unlearn)

not normalised (its norm is the natural steering scale and is kept in the metadata). R-MUSE
(section 2) instead keeps a subspace: the top singular directions of per-sample differences that
cover a share of the energy. Both are here, per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rewards.refusal
from asru.core import prompting
from asru.core.errors import AsruError


@dataclass
class RefusalFilter:
    """Result of keeping only the prompts a model refuses."""

    kept: list[int]
    answers: list[str]

    @property
    def n_total(self) -> int:
        """How many prompts were tried."""
        return len(self.answers)


def filter_refusals(lm, questions: Sequence[str], images: Sequence | None = None, *, max_new_tokens: int = 32,
                    batch_size: int = 16, progress: bool = False) -> RefusalFilter:
    """Greedy-answer ``questions`` with ``lm`` and keep the indices whose answer is a refusal.

    Refusal detection is :func:`rewards.refusal.is_refusal` (the same detector the rewards and eval use).
    """
    answers = prompting.generate(lm, list(questions), images, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       progress=progress, desc="refusal filter")
    return RefusalFilter(kept=[i for i, a in enumerate(answers) if rewards.refusal.is_refusal(a)], answers=answers)


def require_samples(n_kept: int, n_total: int, min_samples: int, what: str, why: str = "", fix: str = "") -> None:
    """Raise AsruError when fewer than ``min_samples`` of ``n_total`` prompts are left for one side.

    ``fix`` names the remedy when it is not "more prompts or a lower steer.min_samples"."""
    if n_kept < min_samples:
        after = f" after {why}" if why else ""
        raise AsruError(
            f"kept {n_kept} of {n_total} {what}{after}; need >= {min_samples} (steer.min_samples) to average a "
            f"direction: {fix or 'add more prompts or lower steer.min_samples'}"
        )


def diff_of_means(positive, negative):
    """``mean(positive) - mean(negative)`` over rows (float32), not normalised. Inputs ``[N, H]``/``[M, H]``."""
    import torch

    positive, negative = torch.as_tensor(positive, dtype=torch.float32), torch.as_tensor(negative, dtype=torch.float32)
    if positive.ndim != 2 or negative.ndim != 2 or positive.shape[1] != negative.shape[1]:
        raise ValueError(f"activation matrices must be [N, H] with the same H, got {tuple(positive.shape)} and {tuple(negative.shape)}")
    if len(positive) == 0 or len(negative) == 0:
        raise AsruError("cannot average an empty set of activations: both sides need prompts")
    return positive.mean(0) - negative.mean(0)


def refusal_directions(positive: dict, negative: dict, min_samples: int = 1) -> dict:
    """Per-layer diff-of-means directions from two ``{layer: [N, H]}`` dicts (e.g. ``Activations.pooled``)."""
    out = {}
    for layer in sorted(set(positive) & set(negative)):
        pos, neg = _as_matrix(positive[layer]), _as_matrix(negative[layer])
        require_samples(len(pos), len(pos), min_samples, "refusal-side activations")
        require_samples(len(neg), len(neg), min_samples, "forget-side activations")
        out[layer] = diff_of_means(pos, neg)
    if not out:
        raise AsruError("the positive and negative activations share no layer")
    return out


def per_sample_differences(positive, negative):
    """Per-sample difference estimates whose mean is the diff-of-means direction.

    Paired sets (same length) give ``positive[i] - negative[i]``; unpaired sets give each positive
    minus the negative mean and the positive mean minus each negative (``[N + M, H]``).
    """
    import torch

    positive, negative = _as_matrix(positive), _as_matrix(negative)
    if len(positive) == len(negative):
        return positive - negative
    return torch.cat([positive - negative.mean(0), positive.mean(0) - negative], 0)


def energy_basis(matrix, energy: float, max_k: int | None = None):
    """Top right-singular vectors of ``matrix`` (uncentred) covering ``energy`` of its squared norm.

    Returns ``(basis [k, H] orthonormal rows, explained [k] cumulative energy shares)``; ``k`` is the
    smallest count reaching ``energy`` (capped at ``max_k``).
    """
    import torch

    if not 0 < energy <= 1:
        raise AsruError(f"subspace energy must be in (0, 1], got {energy}")
    m = _as_matrix(matrix)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    share = (s**2).cumsum(0) / (s**2).sum().clamp(min=1e-30)
    k = int((share < energy - 1e-9).sum()) + 1
    k = min(k, len(s), max_k or len(s))
    basis = vh[:k]
    # orient the first direction like the mean of the rows (so it points the same way as diff-of-means)
    mean = m.mean(0)
    signs = torch.sign(basis @ mean)
    signs[signs == 0] = 1
    return basis * signs.unsqueeze(1), share[:k]


def refusal_subspace(positive, negative, energy: float = 0.8, max_k: int | None = None):
    """R-MUSE-style unlearning subspace: SVD of per-sample differences, ``k`` by explained energy."""
    return energy_basis(per_sample_differences(positive, negative), energy, max_k)


def retain_subspace(retain_acts, energy: float = 0.5, max_k: int | None = 8):
    """Orthonormal basis ``[k, H]`` of the dominant directions of retain activations (uncentred SVD)."""
    return energy_basis(retain_acts, energy, max_k)[0]


def project_out(vector, basis):
    """``vector`` minus its component in the span of ``basis`` (orthonormal rows ``[k, H]``)."""
    import torch

    v = torch.as_tensor(vector, dtype=torch.float32)
    if basis is None or len(basis) == 0:
        return v.clone()
    b = torch.as_tensor(basis, dtype=torch.float32).to(v.device)
    return v - (b @ v) @ b


def _as_matrix(x):
    import torch

    if isinstance(x, (list, tuple)):
        x = torch.cat([torch.as_tensor(t, dtype=torch.float32).reshape(-1, t.shape[-1]) for t in x], 0)
    return torch.as_tensor(x, dtype=torch.float32)
