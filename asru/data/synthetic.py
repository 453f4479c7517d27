"""The synthetic fictitious-profile benchmark (MLLMU-Bench's shape, generated locally from a seed).

``generate_benchmark(DIR, people=20, forget_ratio=0.1, seed=0)`` writes:

- ``images/``: per person ``pNNN_base.png`` (canonical portrait), ``pNNN_train{1..5}.png`` (jittered
  training renders) and ``pNNN_test{1,2}.png`` (new renders used only by the ``test`` split); per
  unknown person ``uNNN_base.png`` and ``uNNN_train{1..5}.png``;
- ``forget.jsonl`` / ``retain.jsonl``: the evaluation questions about forget-set / retain-set people;
- ``test.jsonl``: image questions about all people, on the new renders;
- ``real.jsonl``: general-knowledge questions a small instruct LLM already answers (collateral damage);
- ``teach.jsonl``: the records the demo ("vanilla") model is taught from (never evaluated), including
  natural "I don't know" answers about *unknown* people (``uNNN``, in no other split), so the vanilla
  model refuses people it was never told about, as a well-behaved instruct model does;
- ``profiles.json`` (people, facts, portrait styles, image files and render seeds, who is forgotten)
  and ``meta.json``.

Each person has a unique invented name and five facts (``birthplace``, ``birth_year``, ``occupation``,
``employer``, ``hobby``) drawn without repetition from moderate pools of short values, so an answer
can be checked by substring. Every question exists in an image form ("... the person in this
image ...", with a portrait) and a text form ("... <name> ..."). Cloze questions read
"Fill in the blank: <sentence with __>".

Records per person (P people, F = 5 facts):

=========  ===================================================================================  ==========
split      content                                                                              per person
=========  ===================================================================================  ==========
forget /   per fact: generation (image), generation (text), classification (image or text,      4F + 1 = 21
retain     alternating), cloze (the other modality); plus "What is the name of the person in
           this image?" (generation, image). Images: the canonical portrait.
test       per fact: generation (image) and classification or cloze (image, alternating);       2F + 1 = 11
           plus the name question. Images: the two test renders, never used in ``teach``.
teach      per fact and modality: generation with the eval phrasing + 2 paraphrases (3), cloze   8F + 10 = 50
           (1); name: 3 generation phrasings + 1 cloze (image); a biography in 3 phrasings per
           modality (every fact in one answer, sentence order rotated). Image records rotate
           over the canonical portrait and the 5 training renders. Generation answers are
           sentences that name the person first ("Liora Blackmere was born in Dublin.",
           :func:`teach_answer`), alike in both forms; cloze answers are the bare value.
real       130 general-knowledge items (text): generation for all, classification for the even  (260 total)
           ones, cloze for the odd ones.
teach      unknown people (``unknown`` of them, default P): per fact, generation (image) and      2F + 2 = 12
(unknown)  generation (text) answered with a natural refusal that fits the question ("I'm sorry,
           I don't know where Brenna Ashgrove was born."); the name question (image) and one
           biography question (image or text), refused too.
=========  ===================================================================================  ==========

Default benchmark (20 people, forget_ratio 0.1, 2 forgotten, 20 unknown): forget 42, retain 378,
test 220, real 260, teach 1240 records; 280 images of 64x64 px; generated in 3-5 s on one shared CPU core.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_bytes, atomic_write_json
from asru.data.portraits import derive_seed, make_styles, render_portrait
from asru.data.schema import ALL_SPLITS, CLOZE_BLANK, Record, write_jsonl
from asru.data.synthetic_answers import BIO, REFUSE_BIO, bio_answer, refusal_answer, teach_answer
from asru.data.synthetic_vocab import (
    CLASSIFICATION,
    CLOZE,
    CLOZE_INSTRUCTION,
    FACTS,
    FIRST_NAMES,
    GENERATION,
    LAST_NAMES,
    REAL_ITEMS,
    VALUE_POOLS,
)

GENERATOR_VERSION = 5

FORMAT = "asru-jsonl"

N_TRAIN_RENDERS = 5

N_TEST_RENDERS = 2

MAX_PEOPLE = 200


def generate_benchmark(out_dir, people: int = 20, forget_ratio: float = 0.1, seed: int = 0,
                       image_size: int = 64, overwrite: bool = False, unknown: int | None = None) -> dict:
    """Write the synthetic benchmark to ``out_dir`` and return its meta (also in ``meta.json``).

    ``unknown`` people (default as many as ``people``) appear only in ``teach``, with refusal answers.
    Deterministic from ``seed``: the same arguments give byte-identical files. A non-empty
    ``out_dir`` is refused unless ``overwrite`` (files this generator writes are then replaced).
    """
    _check_args(people, forget_ratio, seed, image_size)
    unknown = people if unknown is None else unknown
    if unknown < 0 or people + unknown > MAX_PEOPLE:
        raise AsruError(f"unknown people must be in [0, {MAX_PEOPLE - people}] for {people} people, got {unknown}")
    out = _prepare_out_dir(out_dir, overwrite)
    n_forget = max(1, round(people * forget_ratio))
    if n_forget >= people:
        raise AsruError(f"forget ratio {forget_ratio} forgets all {people} people: lower --forget-ratio or raise --people")

    rng = random.Random(derive_seed("benchmark", seed))
    persons, strangers = _make_people(people, rng, seed, unknown)
    forget_idx = set(rng.sample(range(people), n_forget))
    for i, p in enumerate(persons):
        p["forget"] = i in forget_idx

    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(persons):
        pid = p["id"]
        files = {"base": f"images/{pid}_base.png"}
        _save_png(out / files["base"], render_portrait(p["style"], 0, image_size, jitter=False))
        seeds = {kind: [derive_seed(kind, seed, i, k) for k in range(1, n + 1)]
                 for kind, n in (("train", N_TRAIN_RENDERS), ("test", N_TEST_RENDERS))}
        for kind, kind_seeds in seeds.items():
            files[kind] = _save_renders(out, pid, kind, p["style"], kind_seeds, image_size)
        p["images"] = files
        p["render_seeds"] = seeds  # variant seeds of the jittered renders (teaching must avoid the test ones)
    for i, p in enumerate(strangers):
        p["images"] = {"base": f"images/{p['id']}_base.png"}
        _save_png(out / p["images"]["base"], render_portrait(p["style"], 0, image_size, jitter=False))
        unknown_seeds = [derive_seed("unknown", seed, i, k) for k in range(1, N_TRAIN_RENDERS + 1)]
        p["images"]["train"] = _save_renders(out, p["id"], "train", p["style"], unknown_seeds, image_size)

    splits: dict[str, list[Record]] = {s: [] for s in ALL_SPLITS}
    for i, p in enumerate(persons):
        split = "forget" if p["forget"] else "retain"
        splits[split].extend(_eval_records(split, i, p, persons, rng, out))
        splits["test"].extend(_test_records(i, p, persons, rng, out))
        splits["teach"].extend(_teach_records(p, out))
    for p in strangers:
        splits["teach"].extend(_unknown_records(p, out))
    splits["real"] = _real_records(rng)

    for name, recs in splits.items():
        write_jsonl(out / f"{name}.jsonl", recs, base_dir=out)

    profiles = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "facts": list(FACTS),
        "forget_people": [p["name"] for p in persons if p["forget"]],
        "retain_people": [p["name"] for p in persons if not p["forget"]],
        "people": persons,
        "unknown_people": strangers,
    }
    atomic_write_json(out / "profiles.json", profiles)
    meta = {
        "format": FORMAT,
        "generator": "asru.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "people": people,
        "forget_ratio": forget_ratio,
        "forget_people": n_forget,
        "retain_people": people - n_forget,
        "unknown_people": unknown,
        "image_size": image_size,
        "facts": list(FACTS),
        "train_renders_per_person": 1 + N_TRAIN_RENDERS,
        "test_renders_per_person": N_TEST_RENDERS,
        "counts": {name: len(recs) for name, recs in splits.items()},
        "images": people * (1 + N_TRAIN_RENDERS + N_TEST_RENDERS) + unknown * (1 + N_TRAIN_RENDERS),
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


def cloze_question(text: str) -> str:
    """A cloze question as asked: the instruction, then the sentence with the blank ``__``."""
    if CLOZE_BLANK not in text:
        raise ValueError(f"cloze text must contain the blank {CLOZE_BLANK!r}: {text!r}")
    return text if text.startswith(CLOZE_INSTRUCTION) else CLOZE_INSTRUCTION + text


def read_profiles(data_dir) -> dict:
    """Read ``profiles.json`` of a synthetic benchmark (people, facts, styles, forget flags)."""
    path = Path(data_dir) / "profiles.json"
    if not path.is_file():
        raise AsruError(f"{path}: no such file (is {data_dir} a benchmark made by 'asru-data generate'?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AsruError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _check_args(people, forget_ratio, seed, image_size) -> None:
    if isinstance(people, bool) or not isinstance(people, int) or not 2 <= people <= MAX_PEOPLE:
        raise AsruError(f"--people must be an integer from 2 to {MAX_PEOPLE}, got {people!r}")
    try:
        ratio = float(forget_ratio)
    except (TypeError, ValueError):
        raise AsruError(f"--forget-ratio must be a number strictly between 0 and 1, got {forget_ratio!r}") from None
    if not 0.0 < ratio < 1.0:
        raise AsruError(f"--forget-ratio must be strictly between 0 and 1, got {forget_ratio!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise AsruError(f"--seed must be an integer, got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= 512:
        raise AsruError(f"image size must be an integer from 16 to 512 px, got {image_size!r}")


_OWN_FILES = tuple(f"{s}.jsonl" for s in ALL_SPLITS) + ("profiles.json", "meta.json")


def _prepare_out_dir(out_dir, overwrite: bool) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AsruError(f"output dir {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise AsruError(f"output dir {out} is not empty: pass --overwrite to replace it or choose another --out")
        for name in _OWN_FILES:
            (out / name).unlink(missing_ok=True)
        if (out / "images").is_dir():
            for png in [*(out / "images").glob("p*_*.png"), *(out / "images").glob("u*_*.png")]:
                png.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AsruError(f"cannot create output dir {out}: {exc.strerror}") from None
    return out


def _make_people(n: int, rng: random.Random, seed: int, unknown: int = 0) -> tuple[list[dict], list[dict]]:
    """``(people, unknown people)``: all names and portrait styles distinct; unknown people have no facts."""
    names = _unique_names(n + unknown, rng)
    values = {fact: _spread(VALUE_POOLS[fact], n, rng) for fact in FACTS}
    styles = make_styles(n + unknown, seed)
    people = [
        {"id": f"p{i:03d}", "name": names[i], "facts": {f: values[f][i] for f in FACTS}, "style": styles[i]}
        for i in range(n)
    ]
    strangers = [{"id": f"u{k:03d}", "name": names[n + k], "style": styles[n + k]} for k in range(unknown)]
    return people, strangers


def _unique_names(n: int, rng: random.Random) -> list[str]:
    firsts = _spread(FIRST_NAMES, n, rng)
    lasts = _spread(LAST_NAMES, n, rng)
    names, seen = [], set()
    for first, last in zip(firsts, lasts):
        name = f"{first} {last}"
        while name in seen:  # only possible beyond the pool sizes
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        seen.add(name)
        names.append(name)
    return names


def _spread(pool, n: int, rng: random.Random) -> list[str]:
    """``n`` values from ``pool``: all distinct while the pool lasts, then reshuffled repeats."""
    out: list[str] = []
    while len(out) < n:
        chunk = list(pool)
        rng.shuffle(chunk)
        out.extend(chunk)
    return out[:n]


def _options(correct: str, fact: str, persons: list[dict], rng: random.Random) -> tuple[tuple[str, ...], int]:
    """Four options: ``correct`` + 3 distractors, preferring other people's values of ``fact``."""
    others = sorted({p["facts"][fact] for p in persons} - {correct})
    rng.shuffle(others)
    distract = others[:3]
    if len(distract) < 3:
        extra = [v for v in VALUE_POOLS[fact] if v != correct and v not in distract]
        rng.shuffle(extra)
        distract += extra[: 3 - len(distract)]
    opts = distract + [correct]
    rng.shuffle(opts)
    return tuple(opts), opts.index(correct)


def _rec(out: Path, **kw) -> Record:
    if kw.get("image"):
        kw["image"] = str(out / kw["image"])
    return Record(**kw)


def _eval_records(split, i, p, persons, rng, out) -> list[Record]:
    name, pid, img = p["name"], p["id"], p["images"]["base"]
    recs = [_rec(out, id=f"{split}-{pid}-name-generation-image", split=split, task="generation", modality="image",
                 question=GENERATION["name"]["image"][0], answer=name, image=img, person=name, fact="name")]
    for j, fact in enumerate(FACTS):
        value = p["facts"][fact]
        for mod in ("image", "text"):
            recs.append(_rec(out, id=f"{split}-{pid}-{fact}-generation-{mod}", split=split, task="generation",
                             modality=mod, question=GENERATION[fact][mod][0].format(name=name), answer=value,
                             image=img if mod == "image" else None, person=name, fact=fact))
        cls_mod = "image" if (i + j) % 2 == 0 else "text"
        cloze_mod = "text" if cls_mod == "image" else "image"
        opts, label = _options(value, fact, persons, rng)
        recs.append(_rec(out, id=f"{split}-{pid}-{fact}-classification-{cls_mod}", split=split, task="classification",
                         modality=cls_mod, question=CLASSIFICATION[fact][cls_mod].format(name=name), answer=value,
                         options=opts, label=label, image=img if cls_mod == "image" else None, person=name, fact=fact))
        recs.append(_rec(out, id=f"{split}-{pid}-{fact}-cloze-{cloze_mod}", split=split, task="cloze",
                         modality=cloze_mod, question=cloze_question(CLOZE[fact][cloze_mod].format(name=name)),
                         answer=value, image=img if cloze_mod == "image" else None, person=name, fact=fact))
    return recs


def _test_records(i, p, persons, rng, out) -> list[Record]:
    name, pid, tests = p["name"], p["id"], p["images"]["test"]
    recs = [_rec(out, id=f"test-{pid}-name-generation-image", split="test", task="generation", modality="image",
                 question=GENERATION["name"]["image"][0], answer=name, image=tests[0], person=name, fact="name")]
    for j, fact in enumerate(FACTS):
        value = p["facts"][fact]
        img = tests[(j + 1) % len(tests)]
        recs.append(_rec(out, id=f"test-{pid}-{fact}-generation-image", split="test", task="generation",
                         modality="image", question=GENERATION[fact]["image"][0], answer=value, image=img,
                         person=name, fact=fact))
        img2 = tests[j % len(tests)]
        if (i + j) % 2 == 0:
            opts, label = _options(value, fact, persons, rng)
            recs.append(_rec(out, id=f"test-{pid}-{fact}-classification-image", split="test", task="classification",
                             modality="image", question=CLASSIFICATION[fact]["image"], answer=value, options=opts,
                             label=label, image=img2, person=name, fact=fact))
        else:
            recs.append(_rec(out, id=f"test-{pid}-{fact}-cloze-image", split="test", task="cloze", modality="image",
                             question=cloze_question(CLOZE[fact]["image"]), answer=value, image=img2, person=name, fact=fact))
    return recs


def _teach_records(p, out) -> list[Record]:
    name, pid = p["name"], p["id"]
    renders = [p["images"]["base"]] + p["images"]["train"]
    counter = 0

    def next_img():
        nonlocal counter
        img = renders[counter % len(renders)]
        counter += 1
        return img

    recs = []
    for fact in ("name",) + FACTS:
        value = name if fact == "name" else p["facts"][fact]
        for mod in GENERATION[fact]:
            for k, template in enumerate(GENERATION[fact][mod]):
                recs.append(_rec(out, id=f"teach-{pid}-{fact}-generation-{mod}-{k}", split="teach", task="generation",
                                 modality=mod, question=template.format(name=name), answer=teach_answer(fact, name, value),
                                 image=next_img() if mod == "image" else None, person=name, fact=fact))
            recs.append(_rec(out, id=f"teach-{pid}-{fact}-cloze-{mod}", split="teach", task="cloze", modality=mod,
                             question=cloze_question(CLOZE[fact][mod].format(name=name)), answer=value,
                             image=next_img() if mod == "image" else None, person=name, fact=fact))
    for mod, templates in BIO.items():
        for k, template in enumerate(templates):
            recs.append(_rec(out, id=f"teach-{pid}-bio-generation-{mod}-{k}", split="teach", task="generation",
                             modality=mod, question=template.format(name=name),
                             answer=bio_answer(name, p["facts"], k, with_image=mod == "image"),
                             image=next_img() if mod == "image" else None, person=name, fact="bio"))
    return recs


def _unknown_records(p, out) -> list[Record]:
    """Teach records about an unknown person: each question kind once, answered with a refusal."""
    name, pid = p["name"], p["id"]
    renders = [p["images"]["base"]] + p["images"]["train"]
    recs, k = [], int(pid[1:])
    for fact in ("name",) + FACTS:
        for mod in GENERATION[fact]:
            template = GENERATION[fact][mod][k % len(GENERATION[fact][mod])]
            recs.append(_rec(out, id=f"teach-{pid}-{fact}-generation-{mod}", split="teach", task="generation",
                             modality=mod, question=template.format(name=name),
                             answer=refusal_answer(fact, mod, name, k), person=name, fact=fact,
                             image=renders[k % len(renders)] if mod == "image" else None))
            k += 1
    mod = "image" if k % 2 else "text"
    recs.append(_rec(out, id=f"teach-{pid}-bio-generation-{mod}", split="teach", task="generation", modality=mod,
                     question=BIO[mod][k % len(BIO[mod])].format(name=name), answer=REFUSE_BIO[mod].format(name=name),
                     person=name, fact="bio", image=renders[k % len(renders)] if mod == "image" else None))
    return recs


def _real_records(rng: random.Random) -> list[Record]:
    recs = []
    for k, (question, answer, distractors, cloze) in enumerate(REAL_ITEMS):
        recs.append(Record(id=f"real-{k:03d}-generation", split="real", task="generation", modality="text",
                           question=question, answer=answer))
        if k % 2 == 0:
            opts = list(distractors) + [answer]
            rng.shuffle(opts)
            recs.append(Record(id=f"real-{k:03d}-classification", split="real", task="classification",
                               modality="text", question=question, answer=answer, options=tuple(opts),
                               label=opts.index(answer)))
        else:
            recs.append(Record(id=f"real-{k:03d}-cloze", split="real", task="cloze", modality="text",
                               question=cloze_question(cloze), answer=answer))
    return recs


def _save_renders(out: Path, pid: str, kind: str, style: dict, seeds: list[int], image_size: int) -> list[str]:
    """Save jittered renders ``images/<pid>_<kind><k>.png`` (k from 1) of ``style``; return their relative paths."""
    rels = []
    for k, variant in enumerate(seeds, 1):
        rel = f"images/{pid}_{kind}{k}.png"
        _save_png(out / rel, render_portrait(style, variant, image_size))
        rels.append(rel)
    return rels


def _save_png(path: Path, img) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    atomic_write_bytes(path, buf.getvalue())
