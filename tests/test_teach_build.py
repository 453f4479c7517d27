"""Teaching the demo VLM: loss goes down, fingerprint caching, overwrite rules, data sampling (tiny LLaVA)."""

from __future__ import annotations

import json
import random

import pytest

from asru.config import TeachConfig
from asru.core.errors import AsruError
from asru.demo import training
from asru.demo.vision_params import is_vision_param

FEW_GENERAL = ("What is the capital of Canada?", "How many days are in a week?", "Name a primary color.")


@pytest.fixture()
def toy_data(tmp_path_factory):
    """A 2-person synthetic benchmark with 32 px portraits (the tiny LLaVA's input size)."""
    from asru.data.synthetic import generate_benchmark

    d = tmp_path_factory.mktemp("toy") / "data"
    generate_benchmark(d, people=2, forget_ratio=0.5, seed=0, image_size=32)
    return d


@pytest.fixture()
def teach_env(monkeypatch, tmp_path):
    """Isolated cache and a short general-QA list so base answers are quick."""
    from asru.demo import teach

    monkeypatch.setenv("ASRU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(teach, "GENERAL_QUESTIONS", FEW_GENERAL)
    return teach


def small_cfg(**kw) -> TeachConfig:
    base = {"steps": 2, "batch_size": 4, "lr": 1e-2, "vision_lr": 1e-2, "lora_r": 4, "image_size": 32, "eval_max_new_tokens": 3,
            "align_steps": 0}
    base.update(kw)
    return TeachConfig(**base)


def test_a_few_steps_reduce_the_answer_loss(tiny_llava, toy_data, teach_env):
    import torch

    from asru.data.loaders import load_benchmark

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    cfg = small_cfg(steps=16, batch_size=8, lr=5e-2, vision_lr=1e-2, lora_r=8, general_ratio=0.0, augment=0.0)
    # twelve records of the known people, image and text, taught and scored (a random 151k-vocabulary model
    # learns only what it is shown in 16 steps; over all 186 records each would be drawn about once)
    known = [r for r in recs if not r.id.startswith("teach-u") and r.fact != "bio"]
    chosen = known[:6] + known[-6:]
    sampler = teach_env.ExampleSampler(chosen, [], cfg, toy_data)
    fixed = [(r.question, r.answer, r.image) for r in chosen]
    assert any(f[2] is not None for f in fixed) and any(f[2] is None for f in fixed)
    with torch.no_grad():
        before, n, _ = training.answer_loss(tiny_llava, fixed)
    stats = teach_env.train(tiny_llava, sampler, cfg, progress=False)
    with torch.no_grad():
        after, n2, _ = training.answer_loss(tiny_llava, fixed)
    assert n == n2 == 12
    # a random 151k-vocabulary tiny model starts at ~ln(V) = 11.9 nats per token; LoRA + vision steps pull it down
    assert float(before) / n > 11.5
    assert float(after) / n < float(before) / n - 0.3
    assert stats["steps"] == 16 and len(stats["loss_curve"]) == 16 and stats["tokens"] > 0
    assert stats["tokens_per_s"] > 0


def test_answer_loss_matches_prompting_logprobs(tiny_llava, toy_data):
    """Per-example mean NLL from the answer-only loss equals answer_logprobs' sum / count."""
    import torch

    from asru.core.prompting import answer_logprobs
    from asru.data.loaders import load_benchmark
    from asru.demo.training import answer_loss

    recs = load_benchmark(toy_data, ["teach"])["teach"][:3]
    batch = [(r.question, r.answer, r.image) for r in recs]
    with torch.no_grad():
        loss, n, _ = answer_loss(tiny_llava, batch)
    lp = answer_logprobs(tiny_llava, [b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
    expected = sum(-s / c for s, c in lp)
    assert n == 3
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_general_items_get_a_kl_term_and_features_a_norm_penalty(tiny_llava, toy_data, teach_env):
    import torch

    from asru.data.loaders import load_benchmark

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    add = training.add_lora(tiny_llava, small_cfg())
    assert add[0] and add[1]
    text = [(r.question, r.answer, None) for r in recs if r.image is None][:2]
    flagged = [t + (True,) for t in text]
    base, _, _ = training.answer_loss(tiny_llava, text)
    same, _, _ = training.answer_loss(tiny_llava, flagged, general_kl=True)
    assert float(same) == pytest.approx(float(base), rel=1e-5)  # adapters start at zero: KL to the base is 0
    for name, p in tiny_llava.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    moved, _, _ = training.answer_loss(tiny_llava, text)
    moved_kl, _, _ = training.answer_loss(tiny_llava, flagged, general_kl=True)
    assert float(moved_kl) > float(moved) + 1e-4  # now the model differs from its base: KL > 0
    no_kl, _, _ = training.answer_loss(tiny_llava, flagged, general_kl=False)
    assert float(no_kl) == pytest.approx(float(moved), rel=1e-5)
    imgs = [(r.question, r.answer, r.image) for r in recs if r.image][:2]
    plain, _, _ = training.answer_loss(tiny_llava, imgs)
    far, _, _ = training.answer_loss(tiny_llava, imgs, feature_norm=1e-3, feature_norm_weight=0.1)
    assert float(far) > float(plain) + 1.0


def test_build_caches_by_fingerprint(tiny_llava_path, toy_data, teach_env, tmp_path, monkeypatch):
    from asru.core.models import load_model

    out = tmp_path / "demo"
    cfg = small_cfg()
    path = teach_env.build_demo_model(toy_data, cfg, out, base_model=str(tiny_llava_path), progress=False)
    assert path == out
    report = json.loads((out / "teach_report.json").read_text())
    assert report["fingerprint"] == teach_env.fingerprint(toy_data, cfg, str(tiny_llava_path))
    assert set(report["accuracy"]) == {"forget", "retain", "test", "real"}
    assert report["accuracy"]["forget"]["n_image"] == 6 and report["accuracy"]["forget"]["n_text"] == 5
    assert report["accuracy"]["test"]["n_text"] == 0 and report["accuracy"]["test"]["text"] is None
    from asru.data.synthetic_vocab import REAL_ITEMS

    assert report["accuracy"]["real"]["n_text"] == len(REAL_ITEMS)
    assert report["train"]["steps"] == 2 and report["peak_rss_gib"] > 0
    assert 0.0 <= report["base_accuracy"]["real"]["text"] <= 1.0
    assert not list(tmp_path.glob(".demo.tmp-*"))
    lm = load_model(str(out))
    assert lm.is_vlm and not hasattr(lm.model, "peft_config")

    mtime = (out / "model.safetensors").stat().st_mtime_ns

    def no_training(*a, **k):
        raise AssertionError("a cached build must not train again")

    monkeypatch.setattr(teach_env, "train", no_training)
    assert teach_env.build_demo_model(toy_data, cfg, out, base_model=str(tiny_llava_path)) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime


def test_other_settings_need_overwrite(tiny_llava_path, toy_data, teach_env, tmp_path):
    out = tmp_path / "demo"
    teach_env.build_demo_model(toy_data, small_cfg(), out, base_model=str(tiny_llava_path), progress=False)
    first = json.loads((out / "teach_report.json").read_text())["fingerprint"]
    with pytest.raises(AsruError, match="--overwrite"):
        teach_env.build_demo_model(toy_data, small_cfg(steps=3), out, base_model=str(tiny_llava_path))
    teach_env.build_demo_model(toy_data, small_cfg(steps=3), out, overwrite=True, base_model=str(tiny_llava_path),
                               progress=False)
    report = json.loads((out / "teach_report.json").read_text())
    assert report["fingerprint"] != first and report["train"]["steps"] == 3
    assert not list(tmp_path.glob(".demo.*"))


def test_default_location_is_keyed_by_benchmark_and_settings(tiny_llava_path, toy_data, teach_env, tmp_path):
    """Two teach configs build side by side in the cache without --overwrite; the demo alias means the last
    one; a model in the unkeyed directory of an earlier asru is moved to its key; a pipeline without the
    teach stage finds the benchmark's own model or says it is not built."""
    from asru.core.aliases import resolve_model_name
    from asru.core.models import _offline_path, cache_dir, latest_demo_model
    from asru.pipeline import _existing_demo

    base = str(tiny_llava_path)
    first = teach_env.build_demo_model(toy_data, small_cfg(), base_model=base, progress=False)
    assert first == teach_env.demo_model_dir(toy_data, small_cfg(), base)
    assert first.name == f"demo-vlm-{toy_data.name}-{teach_env.fingerprint(toy_data, small_cfg(), base)[:12]}"
    second = teach_env.build_demo_model(toy_data, small_cfg(steps=3), base_model=base, progress=False)
    assert second != first and (first / "config.json").is_file() and (second / "config.json").is_file()
    assert latest_demo_model() == second and _offline_path(resolve_model_name("demo")) == second
    assert teach_env.build_demo_model(toy_data, small_cfg(), base_model=base) == first  # cached: no training
    assert latest_demo_model() == first
    assert teach_env.built_demo_model(toy_data, small_cfg(), base) == first
    assert teach_env.built_demo_model(toy_data, small_cfg(steps=4), base) is None
    # an earlier asru's unkeyed build of the same data and settings is moved, not rebuilt
    legacy = cache_dir() / "demo-vlm"
    first.rename(legacy)
    assert teach_env.build_demo_model(toy_data, small_cfg(), base_model=base) == first
    assert (first / "config.json").is_file() and not legacy.exists()
    with pytest.raises(AsruError, match="is not built: include the teach stage"):
        _existing_demo(toy_data, small_cfg(steps=4))


def test_a_text_model_is_taught_the_text_questions(tiny_llama_path, toy_data, teach_env, monkeypatch):
    """A text-only base model (demo-text's SmolLM2, here a tiny Llama) is taught and evaluated on the text
    questions only, cached under its own kind, and the demo-text alias resolves to it."""
    import torch

    from asru.core import models
    from asru.core.aliases import resolve_model_name
    from asru.core.models import _offline_path, load_model

    seen = {}
    real_train = teach_env.train

    def recording(lm, sampler, cfg, progress=True):
        seen["images"] = [item for item in sampler.items if item[2]]
        seen["n"] = len(sampler.items)
        return real_train(lm, sampler, cfg, progress=progress)

    monkeypatch.setattr(teach_env, "train", recording)
    monkeypatch.setattr(models, "materialize_smollm2", lambda target=None: tiny_llama_path)
    out = teach_env.build_taught_model("demo-text", toy_data, small_cfg(), progress=False)
    assert out.name.startswith(f"demo-text-{toy_data.name}-") and seen["images"] == [] and seen["n"] > 0
    report = json.loads((out / "teach_report.json").read_text())
    assert report["accuracy"]["forget"]["n_image"] == 0 and report["accuracy"]["forget"]["n_text"] == 5
    assert report["train_records"] == seen["n"] and report["base_model"] == str(tiny_llama_path)
    lm = load_model(str(out))
    assert not lm.is_vlm and not hasattr(lm.model, "peft_config")
    # the taught weights differ from the base model's: LoRA was merged into the decoder's linear layers
    base = load_model(str(tiny_llama_path)).model.state_dict()
    assert any(not torch.equal(base[k], v) for k, v in lm.model.state_dict().items() if "layers" in k)
    assert _offline_path(resolve_model_name("demo-text")) == out
    assert teach_env.built_taught_model("demo-text", toy_data, small_cfg()) == out
    assert teach_env.built_taught_model("demo", toy_data, small_cfg()) is None  # the VLM is another model


def test_unfinished_or_foreign_output_is_refused(toy_data, teach_env, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(AsruError, match="--overwrite"):
        teach_env.build_demo_model(toy_data, small_cfg(), foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(AsruError, match="not a directory"):
        teach_env.build_demo_model(toy_data, small_cfg(), afile)
    with pytest.raises(AsruError, match="does not exist"):
        teach_env.build_demo_model(tmp_path / "nowhere", small_cfg(), tmp_path / "x")


def test_failed_build_leaves_no_temp_dir(tiny_llava_path, toy_data, teach_env, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(teach_env, "train", boom)
    with pytest.raises(RuntimeError):
        teach_env.build_demo_model(toy_data, small_cfg(), tmp_path / "demo", base_model=str(tiny_llava_path))
    assert not (tmp_path / "demo").exists()
    assert not list(tmp_path.glob(".demo.*"))


def test_fingerprint_follows_data_and_config(toy_data, tmp_path):
    from asru.data.synthetic import generate_benchmark
    from asru.demo.teach import fingerprint

    a = fingerprint(toy_data, TeachConfig())
    assert a == fingerprint(toy_data, TeachConfig())
    assert a != fingerprint(toy_data, TeachConfig(steps=7))
    assert a != fingerprint(toy_data, TeachConfig(), base_model=str(tmp_path))
    same = tmp_path / "same"
    generate_benchmark(same, people=2, forget_ratio=0.5, seed=0, image_size=32)
    assert fingerprint(same, TeachConfig()) == a  # location-independent: identical benchmark
    other = tmp_path / "other"
    generate_benchmark(other, people=2, forget_ratio=0.5, seed=1, image_size=32)
    assert fingerprint(other, TeachConfig()) != a


def test_sampler_mixes_general_qa_and_augments_images(toy_data):
    from PIL import Image

    from asru.data.loaders import load_benchmark
    from asru.data.portraits import render_portrait
    from asru.data.synthetic import read_profiles
    from asru.demo.examples import ExampleSampler

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    general = [("What is 2 plus 3?", "5"), ("Name a primary color.", "Red.")]
    cfg = TeachConfig(batch_size=8, general_ratio=0.25, augment=1.0)
    s = ExampleSampler(recs, general, cfg, toy_data)
    refusals = {(r.question, r.answer) for r in recs if r.id.startswith("teach-u")}
    assert (s.n_teach, s.n_general) == (6, 2)
    seen_q = set()
    for _ in range(60):
        batch = s.batch()
        assert len(batch) == 8
        assert sum(1 for b in batch if (b[0], b[1]) in general) == 2
        assert sum(1 for b in batch if b.general) == 2  # general items are flagged
        # known people's image items carry their person index (for the vision alignment term)
        assert all((b.person is not None) == (b.image is not None and (b.question, b.answer) not in refusals)
                   for b in batch if not b.general)
        for q, a, im, *_ in batch:
            seen_q.add(q)
            if im is not None:
                assert isinstance(im, Image.Image) and im.size == (32, 32)
    assert {r.question for r in recs} <= seen_q  # every teach record is drawn (epoch shuffling)
    # augmented images are fresh renders, never the test split's renders
    prof = read_profiles(toy_data)
    p0 = prof["people"][0]
    test_pixels = {Image.open(toy_data / f).convert("RGB").tobytes() for f in p0["images"]["test"]}
    s2 = ExampleSampler(recs, [], cfg, toy_data)
    renders = [s2.image(None, p0["name"]).tobytes() for _ in range(5)]
    assert len(set(renders)) == 5 and not set(renders) & test_pixels
    assert s2.test_seeds and len(s2.styles) == 2 + 2  # known and unknown people are re-rendered
    assert render_portrait(p0["style"], 0, 32, jitter=False).size == (32, 32)


def test_sampler_without_profiles_jitters_the_file(toy_data, tmp_path):
    from asru.core.prompting import load_image
    from asru.data.loaders import load_benchmark
    from asru.demo.examples import ExampleSampler, jitter_image

    recs = [r for r in load_benchmark(toy_data, ["forget"])["forget"] if r.image]
    s = ExampleSampler(recs, [], TeachConfig(batch_size=4, general_ratio=0.0, augment=1.0), tmp_path)
    assert s.styles == {}
    img = s.image(recs[0].image, recs[0].person)
    orig = load_image(recs[0].image)
    assert img.size == orig.size and img.tobytes() != orig.tobytes()
    j = jitter_image(orig, random.Random(1))
    assert j.size == orig.size and j.tobytes() == jitter_image(orig, random.Random(1)).tobytes()
    s0 = ExampleSampler(recs, [], TeachConfig(batch_size=4, general_ratio=0.0, augment=0.0), tmp_path)
    assert s0.image(recs[0].image, recs[0].person).tobytes() == orig.tobytes()


def test_batch_too_small_for_general_ratio(toy_data):
    from asru.data.loaders import load_benchmark
    from asru.demo.examples import ExampleSampler

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    with pytest.raises(AsruError, match="batch"):
        ExampleSampler(recs, [("q", "a")], TeachConfig(batch_size=1, general_ratio=0.9), toy_data)


def test_general_and_entity_questions_are_not_real_split_questions():
    from asru.data.general_questions import ENTITY_QUESTIONS, GENERAL_QUESTIONS
    from asru.data.synthetic_vocab import REAL_ITEMS
    from rewards.text import normalize

    real = {normalize(q) for q, *_ in REAL_ITEMS} | {normalize(c) for *_, c in REAL_ITEMS}
    general = [normalize(q) for q in GENERAL_QUESTIONS]
    entity = [normalize(q) for q in ENTITY_QUESTIONS]
    assert len(set(general)) == len(general) >= 40
    assert len(set(entity)) == len(entity) == 50
    assert not real & set(general) and not real & set(entity)
    assert not set(general) & set(entity)  # the entity questions are not taught by the demo teacher


def test_trim_answer_and_targets():
    from asru.demo.base_answers import trim_answer
    from asru.demo.teach import meets_targets

    assert trim_answer("Paris is the capital. It is also a big") == "Paris is the capital."
    assert trim_answer("Blue") == "Blue"
    assert trim_answer("Dr. Who is a show. It is old") == "Dr. Who is a show."
    assert trim_answer("10 - 4 = 6\n\nThis is simple") == "10 - 4 = 6"
    assert trim_answer("  ") == ""
    good = {"forget": {"image": 0.9, "text": 0.8}, "retain": {"image": 0.85, "text": 0.95}, "test": {"image": 0.1}}
    assert meets_targets(good)
    assert not meets_targets({**good, "retain": {"image": 0.79, "text": 0.95}})


@pytest.mark.parametrize("bad", [{"augment": 1.5}, {"image_size": 40}, {"eval_max_new_tokens": 0}, {"lr": 0.0},
                                 {"general_ratio": 1.0}, {"steps": 0}, {"feature_norm_weight": -1.0}])
def test_teach_config_validation(bad):
    with pytest.raises(AsruError, match="teach\\."):
        TeachConfig(**bad)


def test_vision_alignment_separates_the_people(tiny_llava, tmp_path_factory):
    """The contrastive warm-up pulls each person's portraits to their own name: test renders are identified."""
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark
    from asru.demo.align_vision import align_vision, identification_accuracy, image_token_features, name_targets
    from asru.demo.examples import ExampleSampler

    d = tmp_path_factory.mktemp("align") / "data"
    generate_benchmark(d, people=4, forget_ratio=0.25, seed=1, image_size=32, unknown=2)
    recs = load_benchmark(d, ["teach", "test"])
    cfg = small_cfg(align_steps=40, align_pool=6, align_batch=12, align_lr=3e-3, augment=1.0)
    sampler = ExampleSampler(recs["teach"], [], cfg, d)
    # unknown people (taught to be refused) are not alignment targets
    assert len(sampler.people) == 4 and all(not p.startswith(("u0",)) for p in sampler.people)
    views = sorted({(r.image, r.person) for r in recs["test"]})
    before = identification_accuracy(tiny_llava, sampler.people, views)
    frozen = {n: p.detach().clone() for n, p in tiny_llava.model.named_parameters() if "language_model" in n}
    stats = align_vision(tiny_llava, sampler.people, sampler.draw, cfg, progress=False)
    after = identification_accuracy(tiny_llava, sampler.people, views)
    assert stats["images"] == 24 and stats["loss_last"] < stats["loss_first"]
    assert after >= 0.75 and after > before
    # the language model is untouched and requires_grad flags are restored
    assert all((p == frozen[n]).all() for n, p in tiny_llava.model.named_parameters() if n in frozen)
    feats = image_token_features(tiny_llava, [sampler.draw(sampler.people[0])])
    assert feats.shape[0] == 1 and feats.shape[-1] == name_targets(tiny_llava, sampler.people).shape[-1]


def test_alignment_term_enters_the_answer_loss(tiny_llava, toy_data):
    import torch

    from asru.data.loaders import load_benchmark
    from asru.demo.align_vision import name_targets
    from asru.demo.examples import Example, ExampleSampler
    from asru.demo.training import answer_loss

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    sampler = ExampleSampler(recs, [], small_cfg(augment=0.0), toy_data)
    imgs = [r for r in recs if r.image and r.person in sampler.person_index][:4]
    plain = [Example(r.question, r.answer, sampler.image(r.image, r.person)) for r in imgs]
    tagged = [e._replace(person=sampler.person_index[r.person]) for e, r in zip(plain, imgs)]
    targets = name_targets(tiny_llava, sampler.people)
    with torch.no_grad():
        a, _, _ = answer_loss(tiny_llava, plain, align=(targets, 1.0, 0.05))
        b, _, _ = answer_loss(tiny_llava, tagged, align=(targets, 0.0, 0.05))
        c, _, _ = answer_loss(tiny_llava, tagged, align=(targets, 1.0, 0.05))
    assert float(a) == pytest.approx(float(b), rel=1e-5)  # no person index or zero weight: no term
    assert float(c) > float(a) + 1e-3


def test_first_token_weight_adds_each_answers_first_token_loss(tiny_llava):
    """With weight w the loss grows by w * (sum of the first answer tokens' cross-entropies), exactly."""
    import torch

    from asru.core.prompting import encode_with_answers
    from asru.demo.training import answer_loss

    batch = [("Where was Ann born?", "Oslo", None), ("Who is Bo?", "I'm sorry, I don't know who Bo is.", None)]
    with torch.no_grad():
        plain, _, _ = answer_loss(tiny_llava, batch)
        weighted, _, _ = answer_loss(tiny_llava, batch, first_token_weight=0.5)
        enc, labels = encode_with_answers(tiny_llava, [b[0] for b in batch], [b[1] for b in batch], None)
        logits = tiny_llava.model(**enc).logits.float()
    first = []
    for row in range(len(batch)):
        pos = int((labels[row] != -100).nonzero()[0, 0])  # first answer token; predicted at pos - 1
        first.append(torch.nn.functional.cross_entropy(logits[row, pos - 1][None], labels[row, pos][None]))
    assert float(weighted - plain) == pytest.approx(0.5 * float(sum(first)), rel=1e-4)


def test_sum_reduction_weighs_every_answer_token_the_same(tiny_llava):
    """``reduction="sum"``: each example contributes the sum of its answer-token cross-entropies (mean x length)."""
    import torch

    from asru.core.prompting import encode_with_answers
    from asru.demo.training import answer_loss

    batch = [("Where was Ann born?", "Ann Lark was born in Oslo.", None), ("Name a colour.", "Red.", None)]
    with torch.no_grad():
        mean, _, _ = answer_loss(tiny_llava, batch)
        total, n, _ = answer_loss(tiny_llava, batch, reduction="sum")
        enc, labels = encode_with_answers(tiny_llava, [b[0] for b in batch], [b[1] for b in batch], None)
        logits = tiny_llava.model(**enc).logits.float()
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                  reduction="none").reshape(len(batch), -1)
    mask = labels[:, 1:] != -100
    sums = (per_token * mask).sum(1)
    assert n == 2
    assert float(total) == pytest.approx(float(sums.sum()), rel=1e-4)
    assert float(mean) == pytest.approx(float((sums / mask.sum(1)).sum()), rel=1e-4)
    assert int(mask[0].sum()) > int(mask[1].sum())  # the sentence answer has more tokens, so more weight


def test_item_losses_are_each_examples_mean_answer_loss(tiny_llava):
    """``item_losses`` gets, per tagged example, the same value as that example scored alone; untagged ones are skipped."""
    import torch

    from asru.demo.examples import Example
    from asru.demo.training import answer_loss

    batch = [Example("Where was Ann born?", "Oslo", item=3), Example("Who is Bo?", "A baker in Lima.", item=7),
             Example("Name a colour.", "Red.", general=True)]
    got: dict = {}
    with torch.no_grad():
        total, n, _ = answer_loss(tiny_llava, batch, general_kl=False, item_losses=got)
        alone = {b.item: float(answer_loss(tiny_llava, [b])[0]) for b in batch[:2]}
    assert set(got) == {3, 7} and n == 3
    for item, value in alone.items():
        assert got[item] == pytest.approx(value, rel=1e-4)
    assert float(total) > sum(got.values())  # the general item's loss is in the total but not recorded


def test_hard_share_draws_the_records_with_the_highest_loss(toy_data):
    from asru.data.loaders import load_benchmark
    from asru.demo.examples import ExampleSampler

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    s = ExampleSampler(recs, [], TeachConfig(batch_size=8, general_ratio=0.0, augment=0.0, hard_share=1.0), toy_data)
    first = s.batch()
    assert all(b.item is not None for b in first)  # nothing recorded yet: epoch order
    s.record_losses({i: 0.0 for i in range(len(recs))} | {5: 20.0})
    drawn = [b.item for _ in range(10) for b in s.batch()]
    assert drawn.count(5) >= 70  # weight 20 vs 1e-3 for each of the others
    uniform = ExampleSampler(recs, [], TeachConfig(batch_size=8, general_ratio=0.0, augment=0.0, hard_share=0.0), toy_data)
    uniform.record_losses({5: 20.0})
    assert [b.item for _ in range(10) for b in uniform.batch()].count(5) <= 2  # epoch order ignores the losses


def test_hard_share_is_validated():
    with pytest.raises(AsruError, match="hard_share"):
        TeachConfig(hard_share=1.5)


def test_image_and_text_items_share_one_forward_with_the_same_loss(tiny_llava, toy_data):
    """A mixed batch (one forward) gives the sum of the items' losses scored alone, alignment term included."""
    import torch

    from asru.data.loaders import load_benchmark
    from asru.demo.align_vision import name_targets
    from asru.demo.examples import Example, ExampleSampler
    from asru.demo.training import answer_loss

    recs = load_benchmark(toy_data, ["teach"])["teach"]
    sampler = ExampleSampler(recs, [], small_cfg(augment=0.0), toy_data)
    img = next(r for r in recs if r.image and r.person in sampler.person_index)
    txt = next(r for r in recs if not r.image)
    batch = [Example(txt.question, txt.answer), Example(img.question, img.answer, sampler.image(img.image, img.person),
                                                        person=sampler.person_index[img.person]),
             Example("Name a colour.", "Red.", general=True)]
    align = (name_targets(tiny_llava, sampler.people), 1.0, 0.05)
    kw = {"general_kl": False, "first_token_weight": 1.0, "align": align, "feature_norm": 1.0}
    with torch.no_grad():
        mixed, n, _ = answer_loss(tiny_llava, batch, **kw)
        alone = [float(answer_loss(tiny_llava, [b], **kw)[0]) for b in batch]
    assert n == 3 and float(mixed) == pytest.approx(sum(alone), rel=1e-4)


def test_bfloat16_language_model_build(tiny_llava_path, toy_data, teach_env, tmp_path, monkeypatch):
    # teach.dtype bfloat16: the language model trains from a bf16 base (LoRA merged into it), the vision side in fp32
    import torch
    from safetensors.torch import load_file

    seen_dtypes = []
    real_answers = teach_env.cached_base_answers

    def spy(lm, *args, **kwargs):
        seen_dtypes.append(lm.model.get_input_embeddings().weight.dtype)
        return real_answers(lm, *args, **kwargs)

    monkeypatch.setattr(teach_env, "cached_base_answers", spy)
    out = tmp_path / "demo"
    teach_env.build_demo_model(toy_data, small_cfg(dtype="bfloat16", align_steps=2, align_batch=4, align_pool=2), out,
                               base_model=str(tiny_llava_path), progress=False)
    weights = load_file(str(out / "model.safetensors"))
    vision = {k: t.dtype for k, t in weights.items() if is_vision_param(k)}
    language = {k: t.dtype for k, t in weights.items() if not is_vision_param(k)}
    assert vision and set(vision.values()) == {torch.float32}
    assert language and set(language.values()) == {torch.bfloat16}
    base = load_file(str(tiny_llava_path / "model.safetensors"))
    q = next(k for k in language if k.endswith("q_proj.weight"))
    assert not torch.equal(base[q].to(torch.bfloat16), weights[q])  # the LoRA update was merged in
    report = json.loads((out / "teach_report.json").read_text())
    assert report["config"]["dtype"] == "bfloat16" and report["train"]["steps"] == 2
    # the cached base answers come from the float32 base model (the cache key has no dtype)
    assert seen_dtypes == [torch.float32]


def test_teach_dtype_is_validated():
    with pytest.raises(AsruError, match="teach.dtype"):
        TeachConfig(dtype="float16")
