"""String choices declared once as Literal types: the check, the message and the CLI choices come from it."""

import typing

import pytest

from asru.config import SteerConfig, build_config
from asru.core.errors import AsruError
from asru.core.options import check_choice, choices_metavar, literal_choices, spell_choices

Position = typing.Literal["last", "post_instruction", "mean", "all"]


def test_choices_and_their_spelling():
    assert literal_choices(Position) == ("last", "post_instruction", "mean", "all")
    assert literal_choices(Position | None) == ("last", "post_instruction", "mean", "all")
    assert literal_choices(str) is None
    assert spell_choices(Position) == "last, post_instruction, mean or all"
    assert spell_choices(Position | None) == "last, post_instruction, mean, all or null"
    assert choices_metavar(Position) == "{last,post_instruction,mean,all}" and choices_metavar(int) is None


def test_check_choice():
    check_choice("mean", Position, "steer.position")
    check_choice(None, Position | None, "eval.dtype")
    with pytest.raises(AsruError, match=r"^steer.position must be last, post_instruction, mean or all, not 'foo'$"):
        check_choice("foo", Position, "steer.position")
    with pytest.raises(AsruError, match="must be last, post_instruction, mean or all, not None"):
        check_choice(None, Position, "steer.position")


def test_config_checks_come_from_the_field_types():
    with pytest.raises(AsruError, match=r"^steer.position must be last, post_instruction, mean or all, not 'foo'$"):
        build_config({"steer": {"position": "foo"}})
    with pytest.raises(AsruError, match=r"^rl.dtype must be auto, float32, bfloat16, float16 or null, not 'fp8'$"):
        build_config({"rl": {"dtype": "fp8"}})
    with pytest.raises(AsruError, match=r"^steer.mode must be redirect, add, ablate or gated, not 'x'$"):
        SteerConfig(mode="x")
    assert build_config({"steer": {"position": "mean"}, "eval": {"dtype": "null"}}).steer.position == "mean"


def test_cli_help_lists_the_choices():
    import argparse

    from asru.cli import add_config_options

    parser = argparse.ArgumentParser()
    add_config_options(parser, ["steer", "rl"])
    text = parser.format_help()
    assert "--steer.position {last,post_instruction,mean,all}" in text
    assert "--rl.loss_type {dapo,grpo,bnpo,dr_grpo}" in text
    assert "--rl.dtype {auto,float32,bfloat16,float16}" in text
