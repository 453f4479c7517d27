"""A copied run directory exports its own model, never the original run's (absolute paths in stage.json)."""

import shutil

import pytest

from asru import cli
from asru.core.errors import AsruError
from asru.stages.export.run import final_stage_model
from tests.export_fixtures import finish_stage, write_run_dir


def test_copied_run_uses_its_own_model_and_refuses_a_missing_one(tmp_path, tiny_llama_path, capsys):
    run = write_run_dir(tmp_path / "run", stages=("steer",), method="steer_only")
    shutil.copytree(tiny_llama_path, run / "steer" / "model")
    finish_stage(run, "steer", (run / "steer" / "model").absolute())
    assert final_stage_model(run) == ("steer", (run / "steer" / "model").absolute())

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    assert final_stage_model(copy) == ("steer", copy / "steer" / "model")

    shutil.rmtree(copy / "steer" / "model")
    with pytest.raises(AsruError, match=r"run .*copy has no steer model of its own .* points at .*run/steer/model in another run"):
        final_stage_model(copy)
    assert cli.export_main(["--run", str(copy), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "has no steer model of its own" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
