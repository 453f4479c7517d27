"""Benchmark files with bytes that are not UTF-8: a one-line error naming file and line."""

import pytest

from asru.core.errors import AsruError
from asru.data.loaders import load_benchmark
from asru.data.synthetic import generate_benchmark


@pytest.fixture
def bench(tmp_path):
    out = tmp_path / "bench"
    generate_benchmark(out, people=3, forget_ratio=0.3, seed=1)
    return out


def test_non_utf8_byte_names_file_line_and_fix(bench):
    path = bench / "forget.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"?", b"\xff?", 1)
    path.write_bytes(b"".join(lines))
    with pytest.raises(AsruError, match=r"forget.jsonl:2: not UTF-8 text \(byte 0xff at column \d+\): save the file as UTF-8"):
        load_benchmark(bench, ["forget"])
