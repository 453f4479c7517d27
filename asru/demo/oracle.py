"""The oracle: the demo model taught without the forget people, the model that never knew them.

Unlearning's gold standard is the model retrained without the forget data. The demo VLM is taught
locally, so the exact oracle can be built: :func:`build_oracle_model` runs the demo teaching recipe
(:func:`asru.demo.teach.build_demo_model`: same steps, seed, regularisers and base model) on the
benchmark's teach split minus every record about a forget person. The oracle then meets a forgotten
person the way the demo model meets anyone it was never taught: as a stranger it refuses.

It is cached like the demo model, keyed by what built it (``<cache>/demo-oracle-<benchmark>-<fingerprint>``),
so benchmarks and teach settings each get their own.
"""

from __future__ import annotations

import json
from pathlib import Path

from asru.config import TeachConfig
from asru.core.errors import AsruError
from asru.data.loaders import available_splits, load_benchmark
from asru.demo.teach import build_demo_model, fingerprint, keyed_cache_dir


def forget_people(data_dir: Path) -> list[str]:
    """The names of the people the benchmark's forget split asks about (``profiles.json``'s list when the
    synthetic generator wrote one, else the forget records' ``person`` field), sorted."""
    profiles = Path(data_dir) / "profiles.json"
    if profiles.is_file():
        names = json.loads(profiles.read_text(encoding="utf-8")).get("forget_people")
        if names:
            return sorted(names)
    if "forget" not in available_splits(data_dir):
        return []
    return sorted({r.person for r in load_benchmark(data_dir, ["forget"])["forget"] if r.person})


def oracle_model_dir(data_dir: Path, cfg: TeachConfig, base_model: str | None = None) -> Path:
    """Where the oracle of ``data_dir`` taught with ``cfg`` is cached."""
    return keyed_cache_dir("demo-oracle", data_dir, fingerprint(data_dir, cfg, base_model, forget_people(data_dir)))


def build_oracle_model(data_dir: Path, cfg: TeachConfig, out_dir: Path | None = None, overwrite: bool = False, *,
                       base_model: str | None = None, progress: bool = True) -> Path:
    """Teach the demo recipe on ``data_dir`` without its forget people; return the model directory (cached).

    Raises a one-line :class:`AsruError` for a benchmark without teaching data (the oracle must be taught
    exactly as the vanilla model was, so it needs the records the vanilla model learnt from) or without
    forget people."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise AsruError(f"benchmark directory {data_dir} does not exist: make one with 'asru-data generate --out {data_dir}'")
    if "teach" not in available_splits(data_dir):
        raise AsruError(f"the oracle needs the teaching data the vanilla model learnt from (a teach split, as the "
                        f"synthetic benchmark has); {data_dir} has none, so no model that never knew can be taught")
    people = forget_people(data_dir)
    if not people:
        raise AsruError(f"{data_dir} names no forget people (profiles.json or the forget split's person field): "
                        "the oracle has nobody to leave out")
    out = Path(out_dir) if out_dir is not None else oracle_model_dir(data_dir, cfg, base_model)
    return build_demo_model(data_dir, cfg, out, overwrite, base_model=base_model, progress=progress,
                            exclude_people=people)
