"""Activation redirection trained into the weights (RMU-style; REFERENCE.md section 1, step 2).

Only ``decoder_layers(model)[L].mlp.down_proj.weight`` is trained (the reference; ``params="mlp"``:
all of layer L's MLP weights; ``span=k``: the same weights of layers L-k..L, as RMU trains l-2..l).
With ``h_frozen`` the layer-L output of the model *before* training (computed once, up front, on the
same batches):

* forget loss = ``MSE(h_upd[last prompt token], h_frozen[last prompt token] + c * v)``
* retain loss = ``alpha * MSE(h_upd, h_frozen)`` over all non-padding tokens

``position`` picks the forget states that move: ``last`` (the reference), ``post_instruction``, ``all``
(every prompt token, per-token MSE, RMU-style) or ``answer``: the question's tokens, the
post-instruction tokens and every answer token of prompt + answer, with ``forget_answers`` /
``retain_answers`` given (retain: all tokens; ``image_tokens``: a forget image question's image tokens
move too, since on an image question the person is recognised there). A generated answer is read by the model token by token,
so only a change that also fires on answer tokens steers the whole answer the way an inference-time
add hook does; ``answer`` trains exactly that, on the answers steering should produce.

``base_states`` (from :func:`forget_base_states`) replaces ``h_frozen`` on the forget side: with
several steered layers, the base of layer L_k taken under add hooks at the earlier steered layers makes
``base + c * v`` the state inference-time steering at all of them reaches (hooks shift every token,
the system prompt's too, and later layers read those through attention; a redirection of the earlier
layers moves only the forget prompts' own tokens).

Forget and retain batches alternate (one AdamW step per batch, linear learning-rate decay to 0).
Each batch's forward runs in full once, up front, stopping right after layer L (later layers cannot
change layer L's output); training steps then replay only the trained layers (L - span .. L) from their
recorded input (the layers below and the vision tower are frozen), so a step costs about
``(span + 1) / num_layers`` of a full forward. The result is a plain checkpoint: no hooks
at inference. Reference defaults (Qwen3-VL-2B, layer 17): ``c = 3``, ``alpha = 1``, ``lr = 1e-4``,
batch size 2, 3 epochs.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from asru.core.errors import AsruError
from asru.core.layers import check_layer, decoder_layers
from asru.core.models import image_token_id
from asru.core.prompting import encode_prompts, encode_with_answers, modality_batches
from steering.activations import position_mask, post_instruction_length
from steering.span_replay import LayerTap, record_span

LOG = logging.getLogger("asru.steering")


@dataclass
class RedirectLog:
    """Training record: one entry per optimizer step, plus before/after distances."""

    layer: int
    steps: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    n_forget: int = 0
    n_retain: int = 0
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain dict for the stage report."""
        return {"layer": self.layer, "seconds": round(self.seconds, 3), "n_forget": self.n_forget,
                "n_retain": self.n_retain, "before": self.before, "after": self.after, "steps": self.steps}


def _mlp(model, layer: int):
    """``(block, mlp)`` of decoder layer ``layer``; ``mlp`` is None when the block has none we know."""
    block = decoder_layers(model)[check_layer(model, layer)]
    return block, getattr(block, "mlp", None) or getattr(block, "feed_forward", None)


def down_proj(model, layer: int):
    """The MLP down projection (``nn.Linear``) of decoder layer ``layer``."""
    block, mlp = _mlp(model, layer)
    for name in ("down_proj", "fc2", "dense_4h_to_h", "c_proj"):
        mod = getattr(mlp, name, None) if mlp is not None else None
        if mod is not None and hasattr(mod, "weight"):
            return mod
    raise AsruError(f"cannot find the MLP down projection of layer {layer} ({type(block).__name__}); redirection needs it")


def trainable_weights(model, layer: int, params: str) -> list:
    """The weights redirection trains: ``down_proj`` (the reference) or ``mlp`` (every linear weight of the layer's MLP)."""
    if params == "down_proj":
        return [down_proj(model, layer).weight]
    if params == "mlp":
        block, mlp = _mlp(model, layer)
        weights = [m.weight for m in mlp.modules() if hasattr(m, "weight") and getattr(m.weight, "ndim", 0) == 2] if mlp is not None else []
        if not weights:
            raise AsruError(f"cannot find the MLP weights of layer {layer} ({type(block).__name__})")
        return weights
    raise AsruError(f"unknown redirection parameters {params!r}: use down_proj or mlp")


def _prepare(lm, questions, images, batch_size, position, kind, answers=None, shift_answers=True, image_tokens=False):
    import torch

    n = len(questions)
    images = list(images) if images is not None else [None] * n
    batches = []
    for idx in modality_batches(images, n, batch_size, [len(q) for q in questions]):
        qs, ims = [questions[i] for i in idx], [images[i] for i in idx]
        if answers is not None:
            enc, labels = encode_with_answers(lm, qs, [answers[i] for i in idx], ims)
            w = enc["attention_mask"].float()
            batch = {"kind": kind, "enc": enc, "w": w, "n": len(idx), "per_token": True}
            if kind == "forget":
                moved = _generation_positions(lm, labels, qs, ims)
                if image_tokens:
                    moved = torch.maximum(moved, _image_positions(lm, enc["input_ids"]))
                batch["w"] = w * moved
                batch["decision"] = _decision_positions(labels)
                if not shift_answers:  # the answer's tokens keep their own states; only the prompt's move
                    is_answer = (labels != -100).float()
                    batch["keep"] = batch["w"] * is_answer
                    batch["w"] = batch["w"] * (1.0 - is_answer)
            batches.append(batch)
            continue
        enc = encode_prompts(lm, qs, ims)
        post = [post_instruction_length(lm, q, im is not None) for q, im in zip(qs, ims)] if position == "post_instruction" else None
        w = position_mask(enc["attention_mask"], position if kind == "forget" else "all", post)
        batches.append({"kind": kind, "enc": enc, "w": w.to(lm.device), "n": len(idx), "per_token": position == "all"})
    return batches


def forget_base_states(
    lm,
    layer: int,
    forget_questions: Sequence[str],
    forget_images: Sequence | None = None,
    *,
    batch_size: int = 2,
    position: str = "last",
    forget_answers: Sequence[str] | None = None,
) -> list:
    """Layer ``layer``'s output on :func:`redirect`'s forget batches (same batching), under whatever hooks are active.

    Run inside :func:`steering.hooks.add_steering_layers` at the steered layers before ``layer`` on the
    untrained model, and pass the result to ``redirect(..., base_states=...)``: layer ``layer`` then learns
    the states the hooks at all steered layers produce on the forget prompts.
    """
    import torch

    layer = check_layer(lm.model, layer)
    tap = LayerTap(lm.model, layer)
    batches = _prepare(lm, forget_questions, forget_images, batch_size, position, "forget",
                       forget_answers if position == "answer" else None)
    with torch.no_grad():
        return [tap.run(b["enc"]).detach().clone() for b in batches]


def _generation_positions(lm, labels, questions, images):
    """``[B, T]`` 0/1: the question's tokens, the post-instruction tokens and the answer tokens of each row.

    The answer positions are where the model generates from; the question's tokens (a forgotten name)
    are where the concept is easiest to tell apart. The earlier tokens (system prompt, template) read
    the same in forget and retain prompts, so moving them would contradict the retain loss.
    """
    import torch

    is_answer = labels != -100
    prompt_len = torch.where(is_answer.any(1), is_answer.float().argmax(1), torch.full_like(labels[:, 0], labels.shape[1]))
    post = torch.as_tensor([post_instruction_length(lm, q, im is not None, with_question=True) for q, im in zip(questions, images)],
                           device=labels.device)
    pos = torch.arange(labels.shape[1], device=labels.device).unsqueeze(0)
    return (pos >= (prompt_len - post).unsqueeze(1)).float()


def _image_positions(lm, input_ids):
    """``[B, T]`` 0/1: the image's own tokens (the patches the vision tower's features fill in).

    On an image question the person is recognised from these tokens: the question's words are the same
    for every person, so moving only them leaves what later layers read of the face where it was.
    """
    import torch

    token = image_token_id(lm.model)
    if token is None:
        return torch.zeros_like(input_ids, dtype=torch.float32)
    return (input_ids == token).float()


def _decision_positions(labels):
    """``[B, T]`` 0/1: each row's last prompt token, whose output state picks the answer's first token."""
    import torch

    is_answer = labels != -100
    last = (is_answer.float().argmax(1) - 1).clamp(min=0)
    mask = torch.zeros_like(labels, dtype=torch.float32)
    mask[torch.arange(labels.shape[0]), last] = 1.0
    return mask * is_answer.any(1, keepdim=True).float()


def _forget_loss(h, frozen, w, target_shift, per_token: bool = False):
    """MSE of the ``w``-pooled state to the pooled frozen state + shift; ``per_token``: of every masked token."""
    import torch

    if per_token:
        return _token_mse(h, frozen.float() + target_shift, w)

    h_pos = torch.einsum("bt,bth->bh", w, h.float())
    tgt = torch.einsum("bt,bth->bh", w, frozen.float()) + target_shift
    return torch.nn.functional.mse_loss(h_pos, tgt)


def _token_mse(h, frozen, mask):
    """Mean squared distance of ``h`` to ``frozen`` over the tokens ``mask`` weights."""
    d = ((h.float() - frozen.float()) ** 2) * mask.unsqueeze(-1)
    return d.sum() / (mask.sum() * h.shape[-1]).clamp(min=1)


def _evaluate(tap, batches, target_shift):
    """Mean forget distance to the target (and to frozen) and mean retain MSE over the batches."""
    import torch

    f_dist, f_n, r_mse, r_n, k_mse = 0.0, 0, 0.0, 0, None
    with torch.no_grad():
        for b in batches:
            h = tap.run(b)
            if b["kind"] == "forget":
                f_dist += float(_forget_loss(h, b["frozen"], b["w"], target_shift, b["per_token"])) * b["n"]
                f_n += b["n"]
                if "keep" in b:
                    k_mse = (k_mse or 0.0) + float(_token_mse(h, b["own"], b["keep"])) * b["n"]
            else:
                r_mse += float(_token_mse(h, b["frozen"], b["w"])) * b["n"]
                r_n += b["n"]
    out = {"forget_mse_to_target": f_dist / max(f_n, 1), "retain_mse": r_mse / max(r_n, 1)}
    if k_mse is not None:
        out["forget_answer_mse"] = k_mse / max(f_n, 1)
    return out


@dataclass(frozen=True)
class RedirectSettings:
    """How :func:`redirect` trains: the one place its defaults live (the steering config's redirection
    fields take theirs from here). The defaults are the reference's values for Qwen3-VL-2B."""

    coeff: float = 3.0  # target scale c: forget states move to frozen + c * v
    alpha: float = 1.0  # weight of the retain MSE
    lr: float = 1e-4  # AdamW, linear schedule to 0
    batch_size: int = 2
    epochs: int = 3
    weight_decay: float = 0.01
    position: str = "last"  # which forget-prompt states move: last, post_instruction, all, answer
    params: str = "down_proj"  # weights trained at each layer: down_proj or mlp
    span: int = 0  # also train this many layers before the steered one
    decision_weight: float = 0.0  # position answer: extra weight of each forget prompt's last token
    shift_answers: bool = True  # position answer: move the answer tokens too
    image_tokens: bool = False  # position answer: move a forget image question's image tokens too
    replay: bool = True  # replay the trained layers from their recorded input (False: full forwards)
    seed: int = 0  # order of the training batches


def redirect(
    lm,
    layer: int,
    vector,
    forget_questions: Sequence[str],
    retain_questions: Sequence[str],
    forget_images: Sequence | None = None,
    retain_images: Sequence | None = None,
    settings: RedirectSettings | None = None,
    *,
    forget_answers: Sequence[str] | None = None,
    retain_answers: Sequence[str] | None = None,
    base_states: Sequence | None = None,
    progress: bool = False,
    measure: bool = True,
    **overrides,
) -> RedirectLog:
    """Train layer ``layer``'s down projection (or whole MLP, ``params="mlp"``) so forget prompts' ``position`` states move to frozen + c*v.

    How it trains is ``settings`` (:class:`RedirectSettings`, default its defaults), with any of its fields
    replaced by keyword (``redirect(..., lr=0.3, epochs=10)``); the rest are the data.

    ``position="answer"`` needs ``forget_answers`` and ``retain_answers`` (one per question): each
    forget prompt's post-instruction and answer tokens moves to frozen + c*v; every retain token stays.

    ``span`` > 0 also trains the same weights of the ``span`` layers before ``layer`` (RMU updates layers
    l-2..l, span 2): the loss is still taken at ``layer``'s output, but earlier layers can tell the forget
    concept apart before it reaches it. When several layers are redirected in turn, a span that reaches
    back to an earlier steered layer would retrain that layer's weights too (its own redirection is not
    held): the steering stage cuts such spans short (:func:`asru.stages.steer.redirection.redirect_spans`).

    ``decision_weight`` (position ``answer``): the forget loss also adds, with this weight, the MSE at each
    prompt's last token alone. That token's state picks the answer's first word (a refusal or a fact) but
    is one of ~30 moved tokens in the per-token mean.

    ``shift_answers=False`` (position ``answer``): only the question and post-instruction tokens of the
    forget prompts move; the answer's tokens keep the states they had before training (retain-style MSE,
    weight ``alpha``). Pair it with natural refusals as ``forget_answers``: the shifted prompt makes the
    model start refusing and the refusal then reads on as the model itself would write it, where moving
    every answer token too reproduces whatever a constant shift does to generation (loops at large c).

    ``replay=False`` runs every training step as a full forward up to ``layer`` instead of replaying the
    trained layers from their recorded input (same result, slower; for benchmarks and checks).

    ``base_states``: the forget batches' layer-``layer`` states the shift is added to, from
    :func:`forget_base_states` with the same questions, answers, batch size and position (default: the
    model's own states before training).

    ``measure=False`` leaves out the before/after distances (two passes over every batch), for a caller
    that judges the result by the model's answers instead.

    Modifies ``lm.model`` in place (only the weights ``params`` names) and returns the :class:`RedirectLog`
    (per-step losses, forget distance to the target and retain MSE before and after).
    """
    import torch
    from tqdm.auto import tqdm

    rs = dataclasses.replace(settings or RedirectSettings(), **overrides)
    if not forget_questions:
        raise AsruError("redirection needs forget prompts: the forget set is empty")
    if not retain_questions:
        raise AsruError("redirection needs retain prompts: the retain set is empty")
    if rs.position == "answer":
        if forget_answers is None or retain_answers is None:
            raise AsruError("redirection at position 'answer' needs the forget and retain answers")
        if len(forget_answers) != len(forget_questions) or len(retain_answers) != len(retain_questions):
            raise AsruError("redirection needs one answer per question")
    if rs.epochs < 1 or rs.batch_size < 1 or rs.lr <= 0:
        raise AsruError("steer.epochs and steer.batch_size must be >= 1 and steer.lr > 0")
    if rs.span < 0:
        raise AsruError("steer.redirect_span must be >= 0")
    if rs.decision_weight < 0:
        raise AsruError("steer.redirect_decision_weight must be >= 0")
    model = lm.model
    layer = check_layer(model, layer)
    weight = down_proj(model, layer).weight
    v = torch.as_tensor(vector, dtype=torch.float32).to(lm.device)
    if v.shape != (weight.shape[0],):
        raise AsruError(f"direction has shape {tuple(v.shape)}, layer {layer} writes vectors of size {weight.shape[0]}")
    target_shift = rs.coeff * v
    first = max(0, layer - rs.span)
    with_answers = rs.position == "answer"
    forget = _prepare(lm, forget_questions, forget_images, rs.batch_size, rs.position, "forget", forget_answers if with_answers else None,
                      shift_answers=rs.shift_answers, image_tokens=rs.image_tokens)
    retain = _prepare(lm, retain_questions, retain_images, rs.batch_size, rs.position, "retain", retain_answers if with_answers else None)
    tap = record_span(model, first, layer, forget + retain, rs.replay)
    for b in forget:
        if "keep" in b:
            b["own"] = b["frozen"]  # base_states may replace the shifted tokens' base; kept tokens stay as they are
    if base_states is not None:
        if len(base_states) != len(forget) or any(tuple(t.shape) != tuple(b["frozen"].shape) for t, b in zip(base_states, forget)):
            raise AsruError("redirection: base_states do not match the forget batches; compute them with forget_base_states "
                            "and the same questions, answers, batch size and position")
        for b, t in zip(forget, base_states):
            b["frozen"] = t.to(b["frozen"].device, b["frozen"].dtype)

    log = RedirectLog(layer=layer, n_forget=len(forget_questions), n_retain=len(retain_questions))
    if measure:
        log.before = _evaluate(tap, forget + retain, target_shift)
    rng = random.Random(rs.seed)
    per_epoch = max(len(forget), len(retain))
    total = rs.epochs * per_epoch * 2
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [w for lay in range(first, layer + 1) for w in trainable_weights(model, lay, rs.params)]
    for w in trained:
        w.requires_grad_(True)
    opt = torch.optim.AdamW(trained, lr=rs.lr, weight_decay=rs.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    start = time.perf_counter()
    step = 0
    try:
        bar = tqdm(total=total, desc="redirection", disable=not progress, leave=False)
        for epoch in range(rs.epochs):
            f_order = list(range(len(forget)))
            r_order = list(range(len(retain)))
            rng.shuffle(f_order)
            rng.shuffle(r_order)
            for k in range(per_epoch):
                for b in (forget[f_order[k % len(forget)]], retain[r_order[k % len(retain)]]):
                    h = tap.run(b)
                    if b["kind"] == "forget":
                        loss = _forget_loss(h, b["frozen"], b["w"], target_shift, b["per_token"])
                        if rs.decision_weight and "decision" in b:
                            loss = loss + rs.decision_weight * _token_mse(h, b["frozen"].float() + target_shift, b["decision"])
                        if "keep" in b:
                            loss = loss + rs.alpha * _token_mse(h, b["own"], b["keep"])
                    else:
                        loss = rs.alpha * _token_mse(h, b["frozen"], b["w"])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    step += 1
                    log.steps.append({"step": step, "epoch": epoch, "kind": b["kind"], "loss": float(loss.detach()),
                                      "lr": sched.get_last_lr()[0]})
                    bar.update(1)
        bar.close()
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.eval()
    log.seconds = time.perf_counter() - start
    if not measure:
        LOG.info("redirection at layer %d: %d steps in %.1f s", layer, step, log.seconds)
    else:
        log.after = _evaluate(tap, forget + retain, target_shift)
        LOG.info("redirection at layer %d: %d steps in %.1f s; forget MSE to target %.4g -> %.4g, retain MSE %.4g -> %.4g",
                 layer, step, log.seconds, log.before["forget_mse_to_target"], log.after["forget_mse_to_target"],
                 log.before["retain_mse"], log.after["retain_mse"])
    return log
