"""Helpers for the RL-stage tests: a small forget/retain benchmark and a fast GRPO config."""

from __future__ import annotations

from pathlib import Path

from asru.config import build_config
from asru.data.schema import Record

# A reward plugin with variance inside every group (the share of odd token ids), so GRPO advantages
# are non-zero and LoRA weights move even on a random tiny model whose rollouts all hit the length cap.
PARITY_REWARD = '''
def odd_tokens(prompts, completions, completion_ids=None, **kwargs):
    return [sum(i % 2 for i in ids) / max(1, len(ids)) for ids in completion_ids]
'''


def rec(split: str, i: int, modality: str, image: Path | None, task: str = "generation", question: str | None = None) -> Record:
    """One question about fictitious person ``i`` (image questions point at ``image``)."""
    if question is None:
        question = "Who is the person in this image?" if modality == "image" else f"Where was Person{i} Example born?"
    return Record(
        id=f"{split}-{i}-{modality}-{task}", split=split, task=task, modality=modality, question=question,
        answer=f"Town{i}", image=str(image) if modality == "image" else None, person=f"Person{i} Example",
    )


def small_benchmark(image: Path, n_forget: int = 2, n_retain: int = 4) -> dict:
    """forget/retain splits with one image and one text generation question per person (+ a classification one)."""
    forget = [rec("forget", i, m, image) for i in range(n_forget) for m in ("image", "text")]
    retain = [rec("retain", i, m, image) for i in range(n_forget, n_forget + n_retain) for m in ("image", "text")]
    retain.append(
        Record(id="retain-cls", split="retain", task="classification", modality="text", question="Pick one",
               answer="Town9", options=("Town9", "A", "B", "C"), label=0)
    )
    return {"forget": forget, "retain": retain}


def rl_config(tmp_path: Path, **rl) -> object:
    """A RunConfig for two quick GRPO steps: 2 rollouts of <= 8 tokens, LoRA, a reward with variance."""
    plugin = tmp_path / "parity_reward.py"
    plugin.write_text(PARITY_REWARD)
    values = {
        "max_steps": 2, "num_generations": 2, "batch_size": 4, "max_completion_length": 8, "save_steps": 1,
        "lr": 5e-3, "beta": 0.1, "temperature": 1.0, "use_vllm": "false",
        "rewards": {"forget": 1.0, "retain": 1.0, "fluency": 0.5, f"{plugin}:odd_tokens": 1.0},
    }
    values.update(rl)
    return build_config({"rl": values, "model": {"device": "cpu"}})
