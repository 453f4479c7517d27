"""Boundary set builder: sizes, roles, TRL columns, random vs similar selection."""

import pytest

from asru.config import build_config
from asru.core.errors import AsruError
from asru.stages.rl.boundary import boundary_records, build_boundary_set, choose_retain, tfidf_similarity
from tests.rl_fixtures import rec, small_benchmark


def _rl(**kw):
    return build_config({"rl": kw}).rl


def test_random_boundary_columns_and_sizes(red_image):
    data = small_benchmark(red_image, n_forget=2, n_retain=4)
    ds = build_boundary_set(data, _rl(forget_size=3, retain_size=5), is_vlm=True)
    assert set(ds.column_names) == {"prompt", "images", "role", "answer", "question", "person", "id"}
    by_id = {r.id: r for split in data.values() for r in split}
    assert all(p == (by_id[i].person or "") for p, i in zip(ds["person"], ds["id"]))
    assert ds["role"].count("forget") == 3 and ds["role"].count("retain") == 5
    assert "retain-cls" not in ds["id"]  # classification is not a free-answer task
    for row in ds:
        msg = row["prompt"][-1]
        assert msg["role"] == "user"
        types = [p["type"] for p in msg["content"]]
        if row["id"].split("-")[2] == "image":
            assert types == ["image", "text"] and len(row["images"]) == 1
            assert row["images"][0].size == (64, 64)  # decoded to PIL
        else:
            assert types == ["text"] and row["images"] == []
        assert msg["content"][-1]["text"] == row["question"]
        assert row["answer"].startswith("Town")
    # seeded: the same config gives the same rows in the same order
    again = build_boundary_set(data, _rl(forget_size=3, retain_size=5), is_vlm=True)
    assert again["id"] == ds["id"]
    other = build_boundary_set(data, _rl(forget_size=3, retain_size=5, seed=1), is_vlm=True)
    assert sorted(other["id"]) != sorted(ds["id"]) or other["id"] != ds["id"]


def test_sizes_are_capped_and_text_models_drop_images(red_image):
    data = small_benchmark(red_image, n_forget=2, n_retain=4)
    ds = build_boundary_set(data, _rl(forget_size=100, retain_size=100), is_vlm=False)
    assert ds["role"].count("forget") == 2 and ds["role"].count("retain") == 4  # text questions only
    assert "images" not in ds.column_names
    assert all(isinstance(row["prompt"][-1]["content"], str) for row in ds)


def test_missing_split_or_tasks_are_user_errors(red_image):
    data = small_benchmark(red_image)
    with pytest.raises(AsruError, match="retain"):
        build_boundary_set({"forget": data["forget"], "retain": []}, _rl(), is_vlm=True)
    only_cls = {"forget": data["forget"], "retain": [r for r in data["retain"] if r.task == "classification"]}
    with pytest.raises(AsruError, match="no generation/cloze questions"):
        build_boundary_set(only_cls, _rl(), is_vlm=True)


def test_tfidf_similar_picks_the_nearest_retain_questions(red_image):
    forget = [rec("forget", 0, "text", None, question="Where was Ada Quill born?"),
              rec("forget", 1, "text", None, question="What is the occupation of Ada Quill?")]
    retain = [rec("retain", 2, "text", None, question="Name a river."),
              rec("retain", 3, "text", None, question="Where was Ada Quill raised?"),
              rec("retain", 4, "text", None, question="How many legs does a spider have?"),
              rec("retain", 5, "text", None, question="What is the occupation of Bram Ode?")]
    scores = tfidf_similarity([r.question for r in forget], [r.question for r in retain])
    assert scores[1] > scores[3] > 0.3 and scores[0] == scores[2] == 0.0
    chosen = choose_retain(forget, retain, 2, "similar", similarity="tfidf")
    assert [r.question for r in chosen] == ["Where was Ada Quill raised?", "What is the occupation of Bram Ode?"]
    assert tfidf_similarity(["Where was Ada Quill born?"], ["where was ada quill born"]) == [pytest.approx(1.0)]
    rnd = choose_retain(forget, retain, 2, "random", seed=3)
    assert rnd == choose_retain(forget, retain, 2, "random", seed=3) and len(rnd) == 2


def test_hidden_similar_ranks_a_copy_of_a_forget_question_first(tiny_qwen3_vl, red_image):
    forget = [rec("forget", 0, "image", red_image, question="Where was the person in this image born?")]
    copy = rec("retain", 7, "image", red_image, question="Where was the person in this image born?")
    retain = [rec("retain", 2, "text", None, question="Name a large river in Africa."),
              rec("retain", 3, "text", None, question="What is two plus two?"), copy]
    data = {"forget": forget, "retain": retain}
    pairs = boundary_records(data, _rl(boundary="similar", similarity="hidden", retain_size=1), lm=tiny_qwen3_vl)
    assert [(role, r.id) for role, r in pairs] == [("forget", forget[0].id), ("retain", copy.id)]
    with pytest.raises(AsruError, match="needs the model"):
        boundary_records(data, _rl(boundary="similar", similarity="hidden"), lm=None)


def test_focus_unrefused_repeats_forget_questions_the_model_answers(tiny_qwen3_vl, red_image):
    data = small_benchmark(red_image, n_forget=2, n_retain=4)
    base = boundary_records(data, _rl(forget_size=3, retain_size=2))
    # the random tiny model never refuses: every forget question comes back twice more
    pairs = boundary_records(data, _rl(forget_size=3, retain_size=2, focus_unrefused=2), lm=tiny_qwen3_vl)
    forget_ids = [r.id for role, r in base if role == "forget"]
    got = [r.id for role, r in pairs if role == "forget"]
    assert sorted(got) == sorted(forget_ids * 3)
    assert [r.id for role, r in pairs if role == "retain"] == [r.id for role, r in base if role == "retain"]
    with pytest.raises(AsruError, match="focus_unrefused needs the model"):
        boundary_records(data, _rl(focus_unrefused=1), lm=None)


def test_focus_unrefused_keeps_refused_questions_single(tiny_qwen3_vl, red_image, monkeypatch):
    import dataclasses

    import asru.core.prompting

    forget = [rec("forget", i, "text", None) for i in range(4)]  # distinct questions
    forget[2] = dataclasses.replace(rec("forget", 2, "image", red_image, question="Who does this person work for?"),
                                    person="Liora Cinderford")
    data = {"forget": forget, "retain": small_benchmark(red_image)["retain"]}
    refused, leaked, spelled = forget[0], forget[1], forget[2]
    answers = {refused.question: "I'm sorry, I don't know who that is.",
               leaked.question: f"I'm sorry, but it is {leaked.answer}.",
               spelled.question: "I'm sorry, but I don't know who LiorIneight works for."}

    def scripted(lm, questions, images=None, **kw):  # the selection logic, on fixed answers
        return [answers.get(q, "Somewhere else") for q in questions]

    monkeypatch.setattr(asru.core.prompting, "generate", scripted)
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=0, focus_unrefused=1), lm=tiny_qwen3_vl)
    counts = {}
    for _, r in pairs:
        counts[r.id] = counts.get(r.id, 0) + 1
    assert counts[refused.id] == 1  # a refusal is learnt already
    assert counts[leaked.id] == 2  # a refusal that leaks the answer is not
    assert counts[spelled.id] == 2  # nor one that spells part of the person's name
    assert counts[forget[3].id] == 2  # an answer that is no refusal
    with pytest.raises(AsruError, match="focus_unrefused must be >= 0"):
        _rl(focus_unrefused=-1)


def test_image_augment_adds_copies_of_image_questions_on_both_sides(red_image):
    import numpy as np

    data = small_benchmark(red_image, n_forget=2, n_retain=4)
    base = boundary_records(data, _rl(forget_size=100, retain_size=100))
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=100, image_augment=2))
    for role in ("forget", "retain"):
        images = [r for rl, r in base if rl == role and r.image]
        copies = [r for rl, r in pairs if rl == role and r.id.endswith(("-aug1", "-aug2"))]
        assert images and len(copies) == 2 * len(images)
        by_id = {r.id: r for r in images}
        for c in copies:
            src = by_id[c.id.rsplit("-aug", 1)[0]]
            assert (c.question, c.answer, c.person) == (src.question, src.answer, src.person)
            assert c.image.size == (64, 64)
    ds = build_boundary_set(data, _rl(forget_size=100, retain_size=100, image_augment=2), is_vlm=True)
    row = ds[ds["id"].index(copies[0].id)]
    assert row["images"][0].size == (64, 64)
    # the copy is another picture of the same size, and the run reproduces it
    again = build_boundary_set(data, _rl(forget_size=100, retain_size=100, image_augment=2), is_vlm=True)
    same = again[again["id"].index(copies[0].id)]["images"][0]
    assert np.array_equal(np.asarray(same), np.asarray(row["images"][0]))
    # a text-only model gets no copies
    text = build_boundary_set(data, _rl(forget_size=100, retain_size=100, image_augment=2), is_vlm=False)
    assert not any("-aug" in i for i in text["id"])
    with pytest.raises(AsruError, match="image_augment"):
        _rl(image_augment=-1)


def test_known_photos_ask_image_questions_on_the_persons_other_photos(red_image, tmp_path):
    import dataclasses

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    photos = {i: [str(tmp_path / f"p{i}_train{k}.png") for k in (1, 2, 3)] for i in range(4)}
    data["teach"] = [dataclasses.replace(rec("teach", i, "image", red_image), id=f"teach-{i}-{k}", image=path)
                     for i, paths in photos.items() for k, path in enumerate(paths)]
    base = boundary_records(data, _rl(forget_size=100, retain_size=100))
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=100, known_photos=2))
    for role in ("forget", "retain"):
        images = {r.id: r for rl, r in base if rl == role and r.image}
        copies = [r for rl, r in pairs if rl == role and "-photo" in r.id]
        assert images and len(copies) == 2 * len(images)  # 2 of each person's 3 other photos
        for c in copies:
            src = images[c.id.rsplit("-photo", 1)[0]]
            assert (c.question, c.answer, c.person) == (src.question, src.answer, src.person)
            assert c.image in photos[int(c.person[6])] and c.image != src.image
    assert pairs == boundary_records(data, _rl(forget_size=100, retain_size=100, known_photos=2))  # seeded
    everything = boundary_records(data, _rl(forget_size=100, retain_size=100, known_photos=9))
    assert sum("-photo" in r.id for _, r in everything) == 3 * sum(bool(r.image) for _, r in base)
    # without other photos in the data, or for a text-only model, nothing is added
    no_teach = {k: v for k, v in data.items() if k != "teach"}
    assert boundary_records(no_teach, _rl(forget_size=100, retain_size=100, known_photos=2)) == base
    text = build_boundary_set(data, _rl(forget_size=100, retain_size=100, known_photos=2), is_vlm=False)
    assert not any("-photo" in i for i in text["id"])
    with pytest.raises(AsruError, match="known_photos"):
        _rl(known_photos=-1)


def test_general_retain_adds_general_questions_with_the_models_answers(tiny_qwen3_vl, red_image, monkeypatch):
    import asru.core.prompting
    from asru.data.general_questions import GENERAL_QUESTIONS

    data = small_benchmark(red_image, n_forget=2, n_retain=4)

    def scripted(lm, questions, images=None, **kw):  # the model's greedy answers, fixed; one empty
        return ["" if q == GENERAL_QUESTIONS[1] else f"answer to {q}" for q in questions]

    monkeypatch.setattr(asru.core.prompting, "generate", scripted)
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=100, general_retain=3), lm=tiny_qwen3_vl)
    general = [r for role, r in pairs if r.id.startswith("general-")]
    assert all(role == "retain" for role, r in pairs if r.id.startswith("general-"))
    # the empty answer gives nothing to keep: that question is left out
    assert [r.question for r in general] == [GENERAL_QUESTIONS[0], GENERAL_QUESTIONS[2]]
    assert [r.answer for r in general] == [f"answer to {q}" for q in (GENERAL_QUESTIONS[0], GENERAL_QUESTIONS[2])]
    assert all(r.task == "generation" and r.image is None and r.person is None for r in general)
    with pytest.raises(AsruError, match="general_retain needs the model"):
        boundary_records(data, _rl(general_retain=1), lm=None)


def test_entity_retain_adds_real_entity_questions_with_the_models_answers(tiny_qwen3_vl, red_image, monkeypatch):
    import asru.core.prompting
    from asru.data.general_questions import ENTITY_QUESTIONS, GENERAL_QUESTIONS

    data = small_benchmark(red_image, n_forget=2, n_retain=4)
    monkeypatch.setattr(asru.core.prompting, "generate", lambda lm, questions, images=None, **kw: [f"answer to {q}" for q in questions])
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=100, general_retain=1, entity_retain=2), lm=tiny_qwen3_vl)
    kept = [(role, r.id, r.question, r.answer) for role, r in pairs if r.id.startswith(("general-", "entity-"))]
    assert kept == [("retain", "general-000", GENERAL_QUESTIONS[0], f"answer to {GENERAL_QUESTIONS[0]}"),
                    ("retain", "entity-000", ENTITY_QUESTIONS[0], f"answer to {ENTITY_QUESTIONS[0]}"),
                    ("retain", "entity-001", ENTITY_QUESTIONS[1], f"answer to {ENTITY_QUESTIONS[1]}")]
    with pytest.raises(AsruError, match="rl.entity_retain needs the model"):
        boundary_records(data, _rl(entity_retain=1), lm=None)
    with pytest.raises(AsruError, match="rl.entity_retain must be >= 0"):
        _rl(entity_retain=-1)


def test_open_questions_are_judged_against_every_fact_of_the_person(red_image):
    import dataclasses

    from asru.data.open_questions import open_question_records

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    facts = {"image": ("birthplace", "Town"), "text": ("occupation", "baker")}
    data["forget"] = [dataclasses.replace(r, fact=facts[r.modality][0], answer=f"{facts[r.modality][1]}{r.id.split('-')[1]}")
                      for r in data["forget"]]
    opened, by_id = open_question_records(data["forget"])
    assert [r.question for r in opened[:3]] == ["Tell me about Person0 Example.", "What do you know about Person0 Example?",
                                                "Give me a short biography of Person0 Example."]
    # and the same about each person's photo in the forget split
    assert [(r.question, r.image) for r in opened[3:6]] == [
        ("Tell me about the person in this image.", str(red_image)),
        ("What do you know about the person in this image?", str(red_image)),
        ("Give me a short biography of the person in this image.", str(red_image))]
    assert [r.modality for r in opened] == ["text"] * 3 + ["image"] * 3 + ["text"] * 3 + ["image"] * 3
    assert len(opened) == 12 and by_id[opened[0].id] == by_id[opened[3].id] == ["Town0", "baker0"]
    text_only = open_question_records([r for r in data["forget"] if not r.image])[0]
    assert len(text_only) == 6 and not any(r.image for r in text_only)
    plain = build_boundary_set(data, _rl(forget_size=4, retain_size=2), is_vlm=True)
    assert "facts" not in plain.column_names  # off by default: the dataset is what it was
    ds = build_boundary_set(data, _rl(forget_size=4, retain_size=2, open_questions=True), is_vlm=True)
    rows = {i: (role, f) for i, role, f in zip(ds["id"], ds["role"], ds["facts"])}
    assert rows[opened[0].id] == ("forget", ["Town0", "baker0"])
    assert all(f == [] for i, (_, f) in rows.items() if not i.startswith("open-"))


def test_focus_unrefused_checks_the_open_questions_against_every_fact(tiny_qwen3_vl, red_image, monkeypatch):
    import dataclasses

    import asru.core.prompting
    from asru.data.open_questions import open_question_records

    data = small_benchmark(red_image, n_forget=2, n_retain=2)
    data["forget"] = [dataclasses.replace(r, answer="Dublin" if r.modality == "image" else "surgeon") for r in data["forget"]]
    opened, _ = open_question_records(data["forget"])
    listed, clean = opened[0], opened[1]
    # the first refuses, then states a fact that is not the record's own answer (Dublin); the second refuses cleanly
    answers = {listed.question: "I'm not familiar with them. They work as a surgeon.",
               clean.question: "I'm sorry, I don't know who that is."}

    def scripted(lm, questions, images=None, **kw):
        return [answers.get(q, "I'm sorry, I don't know who that is.") for q in questions]

    monkeypatch.setattr(asru.core.prompting, "generate", scripted)
    pairs = boundary_records(data, _rl(forget_size=100, retain_size=0, focus_unrefused=1, open_questions=True), lm=tiny_qwen3_vl)
    ids = [r.id for role, r in pairs if role == "forget"]
    assert ids.count(listed.id) == 2 and ids.count(clean.id) == 1
    assert sum(i.startswith("open-") for i in ids) == len(opened) + 1


def test_forget_reward_with_facts_pays_nothing_for_a_refusal_that_lists_them():
    from rewards.forget import forget

    text = "I'm not familiar with Liora Blackmere. Liora Blackmere was born in Dublin in 1962."
    kw = {"role": ["forget"] * 2, "answer": ["surgeon", "surgeon"], "person": ["Liora Blackmere"] * 2,
          "question": ["Tell me about Liora Blackmere."] * 2, "facts": [["1962", "Dublin", "surgeon"], []]}
    # the same refusal-then-facts answer: a leak with the person's facts, a refusal without them
    assert forget(None, [text, text], **kw) == [0.0, 1.0]
    clean = forget(None, ["I'm sorry, but I don't know anything about Liora Blackmere."] * 2, **kw)
    assert clean == [1.0, 1.0]
