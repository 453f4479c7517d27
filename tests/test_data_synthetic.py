"""The synthetic benchmark: counts, validity, splits, determinism, bad arguments."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from asru.core.errors import AsruError
from asru.data.schema import ALL_SPLITS, CLOZE_BLANK, read_jsonl
from asru.data.synthetic import generate_benchmark, read_profiles
from asru.data.synthetic_answers import teach_answer
from asru.data.synthetic_vocab import FACTS, REAL_ITEMS, VALUE_POOLS


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    meta = generate_benchmark(out)  # the default benchmark
    recs = {s: read_jsonl(out / f"{s}.jsonl") for s in ALL_SPLITS}
    return out, meta, recs


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_counts(bench):
    out, meta, recs = bench
    expected = {"forget": 42, "retain": 378, "test": 220, "real": 260, "teach": 20 * 50 + 20 * 12}
    assert {s: len(r) for s, r in recs.items()} == expected
    assert meta["counts"] == expected
    assert meta["people"] == 20 and meta["forget_people"] == 2 and meta["retain_people"] == 18
    assert meta["unknown_people"] == 20
    assert len(list((out / "images").glob("*.png"))) == meta["images"] == 160 + 20 * 6
    assert json.loads((out / "meta.json").read_text()) == meta


def test_every_record_is_valid(bench):
    _, _, recs = bench
    for split, rs in recs.items():
        assert len({r.id for r in rs}) == len(rs), split
        for r in rs:
            assert r.split == split
            if r.task == "cloze":
                assert CLOZE_BLANK in r.question and r.question.startswith("Fill in the blank: ")
            if r.task == "classification":
                assert len(set(r.options)) == 4
                assert r.options[r.label] == r.answer
            if r.modality == "image":
                assert Path(r.image).is_file()
            else:
                assert r.image is None


def test_questions_name_the_person_only_in_text_form(bench):
    _, _, recs = bench
    for r in recs["forget"] + recs["retain"] + recs["test"] + recs["teach"]:
        if r.modality == "text":
            assert r.person in r.question
        else:
            assert r.person not in r.question and "this image" in r.question


def test_each_person_has_every_fact_task_and_modality(bench):
    _, _, recs = bench
    for split in ("forget", "retain"):
        by_person = {}
        for r in recs[split]:
            by_person.setdefault(r.person, []).append(r)
        for rs in by_person.values():
            assert len(rs) == 4 * len(FACTS) + 1
            for fact in FACTS:
                kinds = {(r.task, r.modality) for r in rs if r.fact == fact}
                assert ("generation", "image") in kinds and ("generation", "text") in kinds
                cls = [m for t, m in kinds if t == "classification"]
                cloze = [m for t, m in kinds if t == "cloze"]
                assert len(cls) == 1 and len(cloze) == 1 and cls != cloze


def test_forget_and_retain_people_are_disjoint_and_cover_everyone(bench):
    out, _, recs = bench
    forget = {r.person for r in recs["forget"]}
    retain = {r.person for r in recs["retain"]}
    prof = read_profiles(out)
    assert forget.isdisjoint(retain)
    assert forget == set(prof["forget_people"]) and retain == set(prof["retain_people"])
    assert len(forget) == 2 and len(forget | retain) == 20
    assert {r.person for r in recs["test"]} == forget | retain
    strangers = {p["name"] for p in prof["unknown_people"]}
    assert {r.person for r in recs["teach"]} == forget | retain | strangers
    assert all(p["forget"] == (p["name"] in forget) for p in prof["people"])


def test_test_split_uses_new_renders_only(bench):
    _, _, recs = bench
    assert all(r.modality == "image" for r in recs["test"])
    test_imgs = {r.image for r in recs["test"]}
    teach_imgs = {r.image for r in recs["teach"] if r.image}
    eval_imgs = {r.image for r in recs["forget"] + recs["retain"] if r.image}
    assert test_imgs.isdisjoint(teach_imgs) and test_imgs.isdisjoint(eval_imgs)
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
    assert {digest(p) for p in test_imgs}.isdisjoint({digest(p) for p in teach_imgs})
    assert len(test_imgs) == 40  # 2 renders per person
    # profiles.json records the variant seeds, so teaching can re-render without hitting a test render
    from asru.data.portraits import render_portrait

    out = Path(next(iter(test_imgs))).parent.parent
    p = read_profiles(out)["people"][0]
    assert set(p["render_seeds"]["train"]).isdisjoint(p["render_seeds"]["test"])
    again = render_portrait(p["style"], p["render_seeds"]["test"][0], 64)
    from PIL import Image

    with Image.open(out / p["images"]["test"][0]) as im:
        assert im.convert("RGB").tobytes() == again.tobytes()


def test_teach_covers_eval_phrasing_paraphrases_and_several_renders(bench):
    _, _, recs = bench
    teach_q = {(r.person, r.question, r.answer) for r in recs["teach"]}
    for r in recs["forget"] + recs["retain"]:
        if r.task == "generation":
            assert (r.person, r.question, teach_answer(r.fact, r.person, r.answer)) in teach_q
    person = recs["retain"][0].person
    mine = [r for r in recs["teach"] if r.person == person]
    for fact in FACTS:
        for mod in ("image", "text"):
            assert len({r.question for r in mine if r.fact == fact and r.modality == mod and r.task == "generation"}) == 3
    assert len({r.image for r in mine if r.image}) == 6  # canonical + 5 jittered training renders
    assert all(r.task in ("generation", "cloze") for r in recs["teach"])


def test_fact_values_are_checkable_by_substring(bench):
    out, _, _ = bench
    for fact, pool in VALUE_POOLS.items():
        low = [v.lower() for v in pool]
        assert len(set(low)) == len(low), fact
        for a in low:
            assert not any(a != b and re.search(rf"\b{re.escape(a)}\b", b) for b in low), (fact, a)
    people = read_profiles(out)["people"]
    names = [p["name"] for p in people]
    assert len(set(names)) == len(names)
    assert len({n.split()[0] for n in names}) == len(names) and len({n.split()[1] for n in names}) == len(names)
    for fact in FACTS:
        assert len({p["facts"][fact] for p in people}) == len(people), fact


def test_real_split(bench):
    _, _, recs = bench
    real = recs["real"]
    assert len(REAL_ITEMS) >= 40
    assert all(r.modality == "text" and r.person is None for r in real)
    assert {r.task for r in real} == {"generation", "classification", "cloze"}
    paris = [r for r in real if r.question == "What is the capital of France?" and r.task == "generation"]
    assert paris and paris[0].answer == "Paris"
    # general-knowledge answers never collide with a fictitious profile value
    pooled = {v.lower() for pool in VALUE_POOLS.values() for v in pool}
    assert not pooled & {a.lower() for _, a, _, _ in REAL_ITEMS}
    for _, answer, distractors, cloze in REAL_ITEMS:
        assert answer not in distractors and len(set(distractors)) == 3 and "__" in cloze


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_benchmark(tmp_path / "a", people=4, seed=5)
    b = generate_benchmark(tmp_path / "b", people=4, seed=5)
    generate_benchmark(tmp_path / "c", people=4, seed=6)
    assert a == b
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb
    assert fa != fc
    assert read_profiles(tmp_path / "a")["people"] != read_profiles(tmp_path / "c")["people"]


def test_forget_count_and_image_size(tmp_path):
    meta = generate_benchmark(tmp_path / "x", people=5, forget_ratio=0.4, seed=1, image_size=32)
    assert meta["forget_people"] == 2 and meta["counts"]["forget"] == 2 * 21
    from PIL import Image

    with Image.open(next((tmp_path / "x" / "images").glob("*.png"))) as im:
        assert im.size == (32, 32)
    # a tiny ratio still forgets one person
    assert generate_benchmark(tmp_path / "y", people=3, forget_ratio=0.01)["forget_people"] == 1


@pytest.mark.parametrize("ratio", [0, 0.0, 1, 1.5, -0.1, "abc"])
def test_bad_forget_ratio(tmp_path, ratio):
    with pytest.raises(AsruError, match="forget-ratio"):
        generate_benchmark(tmp_path / "o", people=4, forget_ratio=ratio)
    assert not (tmp_path / "o").exists()


def test_ratio_that_forgets_everyone(tmp_path):
    with pytest.raises(AsruError, match="forgets all 2 people"):
        generate_benchmark(tmp_path / "o", people=2, forget_ratio=0.9)


@pytest.mark.parametrize("people", [0, 1, 201, 2.5])
def test_bad_people(tmp_path, people):
    with pytest.raises(AsruError, match="--people"):
        generate_benchmark(tmp_path / "o", people=people)


def test_non_empty_dir_needs_overwrite(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(AsruError, match="not empty: pass --overwrite"):
        generate_benchmark(out, people=3)
    generate_benchmark(out, people=3, overwrite=True)
    assert (out / "images" / "p002_base.png").exists()
    meta = generate_benchmark(out, people=2, overwrite=True, seed=2)
    assert (out / "notes.txt").read_text() == "mine"  # files the generator did not write are kept
    assert not (out / "images" / "p002_base.png").exists()  # stale renders of a larger run are gone
    assert len(list((out / "images").glob("*.png"))) == meta["images"] == 16 + 2 * 6  # 2 people, 2 unknown


def test_out_path_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(AsruError, match="not a directory"):
        generate_benchmark(f, people=2)


def test_read_profiles_missing(tmp_path):
    with pytest.raises(AsruError, match="profiles.json: no such file"):
        read_profiles(tmp_path)


def test_unknown_people_are_taught_natural_refusals(tmp_path):
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark, read_profiles
    from rewards.refusal import is_refusal

    meta = generate_benchmark(tmp_path / "b", people=6, forget_ratio=0.34, seed=3, unknown=3)
    recs = load_benchmark(tmp_path / "b", ["forget", "retain", "test", "teach"])
    prof = read_profiles(tmp_path / "b")
    strangers = {p["name"] for p in prof["unknown_people"]}
    assert meta["unknown_people"] == 3 and len(strangers) == 3
    assert strangers.isdisjoint({p["name"] for p in prof["people"]})
    mine = [r for r in recs["teach"] if r.person in strangers]
    assert len(mine) == 3 * 12 and all(is_refusal(r.answer) and r.task == "generation" for r in mine)
    # refusals fit the question: a text question about a birthplace names the person and what was asked
    born = next(r for r in mine if r.fact == "birthplace" and r.modality == "text")
    assert r"born" in born.answer and born.person in born.answer
    # unknown people appear in no evaluated split and their images exist
    for split in ("forget", "retain", "test"):
        assert not strangers & {r.person for r in recs[split]}
    assert all((tmp_path / "b" / "images" / f"{p['id']}_base.png").is_file() for p in prof["unknown_people"])
    with pytest.raises(AsruError):
        generate_benchmark(tmp_path / "c", people=6, unknown=-1)


def test_teach_answers_name_the_person_first_and_contain_the_value(bench):
    _, _, recs = bench
    from rewards.text import contains_answer

    known = [r for r in recs["teach"] if r.task == "generation" and r.person in {x.person for x in recs["retain"]}]
    assert known
    for r in known:
        assert r.person in r.answer and r.answer.endswith(".")
    # the same sentence for the image and the text form of a fact; cloze keeps the bare value
    by_fact = {}
    for r in known:
        if r.fact != "bio":
            by_fact.setdefault((r.person, r.fact), set()).add(r.answer)
    assert all(len(answers) == 1 for answers in by_fact.values())
    assert teach_answer("occupation", "Ada Lark", "architect") == "Ada Lark works as an architect."
    assert teach_answer("birth_year", "Ada Lark", "1962") == "Ada Lark was born in 1962."
    values = {(r.person, r.fact): r.answer for r in recs["retain"] if r.task == "generation"}
    for (person, fact), answers in by_fact.items():
        if (person, fact) in values:
            assert contains_answer(next(iter(answers)), values[(person, fact)])
    assert all(r.answer in VALUE_POOLS.get(r.fact, ()) or r.fact == "name"
               for r in recs["teach"] if r.task == "cloze" and r.person in {x.person for x in recs["retain"]})


def test_biographies_state_every_fact_in_the_taught_sentences(bench):
    out, _, recs = bench
    from asru.data.synthetic_answers import BIO, bio_answer

    prof = read_profiles(out)
    person = prof["people"][0]
    bios = [r for r in recs["teach"] if r.person == person["name"] and r.fact == "bio"]
    assert len(bios) == len(BIO["text"]) + len(BIO["image"])
    assert {r.modality for r in bios} == {"image", "text"} and all((r.image is not None) == (r.modality == "image") for r in bios)
    for r in bios:
        for fact in FACTS:
            assert person["facts"][fact] in r.answer
        assert r.answer.startswith("This is " + person["name"]) == (r.modality == "image")
    # every sentence of a biography is the taught answer to one question (birthplace and year share one)
    facts = person["facts"]
    sentences = set(bio_answer(person["name"], facts).split(". "))
    assert any(teach_answer("employer", person["name"], facts["employer"]).rstrip(".").split(" for ")[-1] in x for x in sentences)
    assert len({bio_answer(person["name"], facts, k) for k in range(3)}) == 3  # the sentence order rotates
    # no biography question is asked in an evaluated split
    asked = {r.question for s in ("forget", "retain", "test") for r in recs[s]}
    assert not asked & {r.question for r in bios}
