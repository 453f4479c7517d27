"""What a baseline loss sees: the LoRA model, the processor wrapper, batches of its data and its settings."""

from __future__ import annotations

from asru.data.schema import Record
from asru.stages.baselines.common import BatchCycler, encode_batch, nll, qa_pairs

# Refusal answers of the IDK baseline: varied and natural; {subject} is "this person" or the name.
IDK_TEMPLATES = (
    "I'm sorry, but I don't know anything about {subject}.",
    "I don't have any information about {subject}, so I can't answer that.",
    "I'm not sure. I can't identify {subject}.",
    "I don't know the answer to that question about {subject}.",
    "Sorry, I have no reliable information about {subject}.",
    "I'm unable to answer that; I don't recognize {subject}.",
    "I can't provide details about {subject}, I'm afraid.",
    "I'm not familiar with {subject}, so I don't know.",
)


def idk_answer(rec: Record, k: int) -> str:
    """The k-th IDK refusal for a record (rotating templates; the subject is the name in text questions)."""
    subject = "this person" if rec.modality == "image" or not rec.person else rec.person
    return IDK_TEMPLATES[k % len(IDK_TEMPLATES)].format(subject=subject)


class BaselineContext:
    """What a baseline loss needs: the LoRA model, the processor wrapper, data iterators and the config."""

    def __init__(self, lm, model, forget: list[Record], retain: list[Record], cfg):
        self.lm, self.model, self.cfg = lm, model, cfg
        self.forget = BatchCycler(qa_pairs(forget), cfg.batch_size, cfg.seed)
        self.retain = BatchCycler(qa_pairs(retain), cfg.batch_size, cfg.seed + 1) if retain else None
        idk_items = [(r.question, idk_answer(r, i), r.image) for i, r in enumerate(forget)]
        self.idk = BatchCycler(idk_items, cfg.batch_size, cfg.seed + 2)
        # (question, refusal, true answer, image): preference pairs, the refusal preferred (image last, as the cycler groups by it)
        self.preference = BatchCycler([(q, a, r.answer, im) for (q, a, im), r in zip(idk_items, forget)], cfg.batch_size, cfg.seed + 3)
        self.state: dict = {}  # what a loss keeps between its steps (e.g. RMU's random target)

    def retain_nll(self):
        """``w * NLL`` of the next retain batch (0 without retain data or weight)."""
        if self.retain is None or self.cfg.retain_weight == 0:
            return 0.0
        enc, labels = encode_batch(self.lm, next(self.retain))
        return self.cfg.retain_weight * nll(self.model, enc, labels)
