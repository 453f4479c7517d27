"""Evaluation: task metrics, generation quality, privacy (MIA), robustness, diagnostics and reports.

Entry point: :func:`asru.eval.runner.evaluate`. Text matching comes from :mod:`rewards.text` only, and
prompts / generation / scoring from :mod:`asru.core.prompting` only, so evaluation measures exactly what the
rewards optimise and what the model was taught.
"""
