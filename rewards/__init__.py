"""Reward functions for GRPO unlearning: one interface (TRL's), a registry, and plugin loading.

    from rewards import load_reward, load_rewards, list_rewards, register_reward
    funcs, weights = load_rewards({"forget": 1.0, "retain": 1.0, "my_rewards.py:brevity": 0.5})

See :mod:`rewards.interface` for the signature, :mod:`rewards.registry` for discovery and
factories, and :mod:`rewards.text` for the text matching shared with evaluation.
"""

from rewards.interface import RewardFn, column, completion_text, roles
from rewards.registry import (
    ENTRY_POINT_GROUP,
    is_factory,
    list_rewards,
    load_reward,
    load_rewards,
    register_reward,
    resolve_reward,
    reward_factory,
    validate_reward,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "RewardFn",
    "column",
    "completion_text",
    "is_factory",
    "list_rewards",
    "load_reward",
    "load_rewards",
    "register_reward",
    "resolve_reward",
    "reward_factory",
    "roles",
    "validate_reward",
]
