"""Helpers for the steering tests (tiny models come from tests/conftest.py)."""

QUESTIONS = [
    "Where was the person born?",
    "What is the occupation of this person, and which company do they work for?",
    "Name?",
    "Which hobby does this person enjoy most in their free time?",
]


def logits(lm, questions, images=None, padding_side="left"):
    """Full logits of a prompt batch (no grad)."""
    import torch

    from asru.core.prompting import encode_prompts

    enc = encode_prompts(lm, questions, images, padding_side=padding_side)
    with torch.no_grad():
        return lm.model(**enc).logits.float(), enc["attention_mask"]


def random_direction(lm, seed=0, scale=1.0):
    """A random direction of the model's hidden size."""
    import torch

    from asru.core.layers import hidden_size

    g = torch.Generator().manual_seed(seed)
    return torch.randn(hidden_size(lm.model), generator=g) * scale
