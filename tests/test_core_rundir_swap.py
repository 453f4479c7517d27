"""The one directory swap: a finished temp directory replaces the target; a failed one leaves it alone."""

import pytest

from asru.core.rundir import directory_swap, replace_directory


def test_replace_directory_replaces_an_older_target(tmp_path):
    target, tmp = tmp_path / "out", tmp_path / "new"
    target.mkdir()
    (target / "old.txt").write_text("old")
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    assert replace_directory(tmp, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


def test_replace_directory_creates_the_parent(tmp_path):
    tmp = tmp_path / "new"
    tmp.mkdir()
    replace_directory(tmp, tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not tmp.exists()


def test_swap_puts_the_block_result_in_place(tmp_path):
    target = tmp_path / "out"
    stale = tmp_path / "out.tmp"
    stale.mkdir()
    (stale / "half.txt").write_text("x")
    with directory_swap(target, tmp=stale) as tmp:
        assert tmp == stale and list(tmp.iterdir()) == []  # the stale partial directory was removed
        (tmp / "f.txt").write_text("done")
    assert (target / "f.txt").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_leaves_the_target_alone_on_an_error(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), directory_swap(target) as tmp:
        assert tmp.name.startswith(".out.tmp-")
        (tmp / "f.txt").write_text("half")
        raise RuntimeError("build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "keep.txt").read_text() == "old"


def test_swap_without_create_lets_the_writer_make_the_directory(tmp_path):
    with directory_swap(tmp_path / "out", create=False) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
        (tmp / "f.txt").write_text("x")
    assert (tmp_path / "out" / "f.txt").is_file()
