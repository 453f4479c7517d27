"""The one record type every stage reads, and the strict JSONL reader/writer for it.

A benchmark directory holds one ``<split>.jsonl`` per split, an ``images/`` folder and a
``meta.json``. Each JSONL line is one :class:`Record`:

============  ==============================================================================
field         meaning
============  ==============================================================================
id            unique id of the question (string)
split         ``forget`` | ``retain`` | ``test`` | ``real`` (``teach`` for teaching-only data)
task          ``generation`` (free answer) | ``classification`` (4-way A-D) | ``cloze``
modality      ``image`` (question about "the person in this image") | ``text``
question      the question text; a cloze question contains the blank ``__``
answer        the short ground-truth answer (for classification: the correct option's text)
options       classification only: the four option texts, in A-D order
label         classification only: index 0-3 of the correct option
image         image file, relative to the benchmark directory (absolute once loaded)
person        the person the question is about (``None`` for general-knowledge questions)
fact          the profile fact asked about (``birthplace``, ``occupation`` ...), if any
============  ==============================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.rundir import atomic_write_text

SPLITS = ("forget", "retain", "test", "real")
ALL_SPLITS = SPLITS + ("teach",)
TASKS = ("generation", "classification", "cloze")
MODALITIES = ("image", "text")
CLOZE_BLANK = "__"
OPTION_LETTERS = "ABCD"


@dataclass(frozen=True)
class Record:
    """One benchmark question with its ground truth (see the module docstring for fields)."""

    id: str
    split: str
    task: str
    modality: str
    question: str
    answer: str
    options: tuple[str, ...] = field(default_factory=tuple)
    label: int | None = None
    image: str | None = None
    person: str | None = None
    fact: str | None = None

    def __post_init__(self):
        if self.split not in ALL_SPLITS:
            raise ValueError(f"unknown split {self.split!r} (known: {', '.join(ALL_SPLITS)})")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r} (known: {', '.join(MODALITIES)})")
        if not self.question or not self.answer:
            raise ValueError("question and answer must be non-empty")
        if self.task == "classification":
            if len(self.options) != 4 or self.label not in range(4):
                raise ValueError("classification needs 4 options and a label 0-3")
        if self.task == "cloze" and CLOZE_BLANK not in self.question:
            raise ValueError(f"cloze question must contain the blank {CLOZE_BLANK!r}")
        if self.modality == "image" and not self.image:
            raise ValueError("an image question needs an image")

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict (options as a list)."""
        d = asdict(self)
        d["options"] = list(self.options)
        return d


def record_from_json(obj: dict) -> Record:
    """Build a Record from a parsed JSON object; unknown keys are an error."""
    if not isinstance(obj, dict):
        raise ValueError("line is not a JSON object")
    known = set(Record.__dataclass_fields__)
    unknown = set(obj) - known
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    obj = dict(obj)
    obj["options"] = tuple(obj.get("options") or ())
    return Record(**obj)


def read_jsonl(path: str | Path, base_dir: str | Path | None = None, check_images: bool = True) -> list[Record]:
    """Read records from a JSONL file, failing on the first bad line with ``file:line``.

    Image paths are made absolute against ``base_dir`` (default: the file's folder); with
    ``check_images`` a missing or unreadable image file is an error naming the record.
    """
    path = Path(path)
    base = Path(base_dir) if base_dir else path.parent
    if not path.is_file():
        raise AsruError(f"{path}: no such file")
    records = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AsruError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): "
                                "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                rec = record_from_json(json.loads(line))
            except (json.JSONDecodeError, ValueError, TypeError) as exc:
                raise AsruError(f"{path}:{lineno}: malformed record: {exc}") from None
            if rec.image:
                img = Path(rec.image)
                img = img if img.is_absolute() else base / img
                if check_images and not _readable_image(img):
                    raise AsruError(f"{path}:{lineno}: image {img} is missing or unreadable")
                rec = Record(**{**rec.__dict__, "image": str(img)})
            records.append(rec)
    return records


def write_jsonl(path: str | Path, records: list[Record], base_dir: str | Path | None = None) -> None:
    """Write records atomically; image paths are stored relative to ``base_dir`` when inside it."""
    base = Path(base_dir).resolve() if base_dir else None
    lines = []
    for rec in records:
        d = rec.to_json()
        if base and d["image"]:
            p = Path(d["image"]).resolve()
            if p.is_relative_to(base):
                d["image"] = str(p.relative_to(base))
        lines.append(json.dumps(d, ensure_ascii=False))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def _readable_image(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False
