"""CLEAR loader on fixture parquet files written in the dataset's schema."""

import pytest
from data_fixtures import write_clear, write_config

from asru.core.errors import AsruError
from asru.data.loaders import available_splits, detect_format, load_benchmark


@pytest.fixture
def snap(tmp_path):
    return write_clear(tmp_path / "CLEAR")


def test_detect_and_available(snap):
    assert detect_format(snap) == "clear"
    assert available_splits(snap) == ("forget", "retain", "real", "teach")


def test_forget_has_image_and_tofu_text_questions(snap, tmp_path):
    forget = load_benchmark(snap, ["forget"], cache_dir=tmp_path / "c")["forget"]
    img = [r for r in forget if r.modality == "image"]
    txt = [r for r in forget if r.modality == "text"]
    # 2 images x (caption, name generation, name cloze); one person only, so no name classification
    assert len(img) == 6 and {r.task for r in img} == {"generation", "cloze"}
    assert all(r.person == "Hsiao Yun-Hwa" for r in img)
    names = [r for r in img if r.fact == "name" and r.task == "generation"]
    assert names and all(r.answer == "Hsiao Yun-Hwa" for r in names)
    caption = next(r for r in img if r.fact == "caption")
    assert caption.answer.startswith("Hsiao Yun-Hwa stands")
    assert [r.answer for r in txt] == ["He is a civil engineer.", "Taipei, Taiwan."]


def test_retain_gets_name_classification(snap, tmp_path):
    retain = load_benchmark(snap, ["retain"], cache_dir=tmp_path / "c")["retain"]
    cls = [r for r in retain if r.task == "classification"]
    assert len(cls) == 8 and len(retain) == 8 * 4
    for r in cls:
        assert r.options[r.label] == r.answer == r.person and len(set(r.options)) == 4


def test_real_faces_and_world(snap, tmp_path):
    real = load_benchmark(snap, ["real"], cache_dir=tmp_path / "c")["real"]
    assert len(real) == 6
    faces = [r for r in real if r.modality == "image" and r.task == "classification"]
    assert [(r.answer, r.label) for r in faces] == [("Tom Hanks", 0), ("Meryl Streep", 1)]
    world = next(r for r in real if r.modality == "text" and r.task == "classification")
    assert world.question == "What is the capital of France?" and world.options[world.label] == "Paris"


def test_forget_pct(snap, tmp_path):
    with pytest.raises(AsruError, match=r"CLEAR forget percentage 5 not available \(found: \[1\]\)"):
        load_benchmark(snap, ["forget"], forget_pct=5)


def test_no_test_split(snap):
    with pytest.raises(AsruError, match="CLEAR has no 'test' split"):
        load_benchmark(snap, ["forget", "test"])


def test_missing_retain_names_expected_folder(snap):
    import shutil

    shutil.rmtree(snap / "retain99")
    with pytest.raises(AsruError, match=r"CLEAR split 'retain' not found \(expected folder retain99/"):
        load_benchmark(snap, ["retain"])


def test_real_answer_not_in_options(snap):
    from data_fixtures import hf_image

    write_config(snap, "real_faces", [{"image": hf_image((1, 1, 1)), "answer": "Nobody",
                                       "options": ["A B", "C D", "E F", "G H"]}])
    with pytest.raises(AsruError, match="answer 'Nobody' is not among the options"):
        load_benchmark(snap, ["real"])
