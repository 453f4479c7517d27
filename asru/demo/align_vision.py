"""Contrastive alignment of the demo VLM's vision side with the language model's name embeddings.

A randomly initialised vision tower trained only through the language-model loss collapses here: the
text answers are learnt long before the image path carries any identity, and every portrait ends up
with the same projected features (one fixed guess for all image questions). LLaVA avoids this with a
feature-alignment stage before instruction tuning; this is the same idea at demo scale:

- the *target* of person ``i`` is the mean input embedding of the tokens of their name (frozen: LoRA
  never touches the embeddings), L2-normalised;
- the *image feature* of a portrait is the mean of its projected image tokens, L2-normalised;
- an InfoNCE loss over the known people (cosine logits / temperature) pulls each portrait to its
  person's name, and a norm penalty keeps every image token at the text embeddings' scale.

:func:`align_vision` runs it as a warm-up on the vision tower and projector only (cheap: no language
model pass); :func:`alignment_loss` is also added to the teaching loss so the alignment is kept while
the language model learns to read the image tokens. :func:`identification_accuracy` (nearest name
to a portrait's feature) is reported on the ``test`` split's unseen renders.
"""

from __future__ import annotations

import logging
import random
import time

from asru.core.errors import AsruError
from asru.core.layers import unwrap
from asru.core.prompting import load_image
from asru.demo.vision_params import is_vision_param

LOG = logging.getLogger("asru.data.align_vision")


def name_targets(lm, names: list[str]):
    """L2-normalised mean input embedding of each name's tokens (as it appears mid-sentence), ``[P, H]``."""
    import torch
    import torch.nn.functional as F

    emb = lm.model.get_input_embeddings().weight
    rows = []
    with torch.no_grad():
        for name in names:
            ids = lm.tokenizer(" " + name, add_special_tokens=False).input_ids
            if not ids:
                raise AsruError(f"person name {name!r} tokenises to nothing; check the benchmark's person names")
            rows.append(emb[torch.tensor(ids, device=emb.device)].float().mean(0))
    return F.normalize(torch.stack(rows), dim=-1)


def image_token_features(lm, images):
    """Projected image-token features of ``images`` (PIL), ``[n_images, tokens, H]``, with gradients."""
    model = unwrap(lm.model)
    inner = getattr(model, "model", model)
    fn = getattr(inner, "get_image_features", None) or getattr(model, "get_image_features", None)
    if fn is None:
        raise AsruError(f"{type(model).__name__} has no get_image_features: set teach.align_steps 0 for this model")
    proc = lm.processor.image_processor
    enc = proc(images=list(images), return_tensors="pt")
    device = next(model.parameters()).device
    # the vision side's dtype (the language model may be cast to another, teach.dtype)
    dtype = next((p.dtype for n, p in model.named_parameters() if is_vision_param(n)), next(model.parameters()).dtype)
    kwargs = {k: (v.to(device, dtype) if k == "pixel_values" else v.to(device)) for k, v in enc.items()
              if hasattr(v, "to")}
    feats = fn(**kwargs)
    feats = stack_image_features(getattr(feats, "pooler_output", feats))
    return feats.reshape(len(images), -1, feats.shape[-1])


def stack_image_features(feats):
    """Per-image projected features as one ``[n_images, tokens, H]`` tensor.

    transformers returns them as a tensor in older 5.x releases and as a list with one ``[tokens, H]``
    tensor per image from 5.24 (``pooler_output``).
    """
    import torch

    if isinstance(feats, (list, tuple)):
        if len({tuple(f.shape) for f in feats}) != 1:
            raise AsruError("images give different numbers of image tokens: vision alignment needs equal-size images")
        feats = torch.stack(list(feats))
    return feats


def output_image_features(out):
    """The projected image features a VLM forward computed, ``[n_images, tokens, H]``, or None.

    Read from ``out.image_outputs.pooler_output`` (transformers >= 5.24) or ``out.image_hidden_states``
    (earlier releases, deprecated since).
    """
    image_outputs = getattr(out, "image_outputs", None)
    if image_outputs is not None:
        feats = getattr(image_outputs, "pooler_output", None)
    elif "image_outputs" in getattr(type(out), "__dataclass_fields__", {}):
        return None  # a newer output class without images in this batch
    else:
        feats = getattr(out, "image_hidden_states", None)
    return stack_image_features(feats) if feats is not None else None


def alignment_loss(feats, targets, labels, temperature: float, reduction: str = "mean"):
    """InfoNCE of pooled image features ``[n, T, H]`` against name targets ``[P, H]`` for person ``labels``."""
    import torch.nn.functional as F

    z = F.normalize(feats.float().mean(1), dim=-1)
    return F.cross_entropy(z @ targets.T / temperature, labels, reduction=reduction)


def embedding_norm(lm) -> float:
    """Mean L2 norm of the language model's input embeddings: the scale image tokens are kept at."""
    import torch

    with torch.no_grad():
        return float(lm.model.get_input_embeddings().weight.norm(dim=-1).mean())


def norm_penalty(feats, norm: float):
    """Mean squared relative deviation of each image token's norm from ``norm``."""
    ratio = feats.float().reshape(-1, feats.shape[-1]).norm(dim=-1) / norm
    return ((ratio - 1) ** 2).mean()


def align_vision(lm, people: list[str], draw_image, cfg, progress: bool = True) -> dict:
    """Warm up the vision tower and projector: ``cfg.align_steps`` InfoNCE steps against name embeddings.

    ``draw_image(person)`` returns a fresh (augmented) image of a person. A pool of ``cfg.align_pool``
    images per person is drawn once and batches of ``cfg.align_batch`` are sampled from it. Only vision
    parameters are trained; everything else is restored to its previous ``requires_grad``.
    Returns statistics (seconds, first/last loss).
    """
    import torch
    from tqdm.auto import tqdm

    if len(people) < 2:
        raise AsruError("vision alignment needs at least two people with images; set teach.align_steps 0")
    t0 = time.perf_counter()
    targets = name_targets(lm, people)
    norm = embedding_norm(lm)
    pool = [(draw_image(p), i) for i, p in enumerate(people) for _ in range(cfg.align_pool)]
    render_s = time.perf_counter() - t0
    params = [p for n, p in lm.model.named_parameters() if is_vision_param(n)]
    saved = {id(p): p.requires_grad for p in lm.model.parameters()}
    for p in lm.model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.align_lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    curve = []
    lm.model.train()
    try:
        for _ in tqdm(range(cfg.align_steps), desc="aligning vision", disable=not progress, dynamic_ncols=True):
            batch = rng.sample(pool, min(cfg.align_batch, len(pool)))
            feats = image_token_features(lm, [b[0] for b in batch])
            labels = torch.tensor([b[1] for b in batch], device=feats.device)
            loss = alignment_loss(feats, targets.to(feats.device), labels, cfg.align_temperature) + norm_penalty(feats, norm)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve.append(round(float(loss.detach()), 4))
    finally:
        lm.model.eval()
        for p in lm.model.parameters():
            p.requires_grad_(saved[id(p)])
    seconds = time.perf_counter() - t0
    LOG.info("vision alignment: %d steps in %.0f s (%.0f s drawing %d images), loss %.3f -> %.3f",
             cfg.align_steps, seconds, render_s, len(pool), curve[0] if curve else 0, curve[-1] if curve else 0)
    return {"steps": cfg.align_steps, "seconds": round(seconds, 1), "images": len(pool),
            "loss_first": curve[0] if curve else None, "loss_last": curve[-1] if curve else None}


def identification_accuracy(lm, people: list[str], items: list[tuple[object, str]], batch_size: int = 32) -> float | None:
    """Share of ``(image, person)`` items whose pooled image feature is nearest to their own name's embedding."""
    import torch

    items = [(im, p) for im, p in items if p in people]
    if not items:
        return None
    targets = name_targets(lm, people)
    hits = 0
    with torch.no_grad():
        for k in range(0, len(items), batch_size):
            chunk = items[k:k + batch_size]
            imgs = [load_image(im) if isinstance(im, str) else im for im, _ in chunk]
            z = torch.nn.functional.normalize(image_token_features(lm, imgs).float().mean(1), dim=-1)
            pred = (z @ targets.to(z.device).T).argmax(-1).tolist()
            hits += sum(people[j] == p for j, (_, p) in zip(pred, chunk))
    return round(hits / len(items), 4)
