"""The one way to turn questions (with or without an image) into model inputs, and to generate.

Prompts always go through the model's chat template with the generation prompt, so teaching,
steering, RL and evaluation see the same token sequences. Generation and scoring batch image and text
questions separately, sorted by length (:func:`modality_batches`); :func:`encode_with_answers` also takes
a vision-language model's mixed batch (the teaching loss uses one forward for both).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence

from asru.core.errors import AsruError

# ChatML with Qwen-VL image placeholders, no default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ image_token }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chatml_template(image_token: str = "<|vision_start|><|image_pad|><|vision_end|>") -> str:
    """The ChatML chat template with ``image_token`` standing for each image content part."""
    return "{% set image_token = '" + image_token + "' %}" + CHATML_TEMPLATE


ImageLike = "str | Path | PIL.Image.Image | None"


def load_image(image):
    """Open an image path as RGB PIL (a PIL image passes through); missing/unreadable -> AsruError."""
    if image is None:
        return None
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        with Image.open(image) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise AsruError(f"cannot read image {image}: {exc.__class__.__name__}; check the path in the data file") from None


def chat_messages(question: str, with_image: bool, is_vlm: bool, answer: str | None = None, system: str | None = None) -> list[dict]:
    """Chat messages for one question (VLM content parts when ``is_vlm``), optionally with the answer turn."""
    if with_image and not is_vlm:
        raise AsruError("an image question was given to a text-only model: use a VLM or text-only data")
    msgs = []
    if system:
        msgs.append({"role": "system", "content": [{"type": "text", "text": system}] if is_vlm else system})
    if is_vlm:
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question}]
    else:
        content = question
    msgs.append({"role": "user", "content": content})
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}] if is_vlm else answer})
    return msgs


def prompt_text(lm, question: str, with_image: bool, answer: str | None = None, system: str | None = None) -> str:
    """The chat-templated prompt string (with the generation prompt, or with the answer turn closed)."""
    msgs = chat_messages(question, with_image, lm.is_vlm, answer=answer, system=system)
    return lm.processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=answer is None)


def _tokenize(lm, texts: list[str], images: list | None, padding_side: str):
    # padding_side goes in the call: the tokenizer object's own attribute is never flipped and restored
    if lm.is_vlm:
        kwargs = {"images": images} if images else {}
        return lm.processor(text=texts, padding=True, padding_side=padding_side, return_tensors="pt", **kwargs)
    return lm.tokenizer(texts, padding=True, padding_side=padding_side, return_tensors="pt", add_special_tokens=False)


def encode_workers(lm) -> int:
    """Background encoding threads for ``lm``: none on the CPU (the forward already uses every core; measured
    15% slower with one thread on 2 cores), up to 4 when an accelerator runs the forward."""
    if str(getattr(lm, "device", "cpu")).startswith("cpu"):
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def prefetch(fn: Callable, items: Iterable, workers: int = 1, ahead: int = 2):
    """Yield ``fn(item)`` for each item, in order; with ``workers`` > 0, computed by background threads ``ahead`` items early.

    Prompt encoding (image decoding/resizing, tokenising) then runs on the CPU while the accelerator works
    on the previous batch (see :func:`encode_workers`); ``workers=0`` computes each item when it is asked for.
    Hugging Face fast tokenizers keep their padding settings on the shared backend, so every item must be
    encoded with the same settings (one padding side), as the callers here do.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 0:
        for item in items:
            yield fn(item)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asru-encode") as pool:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers + ahead - 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def encode_prompts(lm, questions: Sequence[str], images: Sequence | None = None, padding_side: str = "left", system: str | None = None):
    """Tokenise one modality-homogeneous batch of prompts (generation prompt added) onto the model's device."""
    images = list(images) if images is not None else [None] * len(questions)
    with_image = [im is not None for im in images]
    if any(with_image) and not all(with_image):
        raise ValueError("encode_prompts needs a batch of only image or only text questions")
    texts = [prompt_text(lm, q, w, system=system) for q, w in zip(questions, with_image)]
    pil = [load_image(im) for im in images] if any(with_image) else None
    return _tokenize(lm, texts, pil, padding_side).to(lm.device)


def encode_with_answers(lm, questions: Sequence[str], answers: Sequence[str], images: Sequence | None = None, system: str | None = None):
    """Tokenise prompt+answer pairs (right padded) and return ``(batch, labels)``.

    ``labels`` are -100 on prompt and padding tokens, so a causal-LM loss covers only the answer turn.
    A vision-language model's batch may mix image and text questions (``None`` images): the processor
    gets the images of the image questions in order, and the model places their features at those
    rows' image tokens.
    """
    import torch

    images = list(images) if images is not None else [None] * len(questions)
    with_image = [im is not None for im in images]
    if any(with_image) and not all(with_image) and not lm.is_vlm:
        raise ValueError("encode_with_answers: a text-only model cannot take image questions")
    pil = [load_image(im) for im in images if im is not None] or None
    prompts = [prompt_text(lm, q, w, system=system) for q, w in zip(questions, with_image)]
    fulls = [prompt_text(lm, q, w, answer=a, system=system) for q, w, a in zip(questions, with_image, answers)]
    for p, f in zip(prompts, fulls):
        if not f.startswith(p):
            raise AsruError("the chat template does not extend the prompt with the answer turn; cannot mask the prompt")
    enc = _tokenize(lm, fulls, pil, "right")
    prompt_lens = _tokenize(lm, prompts, pil, "right")["attention_mask"].sum(1)
    labels = enc["input_ids"].clone()
    positions = torch.arange(labels.shape[1]).unsqueeze(0)
    labels[positions < prompt_lens.unsqueeze(1)] = -100
    labels[enc["attention_mask"] == 0] = -100
    return enc.to(lm.device), labels.to(lm.device)


def modality_batches(images: Sequence | None, n: int, batch_size: int, lengths: Sequence[int] | None = None):
    """Yield index lists: image and text items batched separately, longest first within each group."""
    images = list(images) if images is not None else [None] * n
    for group in ([i for i in range(n) if images[i] is not None], [i for i in range(n) if images[i] is None]):
        if lengths is not None:
            group = sorted(group, key=lambda i: -lengths[i])
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


def generate(
    lm,
    questions: Sequence[str],
    images: Sequence | None = None,
    *,
    max_new_tokens: int = 48,
    batch_size: int = 16,
    do_sample: bool = False,
    system: str | None = None,
    progress: bool = False,
    desc: str = "generating",
    **gen_kwargs,
) -> list[str]:
    """Generate answers for questions (greedy by default), batched; returns texts in input order."""
    import torch
    from tqdm.auto import tqdm

    n = len(questions)
    images = list(images) if images is not None else [None] * n
    lengths = [len(q) for q in questions]
    out: list[str | None] = [None] * n
    batches = list(modality_batches(images, n, batch_size, lengths))
    model = lm.model
    pad_id = lm.tokenizer.pad_token_id
    def encode(idx):
        return idx, encode_prompts(lm, [questions[i] for i in idx], [images[i] for i in idx], system=system)

    for idx, enc in tqdm(prefetch(encode, batches, encode_workers(lm)), total=len(batches), desc=desc, disable=not progress, leave=False):
        with torch.no_grad():
            seqs = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=pad_id, **gen_kwargs
            )
        new = seqs[:, enc["input_ids"].shape[1] :]
        for i, text in zip(idx, lm.tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text.strip()
    return out  # type: ignore[return-value]


def logits_window(model, keep: int) -> dict:
    """``{"logits_to_keep": keep}`` when the model's forward takes it (transformers' causal LMs and VLMs), else ``{}``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"logits_to_keep": int(keep)} if _takes_logits_to_keep(type(base)) else {}


@functools.cache
def _takes_logits_to_keep(cls) -> bool:
    # looked up once per model class: scoring loops ask for every batch
    import inspect

    try:
        params = inspect.signature(getattr(cls, "forward", cls.__call__)).parameters
    except (TypeError, ValueError):
        return False
    return "logits_to_keep" in params


def _answer_token_scores(lm, questions, answers, images, batch_size, model, system):
    """Yield ``(indices, logp, mask)`` per batch: each answer token's log-probability given its prefix."""
    import torch

    n = len(questions)
    images = list(images) if images is not None else [None] * n
    scorer = model if model is not None else lm.model

    def encode(idx):
        return idx, *encode_with_answers(lm, [questions[i] for i in idx], [answers[i] for i in idx], [images[i] for i in idx], system=system)

    for idx, enc, labels in prefetch(encode, list(modality_batches(images, n, batch_size)), encode_workers(lm)):
        # Only the positions that predict answer tokens need logits (the LM head and the log-softmax over the
        # vocabulary dominate the cost of scoring otherwise): the window from the earliest answer start on.
        scored = (labels != -100).any(0).nonzero()
        first = int(scored[0]) if len(scored) else labels.shape[1] - 1
        keep = labels.shape[1] - first + 1
        with torch.no_grad():
            logits = scorer(**enc, **logits_window(scorer, keep)).logits[:, -keep:-1].float()
        tgt = labels[:, labels.shape[1] - keep + 1 :]
        mask = tgt != -100
        logp = torch.log_softmax(logits, -1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        yield idx, logp, mask


def answer_logprobs(
    lm,
    questions: Sequence[str],
    answers: Sequence[str],
    images: Sequence | None = None,
    *,
    batch_size: int = 16,
    model=None,
    system: str | None = None,
) -> list[tuple[float, int]]:
    """Sum of log-probabilities of each answer given its prompt, and its token count, in input order.

    ``model`` scores with another model that shares the processor (e.g. the reference model).
    """
    out: list[tuple[float, int] | None] = [None] * len(questions)
    for idx, logp, mask in _answer_token_scores(lm, questions, answers, images, batch_size, model, system):
        sums = (logp * mask).sum(1)
        for j, i in enumerate(idx):
            out[i] = (float(sums[j]), int(mask[j].sum()))
    return out  # type: ignore[return-value]


def answer_token_logprobs(
    lm,
    questions: Sequence[str],
    answers: Sequence[str],
    images: Sequence | None = None,
    *,
    batch_size: int = 16,
    model=None,
    system: str | None = None,
) -> list[list[float]]:
    """Each answer token's log-probability given its prompt and the answer so far, per answer in input order
    (their sum is :func:`answer_logprobs`'s)."""
    out: list[list[float] | None] = [None] * len(questions)
    for idx, logp, mask in _answer_token_scores(lm, questions, answers, images, batch_size, model, system):
        for j, i in enumerate(idx):
            out[i] = [float(x) for x in logp[j][mask[j]]]
    return out  # type: ignore[return-value]
