"""Directions: diff-of-means values, SVD subspace by energy, retain projection, sample-count errors."""

import pytest
import torch

from asru.core.errors import AsruError
from steering.directions import (
    diff_of_means,
    energy_basis,
    per_sample_differences,
    project_out,
    refusal_directions,
    refusal_subspace,
    require_samples,
    retain_subspace,
)


def test_diff_of_means_values():
    pos = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    neg = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 4.0]])
    assert diff_of_means(pos, neg).tolist() == [2.0, 1.0]


def test_per_layer_directions_not_normalised():
    g = torch.Generator().manual_seed(0)
    pos = {3: torch.randn(6, 8, generator=g) + 5.0, 5: torch.randn(6, 8, generator=g)}
    neg = {3: torch.randn(5, 8, generator=g), 5: torch.randn(5, 8, generator=g)}
    dirs = refusal_directions(pos, neg, min_samples=4)
    assert sorted(dirs) == [3, 5]
    assert dirs[3].shape == (8,)
    assert dirs[3].norm() > 10  # about 5 * sqrt(8), kept unnormalised
    assert torch.allclose(dirs[5], pos[5].mean(0) - neg[5].mean(0))


def test_too_few_samples_message():
    with pytest.raises(AsruError, match=r"kept 2 of 30 refusal prompts after refusal filtering; need >= 4"):
        require_samples(2, 30, 4, "refusal prompts", "refusal filtering")
    with pytest.raises(AsruError, match="kept 3 of 3"):
        refusal_directions({1: torch.zeros(3, 4)}, {1: torch.zeros(8, 4)}, min_samples=4)
    with pytest.raises(AsruError, match="empty"):
        diff_of_means(torch.zeros(0, 4), torch.zeros(3, 4))


def test_energy_basis_picks_k():
    # rows spanned by two orthogonal directions with energies 9:1
    e1, e2 = torch.eye(6)[0], torch.eye(6)[1]
    m = torch.stack([3 * e1, 3 * e1, e2, -e2 * 1.0, 3 * e1, 3 * e1] + [e2] * 0)
    basis, _ = energy_basis(m, 0.8)
    assert basis.shape == (1, 6)
    assert torch.allclose(basis[0].abs(), e1, atol=1e-6)
    basis2, share2 = energy_basis(m, 0.99)
    assert basis2.shape == (2, 6)
    assert share2[-1] == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(basis2 @ basis2.T, torch.eye(2), atol=1e-5)


def test_subspace_first_direction_follows_diff_of_means():
    g = torch.Generator().manual_seed(1)
    shift = torch.zeros(16)
    shift[3] = 4.0
    pos = torch.randn(12, 16, generator=g) * 0.3 + shift
    neg = torch.randn(10, 16, generator=g) * 0.3
    basis, _ = refusal_subspace(pos, neg, energy=0.5)
    v = diff_of_means(pos, neg)
    assert torch.cosine_similarity(basis[0], v, dim=0) > 0.95
    assert per_sample_differences(pos, neg).shape == (22, 16)


def test_project_out_removes_retain_span():
    basis = retain_subspace(torch.tensor([[1.0, 0, 0, 0], [2.0, 0, 0, 0], [0, 0.1, 0, 0]]), energy=0.9)
    assert basis.shape == (1, 4)
    v = project_out(torch.tensor([1.0, 2.0, 3.0, 0.0]), basis)
    assert v.tolist() == pytest.approx([0.0, 2.0, 3.0, 0.0], abs=1e-6)
    assert project_out(torch.ones(3), None).tolist() == [1.0, 1.0, 1.0]
