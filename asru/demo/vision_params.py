"""Which parameters of the demo VLM belong to its vision side (shared by the teaching loop and the alignment)."""

from __future__ import annotations


def is_vision_param(name: str) -> bool:
    """True for a parameter of the vision tower or the multimodal projector."""
    return any(k in name for k in ("vision_tower", "multi_modal_projector", "visual", "vision_model", "connector"))
