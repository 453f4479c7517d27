"""Shared fixtures: tiny random models built from configs (no download), cached per test session."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A session folder holding the tiny models."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_llama_path(tiny_dir):
    """Path of a saved tiny random Llama (SmolLM2 architecture) with the real Qwen tokenizer."""
    from asru.testing.tiny import tiny_llama

    return tiny_llama(tiny_dir / "llama")


@pytest.fixture(scope="session")
def tiny_qwen3_vl_path(tiny_dir):
    """Path of a saved tiny random Qwen3-VL with an image-only processor and real Qwen token ids."""
    from asru.testing.tiny import tiny_qwen3_vl

    return tiny_qwen3_vl(tiny_dir / "qwen3vl")


@pytest.fixture(scope="session")
def tiny_llava_path(tiny_dir):
    """Path of a saved tiny random LLaVA (SigLIP + Llama)."""
    from asru.testing.tiny import tiny_llava

    return tiny_llava(tiny_dir / "llava")


@pytest.fixture()
def tiny_llama(tiny_llama_path):
    """A freshly loaded tiny Llama (LoadedModel), safe to modify in a test."""
    from asru.core.models import load_model

    return load_model(str(tiny_llama_path))


@pytest.fixture()
def tiny_qwen3_vl(tiny_qwen3_vl_path):
    """A freshly loaded tiny Qwen3-VL (LoadedModel), safe to modify in a test."""
    from asru.core.models import load_model

    return load_model(str(tiny_qwen3_vl_path))


@pytest.fixture()
def tiny_llava(tiny_llava_path):
    """A freshly loaded tiny LLaVA (LoadedModel), safe to modify in a test."""
    from asru.core.models import load_model

    return load_model(str(tiny_llava_path))


@pytest.fixture(scope="session")
def red_image(tmp_path_factory):
    """Path of a small solid-colour PNG."""
    from PIL import Image

    p = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (64, 64), (220, 30, 30)).save(p)
    return p


@pytest.fixture(scope="module")
def steer_bench(tmp_path_factory):
    """A small synthetic benchmark (4 people, 1 forgotten) loaded as the steering stage gets it."""
    from asru.data.loaders import load_benchmark
    from asru.data.synthetic import generate_benchmark

    d = tmp_path_factory.mktemp("bench")
    generate_benchmark(d, people=4, forget_ratio=0.25, seed=0)
    return load_benchmark(d, ["forget", "retain"])


@pytest.fixture()
def everything_refuses(monkeypatch):
    """Random tiny models never refuse; count every answer as a refusal so the refusal filter keeps prompts."""
    import rewards.refusal

    monkeypatch.setattr(rewards.refusal, "is_refusal", lambda text: True)
