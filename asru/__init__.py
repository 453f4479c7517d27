"""asru: make (multimodal) language models forget chosen knowledge with activation steering + GRPO."""

__version__ = "0.1.0"
