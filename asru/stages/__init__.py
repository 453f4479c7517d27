"""The pipeline stages: steer, rl, baselines and export (eval lives in :mod:`asru.eval`)."""
