"""The reward interface: TRL's reward-function signature and helpers every reward uses.

A reward is any callable

    reward(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]

called by TRL's ``GRPOTrainer`` with keyword arguments. ``prompts`` and ``completions`` have one
entry per sampled completion (a prompt is repeated once per completion of its group), and every
dataset column arrives in ``kwargs`` as a list of the same length: ``role`` (``"forget"`` /
``"retain"``), ``answer`` (ground truth), and where present ``question``, ``image`` ...; TRL also
passes ``trainer_state``. Return one float per completion, or ``None`` where the reward does not
apply (e.g. a forget reward on a retain row). Completions are strings or conversational message
lists; :func:`completion_text` turns either into text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from asru.core.errors import AsruError

RewardFn = Callable[..., list]

__all__ = ["RewardFn", "column", "completion_text", "group_keys", "roles"]


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                out.append(str(part.get("text") or ""))
        return "".join(out)
    raise TypeError(f"unsupported message content of type {type(content).__name__}")


def _message_text(msg: dict) -> str:
    """Text of one message; a separate reasoning field is put back as a ``<think>`` span."""
    text = _content_text(msg.get("content"))
    reasoning = msg.get("reasoning_content") or msg.get("reasoning") or msg.get("thinking")
    if isinstance(reasoning, str) and reasoning:
        text = f"<think>{reasoning}</think>{text}"
    return text


def completion_text(completion: Any) -> str:
    """The text of one completion in any format TRL produces.

    * ``str``: returned as is;
    * a message dict ``{"role": "assistant", "content": ...}``;
    * a list of messages (conversational format): the non-system/user messages' texts joined by
      newlines (normally a single assistant message);
    * message ``content`` may be a string or a list of parts ``[{"type": "text", "text": ...}, ...]``
      (non-text parts are skipped); a ``reasoning_content``/``thinking`` field becomes a
      ``<think>...</think>`` prefix.
    ``None`` gives ``""``; anything else raises ``TypeError``.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _message_text(completion)
    if isinstance(completion, Sequence):
        texts = [
            _message_text(m) if isinstance(m, dict) else completion_text(m)
            for m in completion
            if not (isinstance(m, dict) and m.get("role") in ("system", "user"))
        ]
        return "\n".join(t for t in texts if t)
    raise TypeError(f"unsupported completion of type {type(completion).__name__}")


def column(kwargs: dict, name: str, n: int, reward: str, *fallbacks: str) -> list:
    """The dataset column ``name`` (or the first present fallback) as a list of length ``n``.

    Raises AsruError naming the reward and the missing column, or a length mismatch.
    """
    for key in (name, *fallbacks):
        values = kwargs.get(key)
        if values is not None:
            values = list(values) if not isinstance(values, str) else [values] * n
            if len(values) != n:
                raise AsruError(f"reward {reward!r}: column {key!r} has {len(values)} values for {n} completions")
            return values
    alts = "".join(f" (or {f!r})" for f in fallbacks)
    raise AsruError(
        f"reward {reward!r} needs a dataset column {name!r}{alts}: add it to the training dataset "
        f"and keep remove_unused_columns=False"
    )


def roles(kwargs: dict, n: int, reward: str) -> list[str]:
    """The per-completion role (``forget``/``retain``/...), lowercased; ``split`` is a fallback column."""
    return [str(r).strip().lower() if r is not None else "" for r in column(kwargs, "role", n, reward, "split")]


def _fingerprint(x: Any, memo: dict[int, Any]) -> Any:
    """A hashable, content-based stand-in for a prompt, message list or image.

    Strings and numbers stand for themselves; lists and dicts recurse; a PIL-like image becomes
    (mode, size, hash of a 16x16 thumbnail), so the same picture decoded twice (a dataset returns a
    fresh image object per row) gets the same key; anything else falls back to ``repr``.
    """
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    if id(x) in memo:
        return memo[id(x)]
    if isinstance(x, dict):
        out = tuple(sorted((str(k), _fingerprint(v, memo)) for k, v in x.items()))
    elif isinstance(x, (list, tuple)):
        out = tuple(_fingerprint(v, memo) for v in x)
    elif hasattr(x, "tobytes") and hasattr(x, "size") and hasattr(x, "mode") and hasattr(x, "resize"):
        thumb = x.resize((16, 16)).tobytes()
        out = ("image", x.mode, tuple(x.size), hashlib.sha1(thumb).hexdigest())
    else:
        out = repr(x)
    memo[id(x)] = out
    return out


def group_keys(prompts: Sequence, kwargs: dict) -> list[tuple]:
    """One key per completion so completions of the same prompt (and image) share a key.

    The key is (prompt, image, answer) by content: the same prompt text asked about different
    images ("Who is the person in this image?") lands in different groups, and the same image
    decoded into separate objects for each of the group's rows lands in the same one.
    """
    n = len(prompts)
    memo: dict[int, Any] = {}

    def col(name: str) -> list:
        values = kwargs.get(name)
        return list(values) if isinstance(values, (list, tuple)) and len(values) == n else [None] * n

    images = col("image") if kwargs.get("image") is not None else col("images")
    answers = col("answer")
    return [(_fingerprint(p, memo), _fingerprint(i, memo), _fingerprint(a, memo)) for p, i, a in zip(prompts, images, answers)]
