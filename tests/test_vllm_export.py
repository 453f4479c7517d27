"""An export (LoRA merged) loads unchanged in vLLM and answers like transformers (the vLLM CI job: scripts/ci_vllm.sh)."""

import pytest

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module", autouse=True)
def cpu_vllm(tmp_path_factory):
    """The test-only patches CPU vLLM needs (tests/vllm_fixtures.py)."""
    from tests.vllm_fixtures import apply_cpu_vllm_patches

    apply_cpu_vllm_patches(tmp_path_factory.mktemp("vllm-site"))


def test_vllm_loads_the_export_and_matches_transformers(tmp_path, red_image):
    import torch
    from vllm import LLM, SamplingParams

    from asru.config import ExportConfig
    from asru.core.models import load_model
    from asru.core.prompting import load_image, prompt_text
    from asru.stages.export.stage import export_model
    from tests.export_fixtures import train_lora_adapter
    from tests.vllm_fixtures import vllm_ready_qwen3_vl

    base = vllm_ready_qwen3_vl(tmp_path / "base")
    adapter = train_lora_adapter(base, tmp_path / "adapter", red_image, steps=2)
    out = export_model(str(adapter), tmp_path / "export", ExportConfig(verify_prompts=2, verify_max_new_tokens=4))
    assert (out / "video_preprocessor_config.json").is_file()  # carried over from the base model for vLLM

    lm = load_model(str(out), dtype="float32", device="cpu")
    questions = ["Where was Tamsk Orrelyn born?", "Name a colour."]
    new = 4
    hf = []
    for q in questions:
        enc = lm.processor(text=[prompt_text(lm, q, False)], return_tensors="pt")
        with torch.no_grad():
            seq = lm.model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        hf.append(seq[0, enc["input_ids"].shape[1]:].tolist())
    enc = lm.processor(text=[prompt_text(lm, "Who is this?", True)], images=[load_image(red_image)], return_tensors="pt")
    with torch.no_grad():
        seq = lm.model.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    hf_image_first = seq[0, -1].item()

    llm = LLM(model=str(out), dtype="float32", enforce_eager=True, max_model_len=512, seed=0,
              limit_mm_per_prompt={"image": 1, "video": 0})
    greedy = SamplingParams(temperature=0.0, max_tokens=new, min_tokens=new, ignore_eos=True)
    outs = llm.generate([prompt_text(lm, q, False) for q in questions], greedy)
    assert [list(o.outputs[0].token_ids) for o in outs] == hf
    img = llm.generate({"prompt": prompt_text(lm, "Who is this?", True), "multi_modal_data": {"image": load_image(red_image)}},
                       SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True))
    assert img[0].outputs[0].token_ids[0] == hf_image_first
