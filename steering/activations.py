"""Batched collection of decoder-layer activations at chosen token positions.

One forward pass per batch (not per sample) with forward hooks on ``decoder_layers(model)[i]`` for
every requested layer; the pass stops right after the deepest requested layer (later layers and the
LM head are never computed). Positions:

=================  ======================================================================================
``last``           the last prompt token (the last token of the generation prompt)
``post_instruction``  mean over the tokens after the user's text: the chat template's end-of-turn and
                   assistant-header tokens (``<|im_end|>\\n<|im_start|>assistant\\n`` in ChatML)
``mean``           mean over all (non-padding) prompt tokens, image tokens included
``all``            every non-padding prompt token (a ``[T_i, H]`` tensor per prompt)
=================  ======================================================================================

Padding never leaks in: positions come from the attention mask, so left and right padding give the
same activations (up to float rounding). Activations are accumulated in float32 on the CPU, cloned out
of the hook (Qwen3-VL's DeepStack edits hidden states between layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from asru.core.errors import AsruError
from asru.core.layers import check_layer, decoder_layers, layer_output
from asru.core.prompting import encode_prompts, encode_workers, modality_batches, prefetch, prompt_text

POSITIONS = ("last", "post_instruction", "mean", "all")


class _StopForward(Exception):
    """Raised by the deepest hook to skip the rest of the forward pass."""


@dataclass
class Activations:
    """Activations per layer: ``pooled[layer]`` is ``[N, H]`` (or a list of ``[T_i, H]`` for ``all``)."""

    position: str
    layers: list[int]
    pooled: dict[int, object] = field(default_factory=dict)
    n_tokens: int = 0

    def matrix(self, layer: int):
        """``[N, H]`` for pooled positions; all tokens stacked ``[sum T_i, H]`` for ``all``."""
        import torch

        val = self.pooled[layer]
        return torch.cat(list(val), 0) if isinstance(val, list) else val


def post_instruction_length(lm, question: str, with_image: bool, system: str | None = None,
                            with_question: bool = False) -> int:
    """Number of template tokens after the user's text in the prompt of ``question``.

    Found by locating the question in the templated prompt and tokenising what follows it (the
    end-of-turn and assistant-header tokens). At least 1 (the last token). ``with_question``: count
    the question's own tokens too (everything from the question's first token to the prompt's end).
    """
    text = prompt_text(lm, question, with_image, system=system)
    idx = text.rfind(question)
    if idx < 0:
        return 1
    suffix = text[idx:] if with_question else text[idx + len(question) :]
    if not suffix:
        return 1
    ids = lm.tokenizer(suffix, add_special_tokens=False)["input_ids"]
    return max(1, len(ids))


def position_mask(attention_mask, position: str, post_lengths: Sequence[int] | None = None):
    """A ``[B, T]`` float weight matrix selecting ``position`` from each row's real (non-pad) tokens.

    Rows sum to 1 for pooled positions (``last``, ``post_instruction``, ``mean``); for ``all`` the
    mask is the attention mask itself. Works for left and right padding.
    """
    import torch

    mask = attention_mask.to(torch.float32)
    if position in ("mean", "all"):
        w = mask
    else:
        # rank of each real token counted from the end of its row: 1 = last real token
        from_end = torch.flip(torch.cumsum(torch.flip(mask, [1]), 1), [1]) * mask
        if position == "last":
            w = (from_end == 1).to(torch.float32)
        elif position == "post_instruction":
            if post_lengths is None:
                raise ValueError("post_instruction positions need the post-instruction lengths")
            k = torch.as_tensor(list(post_lengths), dtype=torch.float32, device=mask.device).unsqueeze(1)
            w = ((from_end >= 1) & (from_end <= k)).to(torch.float32)
        else:
            raise AsruError(f"unknown activation position {position!r}: use one of {', '.join(POSITIONS)}")
    if position == "all":
        return w
    return w / w.sum(1, keepdim=True).clamp(min=1)


def collect_activations(
    lm,
    questions: Sequence[str],
    images: Sequence | None = None,
    *,
    layers: Sequence[int],
    position: str = "last",
    batch_size: int = 8,
    padding_side: str = "left",
    system: str | None = None,
    model=None,
    progress: bool = False,
    desc: str = "activations",
) -> Activations:
    """Activations of ``questions`` (chat template applied) at ``layers`` and ``position``, batched.

    ``images`` (paths/PIL/None per question) may mix image and text questions: they are batched
    separately. ``model`` runs another model sharing ``lm``'s processor (e.g. the original model).
    Results are in input order, float32, on the CPU.
    """
    import torch
    from tqdm.auto import tqdm

    if position not in POSITIONS:
        raise AsruError(f"unknown activation position {position!r}: use one of {', '.join(POSITIONS)}")
    if not questions:
        raise AsruError("no prompts to collect activations from")
    if batch_size < 1:
        raise AsruError("batch size must be >= 1")
    model = model if model is not None else lm.model
    layers = sorted({check_layer(model, int(i)) for i in layers})
    n = len(questions)
    images = list(images) if images is not None else [None] * n
    store: dict[int, list] = {i: [None] * n for i in layers}
    state: dict = {}
    blocks = decoder_layers(model)
    deepest = layers[-1]

    def make_hook(i):
        def hook(_module, _inputs, output):
            h = layer_output(output).detach()
            w = state["weights"].to(h.device)
            if position == "all":
                for row, j in enumerate(state["idx"]):
                    store[i][j] = h[row][w[row] > 0].to(torch.float32).cpu().clone()
            else:
                pooled = torch.einsum("bt,bth->bh", w, h.to(torch.float32)).cpu()
                for row, j in enumerate(state["idx"]):
                    store[i][j] = pooled[row].clone()
            if i == deepest:
                raise _StopForward

        return hook

    handles = [blocks[i].register_forward_hook(make_hook(i)) for i in layers]
    lengths = [len(q) for q in questions]
    batches = list(modality_batches(images, n, batch_size, lengths))
    n_tokens = 0
    def encode(idx):
        qs = [questions[j] for j in idx]
        ims = [images[j] for j in idx]
        enc = encode_prompts(lm, qs, ims, padding_side=padding_side, system=system)
        post = None
        if position == "post_instruction":
            post = [post_instruction_length(lm, q, im is not None, system) for q, im in zip(qs, ims)]
        return idx, enc, post

    try:
        encoded = prefetch(encode, batches, encode_workers(lm))
        for idx, enc, post in tqdm(encoded, total=len(batches), desc=desc, disable=not progress, leave=False):
            state["idx"] = idx
            state["weights"] = position_mask(enc["attention_mask"], position, post)
            n_tokens += int(enc["attention_mask"].sum())
            try:
                with torch.no_grad():
                    model(**enc, use_cache=False)
            except _StopForward:
                pass
    finally:
        for h in handles:
            h.remove()
    acts = Activations(position=position, layers=layers, n_tokens=n_tokens)
    for i in layers:
        acts.pooled[i] = store[i] if position == "all" else torch.stack(store[i], 0)
    return acts
