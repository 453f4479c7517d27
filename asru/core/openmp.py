"""How idle OpenMP threads wait on a CPU run; must be decided before torch is imported.

Measured on the 2-core CPU default (README, "OpenMP wait policy"): with libgomp's default a worker that
finds no work sleeps after a short spin; ``OMP_WAIT_POLICY=PASSIVE`` sleeps at once, which costs a wake-up
per operator: the demo VLM generated 52 tokens/s that way and 88 with ``GOMP_SPINCOUNT=1000``, and a
teaching step took 1.9 s instead of 1.55. Spinning hurts when other busy processes share the cores (37
instead of 52 tokens/s next to one busy process), so a user who runs jobs side by side sets
``OMP_WAIT_POLICY=PASSIVE`` (the test suite does).
"""

from __future__ import annotations

import os
import sys

SPINCOUNT = "1000"


def set_wait_policy() -> None:
    """Let idle OpenMP threads spin briefly (``GOMP_SPINCOUNT``) unless the user chose a wait policy.

    A no-op once torch is imported (its OpenMP runtime has read the environment by then) or when
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
