"""Saving the trained model never contacts the model hub (an offline machine would wait on retries)."""

import socket

import pytest
from transformers import GenerationConfig

from asru.core.lora import save_merged
from asru.core.models import load_model


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every outgoing connection."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return attempts


def test_save_merged_reads_the_generation_config_locally(tiny_llama_path, tmp_path, no_network):
    lm = load_model(str(tiny_llama_path), device="cpu")
    original = GenerationConfig.from_pretrained(tiny_llama_path)
    lm.model.generation_config.do_sample, lm.model.generation_config.temperature = True, 1.7  # rollout settings
    out = save_merged(lm.model, lm.processor, tmp_path / "model", generation_config_from=lm.source)
    saved = GenerationConfig.from_pretrained(out)
    assert saved.do_sample == original.do_sample and saved.temperature == original.temperature
    # a name that is no folder (an alias, a hub id) is looked up in the local cache only
    save_merged(lm.model, lm.processor, tmp_path / "model2", generation_config_from="HuggingFaceTB/not-in-the-cache")
    assert no_network == []
