"""Console entry points: help, dry run and one-line user errors with exit code 2."""

import pytest

from asru import cli


def test_train_help_explains_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.train_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--steer.coeff", "--rl.num_generations", "--eval.splits", "--dry-run", "--overwrite", "--method"):
        assert opt in out
    assert "Redirection target scale c" in out


def test_dry_run_qwen3_vl(capsys):
    assert cli.train_main(["--model", "qwen3-vl", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Qwen/Qwen3-VL-2B-Instruct" in out and "layers     28" in out and "steering layer 17" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "qwen9", "--dry-run"], "unknown model 'qwen9'"),
    (["--model", "qwen3-vl", "--layer", "40", "--dry-run"], "layer 40 is out of range: qwen3-vl has 28 decoder layers"),
    (["--model", "qwen3-vl", "--steer.layers", "3,40", "--dry-run"], "layer 40 is out of range: qwen3-vl has 28 decoder layers"),
    (["--steer.position", "middle", "--dry-run"], "steer.position must be"),
    (["--rl.rewards", "nosuchreward=1", "--dry-run"], "nosuchreward"),
    (["--config", "/nonexistent.yaml", "--dry-run"], "does not exist"),
])
def test_user_errors_are_one_line(capsys, argv, message):
    assert cli.train_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_yaml_key(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("steer:\n  colour: red\n")
    assert cli.train_main(["--config", str(f), "--dry-run"]) == 2
    assert "unknown config key(s) steer.colour" in capsys.readouterr().err


def test_non_empty_output_dir_refused(tmp_path, capsys):
    (tmp_path / "x").write_text("1")
    assert cli.train_main(["--output-dir", str(tmp_path), "--dry-run"]) == 2
    assert "not empty: pass --overwrite" in capsys.readouterr().err


def test_preset_applies_only_without_config():
    assert cli.preset_for("demo").endswith("default.yaml")
    assert cli.preset_for("qwen3-vl").endswith("qwen3-vl/base.yaml")
    assert cli.preset_for("someone/model") is None
