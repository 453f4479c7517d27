"""Verification of an export: greedy answers of the reloaded model on a few prompts."""

from __future__ import annotations

from asru.core import prompting

GENERIC_PROMPTS = ("What is the capital of France?", "Name three colours of the rainbow.")


def verification_prompts(data, n: int, is_vlm: bool) -> list[tuple[str, str, object]]:
    """Up to ``n`` forget and ``n`` retain prompts ``(split, question, image)``, image and text questions interleaved.

    Without benchmark data, a few general prompts (and one image prompt for a VLM) stand in.
    """
    out: list[tuple[str, str, object]] = []
    for split in ("forget", "retain"):
        recs = list((data or {}).get(split) or [])
        img = [r for r in recs if r.image and is_vlm]
        txt = [r for r in recs if not r.image]
        mixed = [r for pair in zip(img, txt) for r in pair] + img[len(txt):] + txt[len(img):]
        out += [(split, r.question, r.image) for r in mixed[:n]]
    if not out:
        out = [("generic", q, None) for q in GENERIC_PROMPTS]
        if is_vlm:
            from PIL import Image

            out.append(("generic", "Describe this image.", Image.new("RGB", (64, 64), (40, 120, 200))))
    return out


def greedy_answers(lm, prompts, max_new_tokens: int) -> list[str]:
    """Greedy answers to ``(split, question, image)`` prompts, in order."""
    return prompting.generate(lm, [q for _, q, _ in prompts], [im for _, _, im in prompts], max_new_tokens=max_new_tokens, batch_size=8)
