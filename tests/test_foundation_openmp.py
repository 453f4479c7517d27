"""The OpenMP wait policy the CLI sets before torch starts: a short spin unless the user chose one."""

import sys

from asru.core import openmp


def test_short_spin_unless_the_user_chose(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as if torch were not imported yet (restored after the test)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    openmp.set_wait_policy()
    assert openmp.os.environ["GOMP_SPINCOUNT"] == openmp.SPINCOUNT == "1000"

    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    openmp.set_wait_policy()
    assert "GOMP_SPINCOUNT" not in openmp.os.environ


def test_no_change_once_torch_is_imported(monkeypatch):
    import torch  # noqa: F401

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    openmp.set_wait_policy()
    assert "GOMP_SPINCOUNT" not in openmp.os.environ
