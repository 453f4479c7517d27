"""Teaching examples of the demo VLM: the sampler (loss-weighted, with jittered re-renders of portraits)."""

from __future__ import annotations

import json
import random
import typing
from pathlib import Path

import rewards.text
from asru.config import TeachConfig
from asru.core.errors import AsruError
from asru.core.prompting import load_image
from asru.data.portraits import derive_seed, render_portrait
from asru.data.synthetic import N_TEST_RENDERS, read_profiles


class Example(typing.NamedTuple):
    """One training example: ``general`` marks base-answered general QA; ``person`` indexes the known people;
    ``item`` indexes the sampler's teach records (None for general QA)."""

    question: str
    answer: str
    image: object = None
    general: bool = False
    person: int | None = None
    item: int | None = None


class ExampleSampler:
    """Draws training batches: teach records (epoch-shuffled) plus base-answered general QA.

    Image examples get a fresh jittered render of the person (synthetic benchmarks with
    ``profiles.json``) or a jittered copy of their image, with probability ``cfg.augment``.
    A share ``cfg.hard_share`` of the teach examples is drawn in proportion to each record's last
    training loss (:meth:`record_losses`), so the budget goes to the facts not learnt yet.
    """

    def __init__(self, records, general: list[tuple[str, str]], cfg: TeachConfig, data_dir: Path):
        self.items = [(r.question, r.answer, r.image, r.person) for r in records]
        if not self.items:
            raise AsruError(f"{data_dir}: no records to teach the demo model from")
        # people the model is taught to recognise (image records answered with facts, not refusals)
        self.people = sorted({r.person for r in records if r.person and r.image and not rewards.text.is_refusal(r.answer)})
        self.person_index = {p: i for i, p in enumerate(self.people)}
        self._person_images: dict[str, list[str]] = {}
        for r in records:
            if r.person in self.person_index and r.image:
                self._person_images.setdefault(r.person, []).append(r.image)
        self.general = list(general)
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.n_general = round(cfg.batch_size * cfg.general_ratio) if self.general else 0
        self.n_teach = cfg.batch_size - self.n_general
        if self.n_teach < 1:
            raise AsruError("teach.batch_size is too small for teach.general_ratio: raise the batch size")
        self.item_loss: list[float | None] = [None] * len(self.items)
        self._order: list[int] = []
        self._gorder: list[int] = []
        self.styles, self.test_seeds, self.image_size = _synthetic_styles(data_dir)
        self._counter = 0

    def _next(self, order: list[int], n: int) -> int:
        if not order:
            order.extend(self.rng.sample(range(n), n))
        return order.pop()

    def batch(self) -> list[Example]:
        """One batch of :class:`Example` items (teach records, then general-knowledge QA)."""
        out = []
        # the random() draw happens whenever a loss is recorded, even at hard_share 0: built models stay reproducible
        recorded = [i for i, x in enumerate(self.item_loss) if x is not None]
        weights = [self.item_loss[i] + 1e-3 for i in recorded] if self.cfg.hard_share else None
        for _ in range(self.n_teach):
            if recorded and self.rng.random() < self.cfg.hard_share:
                idx = self.rng.choices(recorded, weights=weights)[0]
            else:
                idx = self._next(self._order, len(self.items))
            q, a, img, person = self.items[idx]
            out.append(Example(q, a, self.image(img, person) if img else None, False,
                               self.person_index.get(person) if img else None, idx))
        for _ in range(self.n_general):
            q, a = self.general[self._next(self._gorder, len(self.general))]
            out.append(Example(q, a, None, True, None))
        return out

    def record_losses(self, losses: dict[int, float]) -> None:
        """Remember the latest answer loss of teach records (``{item index: loss}``) for hard-example draws."""
        for idx, value in losses.items():
            self.item_loss[idx] = float(value)

    def draw(self, person: str):
        """A fresh augmented image of a known ``person`` (a re-render or a jittered copy of one of their images)."""
        paths = self._person_images[person]
        self._counter += 1
        return self._augmented(paths[self._counter % len(paths)], person)

    def image(self, path, person):
        """The image of a training example: a jittered re-render / copy, or the file itself."""
        self._counter += 1
        if self.rng.random() >= self.cfg.augment:
            return load_image(path)
        return self._augmented(path, person)

    def _augmented(self, path, person):
        seed = self._variant_seed()
        if person in self.styles:
            return render_portrait(self.styles[person], seed, self.image_size, jitter=True)
        return jitter_image(load_image(path), random.Random(seed))

    def _variant_seed(self) -> int:
        while True:
            seed = derive_seed("teach-augment", self.cfg.seed, self._counter)
            if seed not in self.test_seeds:
                return seed
            self._counter += 1


def _synthetic_styles(data_dir: Path) -> tuple[dict, set, int]:
    """``({person name: style}, test-render seeds, image size)`` of a synthetic benchmark, else empty."""
    path = Path(data_dir) / "profiles.json"
    if not path.is_file():
        return {}, set(), 64
    prof = read_profiles(data_dir)
    meta_path = Path(data_dir) / "meta.json"
    size = json.loads(meta_path.read_text(encoding="utf-8")).get("image_size", 64) if meta_path.is_file() else 64
    people = prof.get("people", [])
    styles = {p["name"]: p["style"] for p in people + prof.get("unknown_people", []) if "style" in p and "name" in p}
    seed = prof.get("seed", 0)
    test_seeds = {derive_seed("test", seed, i, k) for i in range(len(people)) for k in range(1, N_TEST_RENDERS + 1)}
    return styles, test_seeds, int(size)


def jitter_image(img, rng: random.Random):
    """A mildly varied copy of ``img``: small shift/scale crop and brightness/contrast/colour jitter."""
    from PIL import ImageEnhance

    w, h = img.size
    scale = rng.uniform(0.88, 1.0)
    cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.8, 1.2))
