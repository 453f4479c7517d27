"""Faulty reward plugins: an exception, a wrong number of values, NaN or inf is one line naming the
reward, the GRPO step and the value; checkpoints saved before the fault stay usable for resuming."""

import json
from types import SimpleNamespace

import pytest

from asru.core.errors import AsruError
from rewards import load_rewards

PLUGIN = '''
from pathlib import Path

MODE = Path(__file__).with_suffix(".mode")


def flaky(prompts, completions, completion_ids=None, trainer_state=None, **kwargs):
    """Fine until GRPO step ``fail_at`` (from the .mode file), then the fault named there."""
    kind, _, fail_at = MODE.read_text().partition(" ")
    step = trainer_state.global_step + 1 if trainer_state is not None else 1
    n = len(completions)
    if kind == "ok" or step < int(fail_at):
        return [sum(i % 2 for i in ids) / max(1, len(ids)) for ids in completion_ids] if completion_ids else [0.5] * n
    if kind == "raise":
        raise KeyError("answer_key")
    if kind == "short":
        return [0.5] * (n - 1)
    if kind == "nan":
        return [0.5] * (n - 1) + [float("nan")]
    if kind == "inf":
        return [float("inf")] + [0.5] * (n - 1)
    if kind == "text":
        return ["high"] * n
    return None
'''


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "flaky_reward.py"
    path.write_text(PLUGIN)
    return path


def _call(fn, n=4, step=6, role="forget"):
    return fn(prompts=["p"] * n, completions=["c"] * n, completion_ids=[[1, 2]] * n,
              trainer_state=SimpleNamespace(global_step=step), role=[role] * n, answer=["Town1"] * n)


@pytest.mark.parametrize(("kind", "message"), [
    ("raise", r"reward 'flaky' raised KeyError: 'answer_key' at GRPO step 7: fix the reward; --resume continues"),
    ("short", r"reward 'flaky' returned 3 values for 4 completions at GRPO step 7: return one value per completion"),
    ("nan", r"reward 'flaky' returned nan for completion 3 at GRPO step 7: rewards must be finite numbers"),
    ("inf", r"reward 'flaky' returned inf for completion 0 at GRPO step 7: rewards must be finite numbers"),
    ("text", r"reward 'flaky' returned 'high' \(a str\) for completion 0 at GRPO step 7"),
    ("none", r"reward 'flaky' returned NoneType None at GRPO step 7: return a list of 4 floats"),
])
def test_faulty_reward_is_one_line_naming_reward_step_and_value(plugin, kind, message):
    plugin.with_suffix(".mode").write_text(f"{kind} 1")
    funcs, _ = load_rewards({f"{plugin}:flaky": 1.0})
    with pytest.raises(AsruError, match=message) as err:
        _call(funcs[0])
    assert "\n" not in str(err.value)


def test_checked_reward_keeps_name_values_and_none(plugin):
    plugin.with_suffix(".mode").write_text("ok 1")
    funcs, _ = load_rewards({"forget": 1.0, f"{plugin}:flaky": 1.0})
    assert [f.__name__ for f in funcs] == ["forget", "flaky"]
    assert _call(funcs[1]) == [0.5] * 4
    assert _call(funcs[0], n=2, role="retain") == [None, None]  # "does not apply" stays None


def test_builtin_reward_errors_get_the_step(plugin):
    funcs, _ = load_rewards({"forget": 1.0})
    with pytest.raises(AsruError, match=r"reward 'forget' needs a dataset column 'role'.* \(at GRPO step 3\)"):
        funcs[0](prompts=["p"], completions=["c"], completion_ids=[[1]], trainer_state=SimpleNamespace(global_step=2))


def test_nan_reward_in_grpo_stops_with_one_line_and_resume_continues(plugin, tiny_llama_path, red_image, tmp_path):
    from asru.stages.rl.stage import run_rl_stage
    from tests.rl_fixtures import rl_config, small_benchmark

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    cfg = rl_config(tmp_path, max_steps=3, save_steps=1, rewards={"forget": 1.0, f"{plugin}:flaky": 1.0})
    out_dir = tmp_path / "rl"
    plugin.with_suffix(".mode").write_text("nan 3")
    with pytest.raises(AsruError, match=r"reward 'flaky' returned nan for completion \d+ at GRPO step 3"):
        run_rl_stage(cfg, str(tiny_llama_path), data, out_dir, None)
    assert sorted(p.name for p in (out_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert not (out_dir / "model").exists()

    plugin.with_suffix(".mode").write_text("ok 1")  # the reward is fixed: the same run resumes
    run_rl_stage(cfg, str(tiny_llama_path), data, out_dir, None)
    summary = json.loads((out_dir / "rl_summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-2" and summary["global_step"] == 3
