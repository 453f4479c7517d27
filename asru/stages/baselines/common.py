"""Shared pieces of the fine-tuning baselines and the relearning attack: LoRA on the language model,
modality-homogeneous QA batches, per-sequence answer log-probabilities, a small training loop."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence

from asru.core.errors import AsruError
from asru.core.lora import lora_config
from asru.core.prompting import encode_with_answers
from asru.data.schema import Record

LOG = logging.getLogger("asru.baselines")


def add_lora(model, r: int, seed: int = 0):
    """Wrap ``model`` with fresh LoRA adapters (alpha = r, no dropout) on every decoder-layer linear layer."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, lora_config(r, "decoder_linears", model=model))


def qa_pairs(records: Sequence[Record]) -> list[tuple[str, str, str | None]]:
    """``(question, answer, image)`` training pairs: generation / cloze as is, classification as plain QA."""
    return [(r.question, r.answer, r.image) for r in records]


class BatchCycler:
    """Endless modality-homogeneous batches over ``(question, answer, image)`` items (or any tuples whose last
    element is the image), reshuffled each epoch."""

    def __init__(self, items: Sequence[tuple[str, str, str | None]], batch_size: int, seed: int = 0):
        if not items:
            raise AsruError("no training examples: the split is empty")
        self.items = list(items)
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self._queue: list[list[int]] = []

    def _refill(self) -> None:
        order = list(range(len(self.items)))
        self.rng.shuffle(order)
        batches = []
        for with_image in (True, False):
            group = [i for i in order if (self.items[i][-1] is not None) == with_image]
            batches += [group[k : k + self.batch_size] for k in range(0, len(group), self.batch_size)]
        self.rng.shuffle(batches)
        self._queue = batches

    def __iter__(self) -> Iterator[list[tuple[str, str, str | None]]]:
        return self

    def __next__(self) -> list[tuple[str, str, str | None]]:
        if not self._queue:
            self._refill()
        return [self.items[i] for i in self._queue.pop()]


def encode_batch(lm, batch: Sequence[tuple[str, str, str | None]]):
    """``(inputs, labels)`` for a batch of ``(question, answer, image)`` via :func:`asru.core.prompting.encode_with_answers`."""
    qs, ans, ims = zip(*batch)
    return encode_with_answers(lm, list(qs), list(ans), list(ims))


def sequence_logprobs(model, enc, labels):
    """Per-sequence ``(sum of answer-token log-probs, answer-token count)`` and the per-token log-softmax."""
    import torch

    logits = model(**enc).logits[:, :-1].float()
    tgt = labels[:, 1:]
    mask = tgt != -100
    logsm = torch.log_softmax(logits, -1)
    logp = logsm.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return logp.sum(1), mask.sum(1), logsm, mask


def nll(model, enc, labels):
    """Mean negative log-likelihood over all answer tokens of the batch."""
    s, n, _, _ = sequence_logprobs(model, enc, labels)
    return -s.sum() / n.sum().clamp(min=1)


def train_loop(model, steps: int, lr: float, loss_fn: Callable[[int], object], max_grad_norm: float = 1.0,
               desc: str = "training", progress: bool = False, trains: Callable[[str], bool] | None = None) -> list[float]:
    """AdamW with linear decay on the trainable parameters (those whose name ``trains`` accepts, when given)
    for ``steps`` steps; returns the losses."""
    import torch
    from tqdm.auto import tqdm

    params = [p for name, p in model.named_parameters() if p.requires_grad and (trains is None or trains(name))]
    if not params:
        raise AsruError("nothing to train: the model has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    model.train()
    losses = []
    try:
        for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if not torch.isfinite(loss.detach()):
                LOG.warning("%s: loss is not finite at step %d; stopping early", desc, step)
                break
    finally:
        model.eval()
    return losses
