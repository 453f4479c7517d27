"""The base model's own answers to general questions (greedy, cached on disk): the teaching regulariser's targets."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from asru.core import prompting
from asru.core.models import cache_dir, model_identity
from asru.core.rundir import atomic_write_json

LOG = logging.getLogger("asru.data.teach")


def trim_answer(text: str) -> str:
    """The first sentence of an answer (short regulariser targets keep teaching steps cheap).

    A (possibly length-truncated) answer without a sentence end is kept whole.
    """
    import re

    text = (text or "").strip()
    text = text.split("\n")[0].strip()
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        if len(text[: m.end()].split()) >= 3:
            return text[: m.end()]
    return text


def cached_base_answers(lm, base_path: Path, questions: list[str], max_new_tokens: int, progress: bool = False) -> dict[str, str]:
    """Greedy answers of the base model to ``questions`` (text only), computed once and cached on disk.

    The same ``max_new_tokens`` as the evaluation, so the base model's ``real`` accuracy compares fairly.
    ``progress`` shows a bar while they are generated (minutes on a CPU).
    """
    qs = list(dict.fromkeys(questions))
    n_tokens = max_new_tokens
    key = hashlib.sha256(json.dumps({"model": model_identity(base_path), "q": qs, "n": n_tokens,
                                     "template": getattr(lm.processor, "chat_template", None)}).encode()).hexdigest()
    path = cache_dir() / "teach" / f"base-answers-{key[:16]}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if set(qs) <= set(cached):
                return cached
        except (OSError, json.JSONDecodeError):
            pass
    LOG.info("generating the base model's answers to %d general questions (cached in %s)", len(qs), path)
    answers = prompting.generate(lm, qs, max_new_tokens=n_tokens, batch_size=16, progress=progress, desc="base answers")
    out = dict(zip(qs, answers))
    atomic_write_json(path, out)
    return out

