"""load_benchmark on our JSONL format: splits, and every kind of bad input with its message."""

import json
import shutil

import pytest

from asru.core.errors import AsruError
from asru.data.loaders import available_splits, detect_format, load_benchmark
from asru.data.synthetic import generate_benchmark


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "bench"
    generate_benchmark(out, people=3, forget_ratio=0.3, seed=1)
    return out


@pytest.fixture
def bench(small, tmp_path):
    dst = tmp_path / "bench"
    shutil.copytree(small, dst)
    return dst


def test_loads_all_splits_in_order(small):
    data = load_benchmark(small, ["real", "forget", "retain", "test", "teach"])
    assert list(data) == ["real", "forget", "retain", "test", "teach"]
    assert {k: len(v) for k, v in data.items()} == {"real": 260, "forget": 21, "retain": 42, "test": 33, "teach": 3 * 50 + 3 * 12}
    assert detect_format(small) == "jsonl"
    assert available_splits(small) == ("forget", "retain", "test", "real", "teach")
    img = next(r.image for r in data["forget"] if r.image)
    assert img.startswith(str(small)) and img.endswith(".png")


def test_default_splits_and_comma_string(small):
    assert list(load_benchmark(small)) == ["forget", "retain", "test", "real"]
    assert list(load_benchmark(small, "forget, real")) == ["forget", "real"]


def test_missing_directory(tmp_path):
    with pytest.raises(AsruError, match="does not exist: make one with 'asru-data generate"):
        load_benchmark(tmp_path / "nope", ["forget"])


def test_not_a_benchmark(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(AsruError, match=r"not a benchmark directory \(found: readme.txt\)"):
        load_benchmark(tmp_path, ["forget"])


def test_unknown_split(small):
    with pytest.raises(AsruError, match="unknown split 'dev'; choose from forget, retain, test, real, teach"):
        load_benchmark(small, ["forget", "dev"])


def test_missing_split_names_existing_files(bench):
    (bench / "test.jsonl").unlink()
    with pytest.raises(AsruError) as err:
        load_benchmark(bench, ["forget", "test"])
    msg = str(err.value)
    assert "split 'test' not found (no test.jsonl; found: forget.jsonl, real.jsonl, retain.jsonl, teach.jsonl)" in msg


def test_empty_split(bench):
    (bench / "real.jsonl").write_text("\n")
    with pytest.raises(AsruError, match="real.jsonl: split 'real' is empty"):
        load_benchmark(bench, ["real"])


def test_malformed_line_names_file_and_line(bench):
    path = bench / "forget.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]  # cut the closing of the JSON object
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AsruError, match=r"forget.jsonl:3: malformed record"):
        load_benchmark(bench, ["forget"])


def test_invalid_record_names_file_and_line(bench):
    path = bench / "retain.jsonl"
    lines = path.read_text().splitlines()
    obj = json.loads(lines[4])
    obj["task"] = "essay"
    lines[4] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AsruError, match=r"retain.jsonl:5: malformed record: unknown task 'essay'"):
        load_benchmark(bench, ["retain"])


def test_missing_image(bench):
    (bench / "images" / "p000_test1.png").unlink()
    with pytest.raises(AsruError, match=r"test.jsonl:\d+: image .*p000_test1.png is missing or unreadable"):
        load_benchmark(bench, ["test"])
    # without the image check the records still load
    assert len(load_benchmark(bench, ["test"], check_images=False)["test"]) == 33


def test_unreadable_image(bench):
    (bench / "images" / "p001_base.png").write_bytes(b"not a png")
    with pytest.raises(AsruError, match="p001_base.png is missing or unreadable"):
        load_benchmark(bench, ["forget", "retain"])


def test_record_in_the_wrong_file(bench):
    path = bench / "forget.jsonl"
    obj = json.loads(path.read_text().splitlines()[0])
    obj["split"] = "retain"
    path.write_text(path.read_text() + json.dumps(obj) + "\n")
    with pytest.raises(AsruError, match="says split 'retain' but is in forget.jsonl"):
        load_benchmark(bench, ["forget"])


def test_duplicate_ids(bench):
    path = bench / "real.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(path.read_text() + first + "\n")
    with pytest.raises(AsruError, match="holds the id 'real-000-generation' twice"):
        load_benchmark(bench, ["real"])
