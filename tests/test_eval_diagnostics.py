"""Representation diagnostics: CKA / PCA identities on synthetic matrices, and the tiny-model pipeline."""

import numpy as np
import pytest
from eval_fixtures import text_qa

from asru.eval.diagnostics import first_pc, hidden_states, linear_cka, pca_shift, pca_similarity, run_diagnostics


def _x(seed=0, n=20, d=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.array([5.0, 2.0, 1.0, 0.5, 0.3, 0.1])


def test_cka_identities():
    x = _x()
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)  # orthogonal rotation
    assert linear_cka(x, 3.0 * x + 7.0) == pytest.approx(1.0)  # isotropic scale + offset
    assert linear_cka(x, _x(seed=5)) < 0.5  # unrelated representations


def test_pca_similarity_and_shift():
    x = _x()
    assert pca_similarity(x, x) == pytest.approx(1.0)
    assert pca_similarity(x, -x) == pytest.approx(1.0)  # sign of a component does not matter
    assert pca_shift(x, x) == pytest.approx(0.0)
    c1 = first_pc(x)
    assert abs(c1[0]) > 0.9  # the high-variance axis
    assert pca_shift(x, x + 2.0 * c1) == pytest.approx(2.0)
    swapped = x[:, [1, 0, 2, 3, 4, 5]] * np.array([1, 1, 1, 1, 1, 1.0])
    assert pca_similarity(x, swapped) < 0.5  # first component moved to another axis


def test_diagnostics_on_tiny_model(tiny_llama, tiny_llama_path, tmp_path):
    from asru.core.models import load_model

    recs = text_qa(n=4)
    pooled, last = hidden_states(tiny_llama, recs, batch_size=3)
    assert len(pooled) == 4 and pooled[0].shape == (4, 64) and last[0].shape == (4, 64)
    same = run_diagnostics(tiny_llama, load_model(str(tiny_llama_path)), recs, tmp_path, batch_size=2)
    assert same["cka"] == pytest.approx([1.0] * 4, abs=1e-6)
    assert same["pca_similarity"] == pytest.approx([1.0] * 4, abs=1e-6)
    assert same["pca_shift"] == pytest.approx([0.0] * 4, abs=1e-5)
    assert same["fisher_ref_mean_log10"] == pytest.approx(same["fisher_upd_mean_log10"])
    for name in ("pca_similarity.png", "pca_shift.png", "cka.png", "fisher.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert all(p.requires_grad for p in tiny_llama.model.parameters())  # Fisher restores requires_grad
