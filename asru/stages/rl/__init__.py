"""The rl stage: GRPO refinement of the refusal boundary (stage, boundary set, trainer)."""
