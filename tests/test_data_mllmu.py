"""MLLMU-Bench loader on fixture parquet files written in the dataset's schema."""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from data_fixtures import PEOPLE, image_bytes, mllmu_row, write_config, write_mllmu

from asru.core.errors import AsruError
from asru.data.loaders import available_splits, detect_format, load_benchmark


@pytest.fixture
def snap(tmp_path):
    return write_mllmu(tmp_path / "MLLMU-Bench")


def test_detect_and_available(snap):
    assert detect_format(snap) == "mllmu"
    assert available_splits(snap) == ("forget", "retain", "test", "real", "teach")


def test_forget_retain_mapping(snap, tmp_path):
    data = load_benchmark(snap, ["forget", "retain"], cache_dir=tmp_path / "cache")
    forget, retain = data["forget"], data["retain"]
    assert {r.person for r in forget} == {"1"}  # forget_5 is the default (smallest) percentage
    assert {r.person for r in retain} == {"2", "3", "4", "5", "6"}
    assert len(forget) == 6 and len(retain) == 30  # 2 classification + 2 generation + 2 cloze per person
    kinds = sorted((r.task, r.modality) for r in forget)
    assert kinds == sorted([(t, m) for t in ("classification", "generation", "cloze") for m in ("image", "text")])
    cls_img = next(r for r in forget if r.task == "classification" and r.modality == "image")
    assert cls_img.label == 2 and cls_img.answer == "Quito" and cls_img.options == ("Oslo", "Lima", "Quito", "Perth")
    cls_txt = next(r for r in forget if r.task == "classification" and r.modality == "text")
    assert cls_txt.label == 0 and cls_txt.options[0] == "Quito"
    cloze = [r for r in forget if r.task == "cloze"]
    assert [r.question for r in cloze] == ["Fill in the blank: This person was born in __.",
                                           "Fill in the blank: Ada Quill was born in __."]
    assert all(r.answer == "Quito" for r in cloze)
    gen_txt = next(r for r in forget if r.task == "generation" and r.modality == "text")
    assert gen_txt.question == "Where was Ada Quill born?" and gen_txt.answer == "Ada Quill was born in Quito."
    # images were written to the cache with the original bytes
    img = next(r.image for r in forget if r.image)
    assert Path(img).parent == tmp_path / "cache"
    assert Path(img).read_bytes() == image_bytes((0, 100, 100))
    assert all(r.image is None for r in forget if r.modality == "text")


def test_forget_pct_selection(snap, tmp_path):
    data = load_benchmark(snap, ["forget", "retain"], forget_pct=10, cache_dir=tmp_path / "c")
    assert {r.person for r in data["forget"]} == {"1", "2"}
    assert {r.person for r in data["retain"]} == {"3", "4", "5", "6"}
    with pytest.raises(AsruError, match=r"forget percentage 15 not available \(found: \[5, 10\]\)"):
        load_benchmark(snap, ["forget"], forget_pct=15)


def test_test_split_uses_the_new_images_in_turn(snap, tmp_path):
    test = load_benchmark(snap, ["test"], cache_dir=tmp_path / "c")["test"]
    assert len(test) == 6 * 6
    mine = [r for r in test if r.person == "3" and r.modality == "image"]
    assert len(mine) == 3 and len({r.image for r in mine}) == 2
    assert {Path(r.image).suffix for r in mine} == {".png", ".jpg"}


def test_real_and_teach(snap, tmp_path):
    data = load_benchmark(snap, ["real", "teach"], cache_dir=tmp_path / "c")
    assert {r.person for r in data["real"]} == {"c1", "c2"} and len(data["real"]) == 12
    teach = data["teach"]
    assert len(teach) == 2 * len(PEOPLE)
    assert all(r.task == "generation" and r.modality == "image" and r.image for r in teach)
    assert {(r.person, r.answer) for r in teach if "name" in r.question} == {(p, n) for p, n, _ in PEOPLE}


def test_default_cache_is_inside_the_snapshot(snap):
    data = load_benchmark(snap, ["forget"])
    assert Path(data["forget"][0].image).parent == snap / "_asru_images"
    # loading twice reuses the cache and gives the same records
    assert load_benchmark(snap, ["forget"]) == data


def test_missing_split_names_the_folder(snap):
    shutil.rmtree(snap / "Test_Set")
    with pytest.raises(AsruError, match=r"split 'test' not found \(expected folder Test_Set/"):
        load_benchmark(snap, ["test"])
    assert "test" not in available_splits(snap)


def test_bad_correct_answer_names_file_and_row(snap):
    row = mllmu_row("9", "Gil Nox", "Lima", 3)
    row["Classification_Task"]["Pure_Text_Questions"][0]["Correct_Answer"] = "E"
    path = write_config(snap, "retain_95", [mllmu_row("2", "Bo Rune", "Riga", 1), row])
    with pytest.raises(AsruError, match=rf"{path} row 1 \(ID 9\) Pure_Text_Questions\[0\]: Correct_Answer 'E'"):
        load_benchmark(snap, ["retain"])


def test_cloze_without_blank_is_an_error(snap):
    row = mllmu_row("1", "Ada Quill", "Quito", 0)
    row["Mask_Task"][1]["Question"] = "Ada Quill was born in Quito."
    write_config(snap, "forget_5", [row])
    with pytest.raises(AsruError, match=r"row 0 \(ID 1\) Mask_Task\[1\]: invalid question: cloze question must contain"):
        load_benchmark(snap, ["forget"])


def test_missing_image_is_an_error(snap):
    row = mllmu_row("1", "Ada Quill", "Quito", 0)
    row["image"] = {"bytes": None, "path": "nowhere.png"}
    write_config(snap, "forget_5", [row])
    with pytest.raises(AsruError, match="row 0: image is missing"):
        load_benchmark(snap, ["forget"])


def test_corrupt_image_bytes(snap):
    row = mllmu_row("1", "Ada Quill", "Quito", 0)
    row["image"] = {"bytes": b"garbage", "path": "x.png"}
    write_config(snap, "forget_5", [row])
    with pytest.raises(AsruError, match="image bytes are not a readable image"):
        load_benchmark(snap, ["forget"])


def test_wrong_columns(snap):
    write_config(snap, "forget_5", [{"ID": "1", "text": "hello"}])
    with pytest.raises(AsruError, match=r"missing column\(s\) \['Classification_Task'"):
        load_benchmark(snap, ["forget"])


def test_corrupt_parquet(snap):
    (snap / "forget_5" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(AsruError, match="cannot read parquet file"):
        load_benchmark(snap, ["forget"])


def test_fixture_matches_the_published_schema(snap):
    """The fixture holds the columns and nested fields of the real dataset card."""
    schema = pq.read_schema(snap / "forget_5" / "train-00000-of-00001.parquet")
    assert {"ID", "image", "biography", "question", "answer", "Classification_Task", "Generation_Task",
            "Mask_Task"} <= set(schema.names)
    cls = schema.field("Classification_Task").type
    assert {cls.field(i).name for i in range(cls.num_fields)} == {"Image_Textual_Questions", "Pure_Text_Questions"}
    gen = schema.field("Generation_Task").type.value_type
    assert {gen.field(i).name for i in range(gen.num_fields)} == {"Type", "Question", "Ground_Truth"}
