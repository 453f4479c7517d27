"""Bad input to a run: refused in one line before anything is created, and nothing the user had is changed.

``--resume`` on a folder without a run, layers named on the command line, what ``--dry-run`` reads, and
the directories a failed run leaves behind."""

import json

import pytest

from asru import cli
from asru.core.created_dirs import removed_on_early_failure
from asru.core.errors import AsruError


@pytest.fixture()
def bench(tmp_path):
    from asru.data.synthetic import generate_benchmark

    out = tmp_path / "bench"
    generate_benchmark(out, people=3, forget_ratio=0.3, seed=1, image_size=32)
    return out


def _one_line_error(capsys, text):
    err = capsys.readouterr().err
    assert text in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def _tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --resume on a folder that holds no run ------------------------------------------------------------
def test_resume_on_a_folder_without_a_run_leaves_it_untouched(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: own settings\n")
    (mine / "notes.txt").write_text("keep me")
    before = _tree(mine)
    assert cli.train_main(["--output-dir", str(mine), "--resume"]) == 2
    _one_line_error(capsys, f"--resume: {mine} holds no asru run")
    assert _tree(mine) == before
    assert cli.train_main(["--output-dir", str(mine), "--resume", "--dry-run"]) == 2
    _one_line_error(capsys, "holds no asru run")


def test_resume_accepts_a_run_folder_and_an_empty_one(tmp_path):
    from asru.core.rundir import holds_run, prepare_run_dir

    run = tmp_path / "run"
    (run / "steer").mkdir(parents=True)
    (run / "config.yaml").write_text("x: 1\n")
    (run / "steer" / "stage.json").write_text("{}")
    assert holds_run(run) and prepare_run_dir(run, resume=True) == run
    assert prepare_run_dir(tmp_path / "new", resume=True).is_dir()


# layers named on the command line ------------------------------------------------------------------
def test_cli_layer_wins_over_the_presets_layers():
    args = cli.train_parser().parse_args(["--layer", "7"])
    assert cli.config_from_args(args, cli._shortcuts(args)).steer.fixed_layers == [7]
    args = cli.train_parser().parse_args(["--steer.layer", "-1"])
    assert cli.config_from_args(args, cli._shortcuts(args)).steer.fixed_layers == [-1]
    args = cli.train_parser().parse_args(["--steer.layers", "15,23"])  # a list of layers
    assert cli.config_from_args(args, cli._shortcuts(args)).steer.fixed_layers == [15, 23]
    args = cli.train_parser().parse_args([])  # no layer given: the preset searches for its own
    cfg = cli.config_from_args(args, cli._shortcuts(args))
    assert cfg.steer.fixed_layers == [] and cfg.steer.search


@pytest.mark.parametrize("argv, message", [
    (["--layer", "999"], "steer.layer: layer 999 is out of range: demo has 30 decoder layers (use 0..29, or -30..-1 to count from the end)"),
    (["--layer", "-31"], "layer -31 is out of range: demo has 30 decoder layers"),
    (["--steer.candidate_layers", "2,30"], "steer.candidate_layers: layer 30 is out of range"),
])
def test_out_of_range_layers_are_refused_before_the_run_starts(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert cli.train_main([*argv, "--output-dir", str(run)]) == 2
    _one_line_error(capsys, message)
    assert not run.exists()


def test_negative_layer_counts_from_the_end_in_the_plan(capsys):
    assert cli.train_main(["--layer", "-1", "--dry-run"]) == 0
    assert "steering layer -1 (= 29)" in capsys.readouterr().out


# --dry-run reads what the run will read ------------------------------------------------------------
def _edit_line(path, i, fn):
    lines = path.read_text().splitlines()
    lines[i] = fn(lines[i])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("breakage, message", [
    (lambda b: _edit_line(b / "retain.jsonl", 1, lambda s: s[:-3]), "retain.jsonl:2: malformed record"),
    (lambda b: (b / "test.jsonl").write_text("\n"), "test.jsonl: split 'test' is empty"),
    (lambda b: (b / "forget.jsonl").write_bytes((b / "forget.jsonl").read_bytes().replace(b"?", b"\xff?", 1)),
     "forget.jsonl:1: not UTF-8 text"),
    (lambda b: next((b / "images").glob("*.png")).unlink(), "is missing or unreadable"),
    (lambda b: (b / "real.jsonl").unlink(), "split 'real' not found"),
])
def test_dry_run_reads_the_data(bench, capsys, breakage, message):
    breakage(bench)
    assert cli.train_main(["--data", str(bench), "--dry-run"]) == 2
    _one_line_error(capsys, message)


def test_dry_run_refuses_image_only_data_for_a_text_model(bench, tiny_llama_path, capsys):
    forget = bench / "forget.jsonl"
    forget.write_text("".join(line + "\n" for line in forget.read_text().splitlines() if json.loads(line)["image"]))
    assert cli.train_main(["--model", str(tiny_llama_path), "--data", str(bench), "--dry-run"]) == 2
    _one_line_error(capsys, "every forget question has an image but")


def test_dry_run_notes_what_it_could_not_check(bench, tiny_llama_path, capsys):
    assert cli.train_main(["--model", str(tiny_llama_path), "--data", str(bench), "--dry-run"]) == 2
    _one_line_error(capsys, "every test question has an image but")  # evaluation would stop there
    assert cli.train_main(["--model", str(tiny_llama_path), "--data", str(bench), "--eval.splits", "forget,retain", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "layers     4;" in out
    assert "unchecked  data:" in out and "have images; the text model skips them" in out
    assert "unchecked  reward fluency: a factory" in out
    assert cli.train_main(["--model", "someone/not-here", "--data", str(bench), "--eval.splits", "forget", "--dry-run"]) == 0
    assert "unchecked  layers and modality of someone/not-here: its config is not on this machine" in capsys.readouterr().out


def test_dry_run_checks_reward_signatures(tmp_path, capsys):
    plugin = tmp_path / "r.py"
    plugin.write_text("def two_args(prompts, completions):\n    return [0.0] * len(completions)\n")
    assert cli.train_main(["--rl.rewards", f"{plugin}:two_args=1", "--dry-run"]) == 2
    _one_line_error(capsys, "it must accept prompts, completions and **kwargs")


def test_dry_run_checks_the_output_dir_can_be_written(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    assert cli.train_main(["--output-dir", str(tmp_path / "a-file" / "run"), "--dry-run"]) == 2
    _one_line_error(capsys, "no write access to")


# a failed run leaves nothing behind ----------------------------------------------------------------
def test_unknown_model_leaves_no_run_dir(tmp_path, capsys):
    run = tmp_path / "run1"
    assert cli.train_main(["--model", "nosuch", "--output-dir", str(run)]) == 2
    _one_line_error(capsys, "unknown model 'nosuch'")
    assert not run.exists()


def test_unknown_split_leaves_no_eval_dir(tmp_path, tiny_llama_path, bench, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.eval_main(["--model", str(tiny_llama_path), "--data", str(bench), "--splits", "forget,bogus"]) == 2
    _one_line_error(capsys, "unknown split 'bogus'")
    assert not (tmp_path / "runs").exists()


def test_early_failure_removes_only_what_it_created(tmp_path):
    new = tmp_path / "runs" / "r1"
    with pytest.raises(AsruError), removed_on_early_failure(new):
        new.mkdir(parents=True)
        (new / "config.yaml").write_text("x")
        (new / "run.log").write_text("x")
        raise AsruError("bad")
    assert not (tmp_path / "runs").exists()

    mine = tmp_path / "mine"  # the user's folder: kept, with what the run wrote into it
    mine.mkdir()
    with pytest.raises(AsruError), removed_on_early_failure(mine):
        (mine / "run.log").write_text("x")
        raise AsruError("bad")
    assert (mine / "run.log").is_file()

    started = tmp_path / "started"  # a stage had started: kept for --resume
    with pytest.raises(KeyboardInterrupt), removed_on_early_failure(started):
        (started / "steer").mkdir(parents=True)
        (started / "run.log").write_text("x")
        raise KeyboardInterrupt
    assert (started / "steer").is_dir()
