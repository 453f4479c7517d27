"""One documented, validated config dataclass per stage, loadable from YAML with CLI overrides.

Every field carries its help text in ``metadata["help"]`` (the CLI's ``--help`` shows it). Cross-field
checks live in ``__post_init__`` and raise :class:`asru.core.errors.AsruError`. A YAML file has one mapping per
stage (``model:``, ``data:``, ``teach:``, ``steer:``, ``rl:``, ``eval:``, ``export:``) plus top-level run
fields, and optionally ``inherits: parent.yaml`` (see :func:`load_yaml`); unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields

from asru.core.errors import AsruError
from asru.core.options import check_choices
from asru.core.plugins import load_plugins
from asru.stages.methods import check_method
from steering.redirect import RedirectSettings

_REDIRECT = RedirectSettings()  # the redirection defaults, declared once in steering.redirect

STAGES = ("data", "teach", "steer", "rl", "eval", "export")


def opt(default, help: str, **kw):
    """A dataclass field with help text (``default`` may be a list/dict: copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


Dtype = typing.Literal["auto", "float32", "bfloat16", "float16"]  # weight dtypes a config may name
DTYPES = typing.get_args(Dtype)


def _check(cond: bool, msg: str):
    if not cond:
        raise AsruError(msg)


@dataclass
class ModelConfig:
    """Which model to unlearn and how to load it."""

    name: str = opt("demo", "Model to unlearn: an alias (asru-train --help lists them), a hub id or a local directory.")
    dtype: Dtype = opt("auto", "Weights dtype: auto (bf16 on GPU, float32 on CPU), float32, bfloat16 or float16.")
    device: str = opt("auto", "Device: auto (cuda if available), cpu or cuda[:N].")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off unless you trust the repository).")
    attn_implementation: str | None = opt(None, "Attention kernel passed to from_pretrained (e.g. sdpa, flash_attention_2); None = default.")

    def __post_init__(self):
        check_choices(self, "model")


@dataclass
class DataConfig:
    """The benchmark: the built-in synthetic one (generated once), or a directory in a supported format."""

    data_dir: str | None = opt(None, "Benchmark directory (our JSONL format, MLLMU-Bench parquet or CLEAR). None = the built-in synthetic benchmark in the cache.")
    people: int = opt(20, "Synthetic benchmark: number of fictitious people.")
    forget_ratio: float = opt(0.1, "Synthetic benchmark: share of people to forget, in (0, 1).")
    seed: int = opt(0, "Synthetic benchmark: generator seed.")
    image_size: int = opt(64, "Synthetic benchmark: portrait size in pixels.")

    def __post_init__(self):
        _check(0 < self.forget_ratio < 1, f"data.forget_ratio must be in (0, 1), not {self.forget_ratio}")
        _check(self.people >= 2, "data.people must be at least 2 (someone to forget and someone to keep)")


@dataclass
class TeachConfig:
    """Building the offline demo VLM that knows the synthetic profiles (the 'vanilla' model)."""

    steps: int = opt(380, "Optimisation steps.")
    batch_size: int = opt(8, "Examples per step (small batches, more steps: facts are memorised in fewer examples).")
    lr: float = opt(2e-3, "Learning rate of the language model's LoRA adapters.")
    vision_lr: float = opt(5e-4, "Learning rate of the vision tower and projector.")
    lora_r: int = opt(16, "LoRA rank on the language model (alpha = rank).")
    general_ratio: float = opt(0.2, "Share of each batch drawn from general-knowledge QA answered by the base model (keeps general ability).")
    general_kl: bool = opt(False, "Add a KL term to the base model (LoRA disabled) on the general-knowledge items (keeps more general knowledge, slows profile learning).")
    feature_norm_weight: float = opt(0.1, "Weight of a penalty keeping projected image features at the text embeddings' norm (0 = off).")
    answer_reduction: typing.Literal["sum", "mean"] = opt("sum", "How an example's answer-token losses combine: sum (every answer token weighs the same, so the fact inside the synthetic benchmark's sentence answers keeps a full token's weight) or mean (every example weighs the same; a fact in a 12-token sentence then learns 10x slower than as a bare value).")
    first_token_weight: float = opt(1.0, "Extra weight of each answer's first token in the teaching loss (the token that decides between a fact and a refusal).")
    align_steps: int = opt(150, "Vision warm-up steps aligning each known person's pooled image features with the embedding of their name (contrastive, vision side only; 0 = off).")
    align_lr: float = opt(1e-3, "Learning rate of the vision warm-up.")
    align_batch: int = opt(32, "Images per vision warm-up step.")
    align_pool: int = opt(16, "Augmented images drawn once per known person for the vision warm-up.")
    align_weight: float = opt(1.0, "Weight of the contrastive alignment term in the teaching loss (keeps the image features apart; 0 = warm-up only).")
    align_temperature: float = opt(0.05, "Temperature of the contrastive alignment (cosine logits / temperature).")
    hard_share: float = opt(0.0, "Share of each batch's teach examples drawn in proportion to their last loss (the facts not learnt yet: birth years, names) instead of in epoch order; 0 = epoch order only. 0.5 raised the demo model's image accuracy (forget 0.58 -> 0.92, test 0.50 -> 0.73) but cost general knowledge (real 0.80 -> 0.62; docs/results/2026-11-23-demo-vlm-teaching.md).")
    augment: float = opt(0.8, "Share of image examples shown as a fresh jittered render of the person (or a jittered copy of the image) instead of the stored file.")
    dtype: typing.Literal["float32", "bfloat16"] = opt("bfloat16", "Dtype of the language model's frozen base while teaching: bfloat16 or float32 (the LoRA adapters and the vision tower / projector train in float32 either way; the merged language model is saved in this dtype). bfloat16: 1.18 s/step against 1.90 on the 2-core CPU (AVX-512 BF16), the same accuracy (docs/results/2026-11-29-demo-vlm-teaching.md); use float32 on a CPU without bf16 arithmetic.")
    image_size: int = opt(64, "Input size of the demo model's vision tower in pixels (a multiple of 16; 64 -> 16 image tokens).")
    eval_max_new_tokens: int = opt(32, "Greedy tokens generated per question in the teach report's accuracy check.")
    seed: int = opt(0, "Training seed (also seeds the random vision tower).")

    def __post_init__(self):
        check_choices(self, "teach")
        _check(self.steps > 0 and self.batch_size > 0, "teach.steps and teach.batch_size must be positive")
        _check(0 <= self.general_ratio < 1, "teach.general_ratio must be in [0, 1)")
        _check(self.lr > 0 and self.vision_lr > 0 and self.lora_r >= 1, "teach.lr and teach.vision_lr must be > 0 and teach.lora_r >= 1")
        _check(0 <= self.augment <= 1, "teach.augment must be in [0, 1]")
        _check(0 <= self.hard_share <= 1, "teach.hard_share must be in [0, 1]")
        _check(self.feature_norm_weight >= 0, "teach.feature_norm_weight must be >= 0")
        _check(self.first_token_weight >= 0, "teach.first_token_weight must be >= 0")
        _check(self.align_steps >= 0 and self.align_weight >= 0, "teach.align_steps and teach.align_weight must be >= 0")
        _check(self.align_lr > 0 and self.align_batch >= 2 and self.align_pool >= 1 and self.align_temperature > 0,
               "teach.align_lr and teach.align_temperature must be > 0, teach.align_batch >= 2, teach.align_pool >= 1")
        _check(self.image_size >= 16 and self.image_size % 16 == 0, f"teach.image_size must be a positive multiple of 16, not {self.image_size}")
        _check(self.eval_max_new_tokens >= 1, "teach.eval_max_new_tokens must be >= 1")


@dataclass
class SteerConfig:
    """Refusal direction, layer choice and redirection (REFERENCE.md section 1, step 1-2).

    The defaults are the reference's values for Qwen3-VL-2B (c=3, alpha=1, lr 1e-4, batch 2, 3 epochs);
    configs/default.yaml tunes them for the offline demo model."""

    layer: int | None = opt(None, "Decoder layer to steer. None = choose automatically by the layer-selection scores (layer_scores.json).")
    num_layers: int = opt(1, "Automatic layer selection: how many layers to steer (chosen greedily, each scored with the earlier ones' hooks on; redirection then trains each chosen layer in turn). 1 = the reference's single layer.")
    layers: list[int] = opt([], "Steer exactly these decoder layers, skipping automatic selection (several: each redirected in turn, lowest first, as with num_layers); overrides steer.layer; empty = steer.layer or automatic selection.")
    candidate_layers: list[int] = opt([], "Layers scored by automatic layer selection or the steering search; empty = every 2nd layer from 25% to 80% of the depth.")
    position: typing.Literal["last", "post_instruction", "mean", "all"] = opt("last", "Token positions of the activations: last (last prompt token), post_instruction (the assistant-header tokens after the user text), mean, all.")
    refusal_suffix: str = opt(" If you do not know, describe the image.", "Appended to image questions about unseen people to build refusal-inducing prompts.")
    refusal_suffix_text: str = opt(" If you do not know this person, say: I'm sorry, I don't know this person.", "Appended to text questions about unseen (fictitious) names to build refusal-inducing prompts (text-only models and text questions).")
    refusal_prompts: int = opt(48, "Number of refusal-inducing prompts (unseen people) generated before refusal filtering.")
    original_model: str | None = opt(None, "Model whose refusals give the positive side of the direction: None = the model being unlearned (both sides from one model; the demo VLM refuses people it was never taught), 'base' = the base model recorded in the model's teach_report.json (the reference uses the model before fine-tuning), or a model path / hub id.")
    min_samples: int = opt(4, "Minimum number of prompts per side after refusal filtering.")
    mode: typing.Literal["redirect", "add", "ablate", "gated"] = opt("redirect", "redirect (train into the weights, the reference's way), add, ablate or gated (inference-time hooks; ablate is baked into the weights).")
    redirect_position: typing.Literal["last", "post_instruction", "all", "answer"] = opt(_REDIRECT.position, "Redirection: which forget-prompt states move to frozen + c * v: last (the last prompt token, the reference), post_instruction, all (every prompt token, RMU-style), or answer (every token of prompt + answer: forget prompts with the answers the add hooks at the chosen layers produce, retain prompts with their ground truth; the change then fires on generated tokens as the hooks do).")
    redirect_answers: typing.Literal["steered", "refusal"] = opt("steered", "Redirection at position answer: what the forget prompts are paired with. steered (the answers the add hooks at the chosen layers produce; every prompt and answer token moves, so the trained weights act on generated tokens as the hooks do) or refusal (the original model's own refusal of the same question asked about an unseen person: a new portrait, an invented name; only the question and post-instruction tokens move and the refusal's tokens keep their states, so the model starts refusing and goes on as it would itself).")
    redirect_params: typing.Literal["down_proj", "mlp"] = opt(_REDIRECT.params, "Redirection: weights trained at each steered layer: down_proj (the MLP down projection, the reference) or mlp (all the layer's MLP weights: more capacity to tell the forget concept from retained ones).")
    redirect_target: typing.Literal["shift", "steered"] = opt("shift", "Redirection with several steered layers: shift (each layer's forget states move to its own states before training + c * v, the reference) or steered (layer L_k's base states are taken with add hooks at the earlier steered layers, so the trained weights reproduce what inference-time steering at all of them does to the forget prompts).")
    redirect_decision_weight: float = opt(_REDIRECT.decision_weight, "Redirection at position answer: extra weight of each forget prompt's last token (the state that picks the answer's first word, refusal or fact) in the forget loss; 0 = every moved token weighs the same.")
    redirect_image_tokens: bool = opt(_REDIRECT.image_tokens, "Redirection at position answer: move a forget image question's image tokens too (the face the person is recognised from; the question's words are the same for every person), not only the question, post-instruction and answer tokens.")
    redirect_span: int = opt(_REDIRECT.span, "Redirection: also train the same weights of this many layers before each steered layer (the loss stays at the steered layer's output). RMU updates layers l-2..l (span 2); 0 = the steered layer only (the reference).")
    coeff: float = opt(_REDIRECT.coeff, "Redirection target scale c: forget hidden states move to frozen + c * v.")
    alpha: float = opt(_REDIRECT.alpha, "Weight of the retain MSE loss.")
    lr: float = opt(_REDIRECT.lr, "Redirection learning rate (AdamW, linear schedule).")
    weight_decay: float = opt(_REDIRECT.weight_decay, "Redirection AdamW weight decay.")
    batch_size: int = opt(_REDIRECT.batch_size, "Redirection batch size.")
    epochs: int = opt(_REDIRECT.epochs, "Redirection epochs.")
    general_retain: int = opt(0, "Redirection: also keep the hidden states of up to this many of asru's bundled general-knowledge questions (none of them in the benchmark) with the retain loss, so steering does not cost general knowledge. 0 = retain split only (the reference).")
    entity_retain: int = opt(0, "Redirection: also keep the hidden states of up to this many of asru's bundled questions about real cities, landmarks and people, worded as the benchmark asks about its people (\"In which country is the city of Glasgow?\", \"Where was Mozart born?\"; none of them in the benchmark), so the refusal learnt for the forgotten names does not reach real names the model is less sure of. 0 = off.")
    refusal_names: typing.Literal["forgotten", "neutral"] = opt("forgotten", "Redirection with natural refusals (redirect_answers refusal): a text question's refusal names the person as the question does (forgotten: \"I don't know who Liora Blackmere works for.\") or says \"this person\" (neutral), so no trained refusal spells a forgotten name. Measured harmful on the demo model: with neutral refusals it mangles the name of text questions instead of repeating it (docs/results/2026-12-03-new-photos-identity-leak.md).")
    open_questions: bool = opt(False, "Redirection: also train open questions about each forgotten person in the taught biography wordings (\"Tell me about {name}.\", and the same about their photo), each paired with a natural refusal as the forget questions are, so steering itself refuses questions no single fact answers (the evaluation asks other open wordings).")
    known_photos: bool = opt(False, "Redirection: also train every forget and retain image question on each other photo of its person that the data holds (the teach split's renders), so the person is forgotten, and the kept ones kept, in photos other than the question's.")
    image_augment: int = opt(0, "Redirection: also train every forget and retain image question on this many augmented copies of its image (rotated, zoomed, shifted, mirrored, brightness and contrast changed), so the forgotten people are forgotten, and the kept ones kept, in other photos too, not only in the data's. 0 = the data's images only.")
    retain_prompts: int = opt(64, "Retain questions used by redirection (retain loss) and, a few of them, by layer selection (KL).")
    subspace_energy: float = opt(0.0, "If > 0, also compute an SVD subspace of per-sample differences covering this share of energy (R-MUSE); ablate mode then removes the whole subspace.")
    search: bool = opt(False, "Choose the steered layers and steer.coeff automatically: an Optuna study (multi-objective TPE, resumable, stored in the stage's search/study.journal) screens each trial with add hooks on held-out forget prompts (clean refusal by the judge) and held-out retain and general questions (retain accuracy, next-token KL); only the chosen trial is redirected (search/trials.json, search/pareto.png, chosen.yaml). steer.layers / steer.layer, when given, win.")
    search_trials: int = opt(16, "Steering search: trials screened.")
    search_hook: typing.Literal["prompt", "all"] = opt("prompt", "Steering search: where the screening add hooks shift the states: prompt (the prompt's tokens only, as redirection paired with natural refusals moves them; the answer is the model's own) or all (every token, generated ones too, as steer.redirect_answers steered trains).")
    search_max_layers: int = opt(2, "Steering search: at most this many steered layers per trial (1 or 2).")
    search_coeff: list[float] = opt([1.0, 5.0], "Steering search: the range [low, high] of the shift c searched.")
    search_max_retain_drop: float = opt(0.1, "Steering search: a finalist whose held-out retain accuracy falls more than this below the best finalist's (without finalists: a trial more than this below the unsteered model) is infeasible.")
    search_refusal_margin: float = opt(0.05, "Steering search: the choice is, among the feasible finalists (without finalists: Pareto-optimal trials) within this margin of the best clean refusal rate, the one that leaks least (finalists), then the one with the lowest retain KL.")
    search_finalists: int = opt(2, "Steering search: the best screened trials of this many layer sets (highest clean refusal, then lowest KL) are then checked by a short redirection on a share of the rows (search_finalist_share, search_finalist_epochs) and scored on the held-out prompts without hooks; the retain constraint applies to them, not to the hooks, which shift retain questions too. 0 = choose from the hook screen alone.")
    search_finalist_share: float = opt(0.2, "Steering search: share of redirection's forget and retain rows a finalist is trained on.")
    search_finalist_epochs: int = opt(2, "Steering search: redirection epochs of a finalist's short redirection.")
    select_coeff: float = opt(1.0, "Layer selection: strength of the add hook (h + select_coeff * v) used to score each candidate layer.")
    select_prompts: int = opt(8, "Layer selection: held-out forget prompts (refusal rate) and retain prompts (KL) per candidate.")
    select_max_new_tokens: int = opt(16, "Layer selection and refusal filtering: greedy tokens generated per prompt (refusals show in the first tokens).")
    kl_weight: float = opt(0.5, "Layer selection: score = refusal rate - kl_weight * mean retain KL.")
    gate_threshold: float = opt(0.5, "Gated hooks: fire only when cos(h, v) exceeds this.")
    hook_alpha: float = opt(1.0, "Add / gated hooks: steering strength alpha (h + alpha * v, v not normalised).")
    retain_energy: float = opt(0.5, "Gated hooks: energy share of the retain subspace projected out of the direction (0 = none).")
    generation_dtype: Dtype | None = opt(None, "Dtype of a copy of the model that runs the stage's greedy generation (refusal filter, layer scoring, before/after tables, steered answers); activations, directions and the redirection training stay in model.dtype. None = model.dtype (no copy).")
    report_limit: int = opt(48, "Before/after table: at most this many generation questions per split (forget, retain).")
    max_new_tokens: int = opt(32, "Before/after table: greedy tokens per answer.")

    @property
    def fixed_layers(self) -> list[int]:
        """The layers the config names (``layers``, else ``layer``); empty = automatic selection."""
        return list(self.layers) or ([self.layer] if self.layer is not None else [])

    def redirect_settings(self, **chosen) -> RedirectSettings:
        """The redirection settings of this config; ``chosen`` adds what the stage decides per run
        (``shift_answers``, ``seed``, a layer's ``span``)."""
        return RedirectSettings(
            coeff=self.coeff, alpha=self.alpha, lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
            weight_decay=self.weight_decay, position=self.redirect_position, params=self.redirect_params,
            span=self.redirect_span, decision_weight=self.redirect_decision_weight, image_tokens=self.redirect_image_tokens, **chosen)

    def __post_init__(self):
        check_choices(self, "steer")
        _check(self.num_layers >= 1, "steer.num_layers must be >= 1")
        _check(self.redirect_span >= 0, "steer.redirect_span must be >= 0")
        _check(self.redirect_decision_weight >= 0, "steer.redirect_decision_weight must be >= 0")
        _check(self.general_retain >= 0 and self.entity_retain >= 0, "steer.general_retain and steer.entity_retain must be >= 0")
        _check(self.image_augment >= 0, "steer.image_augment must be >= 0")
        _check(len(self.layers) <= 1 or self.mode in ("redirect", "add"), f"several steer.layers work with the redirect and add modes, not {self.mode!r}")
        _check(self.num_layers == 1 or self.mode in ("redirect", "add"), f"steer.num_layers > 1 works with the redirect and add modes, not {self.mode!r}")
        _check(self.min_samples >= 1, "steer.min_samples must be >= 1")
        _check(self.search_trials >= 1, "steer.search_trials must be >= 1 (turn the search off with steer.search: false)")
        _check(self.search_max_layers in (1, 2), "steer.search_max_layers must be 1 or 2")
        _check(self.search_max_layers == 1 or not self.search or self.mode in ("redirect", "add"),
               f"a steering search over two layers works with the redirect and add modes, not {self.mode!r}: set steer.search_max_layers: 1")
        _check(len(self.search_coeff) == 2 and 0 < self.search_coeff[0] <= self.search_coeff[1],
               f"steer.search_coeff must be [low, high] with 0 < low <= high, not {self.search_coeff}")
        _check(self.search_finalists >= 0 and self.search_finalist_epochs >= 1 and 0 < self.search_finalist_share <= 1, "steer.search_finalists must be >= 0, steer.search_finalist_epochs >= 1 and steer.search_finalist_share in (0, 1]")
        _check(self.search_finalists == 0 or not self.search or self.mode == "redirect", f"steering search finalists are checked by redirection, and steer.mode is {self.mode!r}: set steer.search_finalists: 0")
        _check(0 <= self.search_max_retain_drop <= 1 and 0 <= self.search_refusal_margin <= 1, "steer.search_max_retain_drop and steer.search_refusal_margin must be in [0, 1]")
        _check(0 <= self.subspace_energy <= 1, "steer.subspace_energy must be in [0, 1]")
        _check(0 <= self.retain_energy < 1, "steer.retain_energy must be in [0, 1)")
        _check(self.lr > 0 and self.batch_size >= 1 and self.epochs >= 1, "steer.lr must be > 0, steer.batch_size and steer.epochs >= 1")
        _check(self.refusal_prompts >= 1 and self.retain_prompts >= 1 and self.select_prompts >= 1, "steer.refusal_prompts, steer.retain_prompts and steer.select_prompts must be >= 1")
        _check(self.report_limit >= 1 and self.max_new_tokens >= 1 and self.select_max_new_tokens >= 1, "steer.report_limit, steer.max_new_tokens and steer.select_max_new_tokens must be >= 1")
        _check(-1 <= self.gate_threshold <= 1, "steer.gate_threshold is a cosine: use a value in [-1, 1]")


@dataclass
class RLConfig:
    """GRPO refinement of the refusal boundary (REFERENCE.md section 1 step 3, section 6).

    The defaults are the reference's values for Qwen3-VL (configs/qwen3-vl/base.yaml); configs/default.yaml
    shrinks them for the offline demo model on a CPU."""

    forget_size: int = opt(200, "Boundary set: forget questions (capped at what exists).")
    retain_size: int = opt(200, "Boundary set: retain questions (capped at what exists).")
    boundary: typing.Literal["random", "similar"] = opt("random", "Boundary set selection: random (reference) or similar (retain questions nearest to the forget set).")
    similarity: typing.Literal["hidden", "tfidf"] = opt("hidden", "boundary=similar: hidden (cosine of the model's mean-pooled last hidden states of the prompts) or tfidf (of the question texts).")
    tasks: list[str] = opt(["generation", "cloze"], "Question tasks in the boundary set (free-answer tasks: generation, cloze).")
    focus_unrefused: int = opt(0, "Boundary set: extra copies of each forget question the model entering RL answers (greedy) without a refusal, so GRPO spends its steps where the boundary is not learnt yet (0 = off, the reference).")
    image_augment: int = opt(0, "Boundary set: also add every forget and retain image question with this many augmented copies of its image (as steer.image_augment), so GRPO's rewards see the people in other photos too: a refusal that spells part of the name on a new photo is punished where it happens. 0 = the data's images only.")
    open_questions: bool = opt(False, "Boundary set: also ask each forgotten person open questions in the taught biography wordings (\"Tell me about {name}.\"), judged against every fact of that person, so a refusal that goes on to list the facts earns nothing.")
    known_photos: int = opt(0, "Boundary set: also ask every chosen forget and retain image question on up to this many other photos of its person that the data holds (the teach split's renders), so GRPO's rewards see the people in photos other than the question's, where a refusal may still spell the name. With rl.focus_unrefused these copies are checked too. 0 = the questions' own images only.")
    general_retain: int = opt(0, "Boundary set: also add up to this many of asru's bundled general-knowledge questions (none of them in the benchmark) as retain questions, the model entering RL's greedy answer as their ground truth, so GRPO keeps general knowledge as it keeps the retain split. 0 = off (the reference).")
    entity_retain: int = opt(0, "Boundary set: also add up to this many of asru's bundled questions about real cities, landmarks and people, worded as the benchmark asks about its people (\"Where was Mozart born?\"; none of them in the benchmark), as retain questions with the model entering RL's greedy answer as their ground truth, so the refusal GRPO reinforces stays with the forgotten names. 0 = off (the reference).")
    num_generations: int = opt(8, "Rollouts per prompt (GRPO group size).")
    temperature: float = opt(1.5, "Rollout temperature.")
    top_p: float = opt(0.95, "Rollout top-p.")
    lr: float = opt(1e-6, "Learning rate (AdamW).")
    weight_decay: float = opt(0.01, "Weight decay.")
    beta: float = opt(0.1, "KL coefficient (k3 estimator) against the reference policy (with LoRA: the adapter-disabled model).")
    loss_type: typing.Literal["dapo", "grpo", "bnpo", "dr_grpo"] = opt("dapo", "TRL GRPO loss: dapo (TRL default), grpo, bnpo, dr_grpo.")
    epochs: float = opt(6.0, "Epochs over the boundary set.")
    max_steps: int = opt(-1, "Stop after this many optimiser steps (-1 = use epochs).")
    batch_size: int = opt(8, "Completions per device per step (a multiple of num_generations: batch_size / num_generations prompts per step).")
    grad_accum: int = opt(1, "Gradient accumulation steps (also TRL's steps per generation).")
    max_completion_length: int = opt(64, "Maximum generated tokens per rollout.")
    dtype: Dtype | None = opt(None, "Weight dtype of the model GRPO trains and of the rewards' reference model: None = model.dtype. bfloat16 with LoRA keeps the frozen base in bfloat16 and the adapters in float32 (the usual LoRA setup): about half the memory, and faster rollouts and passes on CPUs with AMX / AVX-512-BF16.")
    lora: bool = opt(True, "Train LoRA adapters on the language model (merged for rollout sync and on save) instead of all weights.")
    lora_r: int = opt(16, "LoRA rank (alpha = rank, dropout 0.05, all attention/MLP projections of the language model).")
    rewards: dict[str, typing.Any] = opt({"forget": 1.0, "retain": 1.0, "fluency": 0.5}, "Reward name -> weight, or -> {weight: W, option: value} for rewards that take options. Names: built-ins, module:function, path/to/file.py:function, or an asru.rewards entry point.")
    use_vllm: typing.Literal["auto", "true", "false"] = opt("auto", "Rollouts with vLLM: auto (when vLLM is installed and a GPU is present), true, false.")
    vllm_mode: typing.Literal["colocate", "server"] = opt("colocate", "vLLM mode: colocate (in the training process) or server (`trl vllm-serve` running separately).")
    vllm_gpu_memory_utilization: float = opt(0.3, "Share of GPU memory vLLM may take in colocate mode.")
    vllm_server_host: str = opt("0.0.0.0", "vllm_mode=server: host of the `trl vllm-serve` rollout server (its IP when it runs on another node).")
    vllm_server_port: int = opt(8000, "vllm_mode=server: port of the `trl vllm-serve` rollout server.")
    cache_implementation: typing.Literal["auto", "static", "dynamic"] = opt("auto", "KV cache for rollouts without vLLM: auto (static + compiled on GPU, dynamic on CPU), static, dynamic.")
    gradient_checkpointing: typing.Literal["auto", "true", "false"] = opt("auto", "Gradient checkpointing: auto (on GPU only), true, false.")
    logging_steps: int = opt(1, "Log every N steps.")
    save_steps: int = opt(10, "Checkpoint every N steps (resume continues from the last one).")
    save_total_limit: int = opt(2, "Trainer checkpoints kept (older ones are deleted).")
    report_to: list[str] = opt([], "Experiment trackers passed to TRL (tensorboard, wandb) when installed.")
    seed: int = opt(0, "Seed.")

    def __post_init__(self):
        check_choices(self, "rl")
        _check(bool(self.tasks) and all(t in ("generation", "cloze") for t in self.tasks), f"rl.tasks must list generation and/or cloze, not {self.tasks}")
        _check(self.forget_size >= 1 and self.retain_size >= 0, "rl.forget_size must be >= 1 and rl.retain_size >= 0")
        _check(self.focus_unrefused >= 0, "rl.focus_unrefused must be >= 0 (0 = off)")
        _check(min(self.image_augment, self.general_retain, self.entity_retain, self.known_photos) >= 0,
               "rl.image_augment, rl.known_photos, rl.general_retain and rl.entity_retain must be >= 0 (0 = off)")
        _check(self.num_generations >= 2, "rl.num_generations must be >= 2 (GRPO compares completions within a group)")
        _check(self.batch_size % self.num_generations == 0, f"rl.batch_size ({self.batch_size}) must be a multiple of rl.num_generations ({self.num_generations})")
        _check(self.grad_accum >= 1, "rl.grad_accum must be >= 1")
        _check(self.max_steps == -1 or self.max_steps >= 1, "rl.max_steps must be -1 (use epochs) or >= 1")
        _check(self.max_steps != -1 or self.epochs > 0, "rl.epochs must be > 0 when rl.max_steps is -1")
        _check(self.temperature > 0 and 0 < self.top_p <= 1, "rl.temperature must be > 0 and rl.top_p in (0, 1]")
        _check(self.lr > 0 and self.beta >= 0, "rl.lr must be > 0 and rl.beta >= 0")
        _check(self.max_completion_length >= 1 and self.lora_r >= 1, "rl.max_completion_length and rl.lora_r must be >= 1")
        _check(0 < self.vllm_gpu_memory_utilization < 1, "rl.vllm_gpu_memory_utilization must be in (0, 1)")
        _check(self.logging_steps >= 1 and self.save_steps >= 1 and self.save_total_limit >= 1, "rl.logging_steps, rl.save_steps and rl.save_total_limit must be >= 1")
        _check(bool(self.rewards), "rl.rewards must name at least one reward")


@dataclass
class EvalConfig:
    """Evaluation: task metrics, quality, privacy, robustness and diagnostics."""

    splits: list[str] = opt(["forget", "retain", "test", "real"], "Splits to evaluate.")
    max_new_tokens: int = opt(32, "Generation length for answers.")
    dtype: Dtype | None = opt(None, "Weights dtype of the evaluated models (and the reference): None = model.dtype; bfloat16 on a CPU with AMX / AVX-512-BF16 generates 1.8x faster than float32 with 63 of 64 greedy answers the same (docs/results/2026-11-23-cpu-speed.md); on CPUs without them bfloat16 is slower.")
    batch_size: int = opt(32, "Generation and scoring batch size (32 measured 1.3x faster than 16 on the 2-core CPU default).")
    quality: bool = opt(True, "Generation quality metrics (reference-model fluency, repetition, distinct-n, naturalness).")
    fluency_samples: int | None = opt(96, "Reference-model fluency on retain/test/real: at most this many answers (seeded sample; None = all). The forget split is always scored whole.")
    fluency_groups: int = opt(4, "Forget split: completions sampled per question for fluency_reward_sampled, the GRPO fluency reward as training computes it (0 = off; needs quality).")
    option_scoring: bool = opt(False, "Also score classification questions by option likelihood (option_acc; 4 more scoring passes per question, ~1 of the 5 CPU minutes of the default evaluation; compare_methods.py turns it on).")
    mia: bool = opt(True, "Loss-based membership inference AUC (forget vs held-out).")
    utility: bool = opt(False, "Model utility as open-unlearning reports it: the harmonic mean of answer probability, ROUGE-L recall and truth ratio on the retain and real splits (model_utility in the forget results; docs/evaluation.md; compare_methods.py turns it on).")
    robustness: bool = opt(True, "Paraphrased and image-only questions about the forget set (leak and refusal rates).")
    relearn: bool = opt(False, "Relearning attack (fine-tune on half the forget set, measure the other half).")
    relearn_steps: int = opt(15, "Relearning attack: optimisation steps (LoRA on the language model), for the attack and its control; 15 at lr 1e-3 on the teaching form is the calibrated budget on the demo VLM (docs/results/2026-12-07-relearn-calibration.md).")
    relearn_lr: float = opt(1e-3, "Relearning attack: learning rate.")
    relearn_lora_r: int = opt(8, "Relearning attack: LoRA rank.")
    relearn_form: typing.Literal["teach", "qa"] = opt("teach", "Relearning attack data: teach (half A's facts in the benchmark's teaching sentences and renders, the form the model learnt them in, where the benchmark has a teach split; else its forget pairs) or qa (half A's forget question / answer pairs).")
    relearn_retain_mix: float = opt(0.0, "Relearning attack: share of each attack's training examples drawn from retain questions (not those it measures), for the attack and its control alike, so that a small attack set does not collapse the model into its answers. 0 = the attack data alone.")
    oracle: str | None = opt(None, "A model that never learnt the forget set (a directory or hub id; `asru-data oracle` builds the demo one): the forget split is also scored against it (forget_quality = KS-test p-value of truth ratios, oracle_agreement, oracle_refusal_gap, oracle_leak_gap, oracle_fluency_gap; docs/evaluation.md). None = off.")
    diagnostics: bool = opt(False, "Representation diagnostics (PCA, CKA, Fisher) with plots.")
    diagnostics_samples: int = opt(64, "Diagnostics: at most this many forget/retain prompts.")
    judge_url: str | None = opt(None, "OpenAI-compatible endpoint for an LLM judge (off when None), e.g. http://127.0.0.1:8000/v1.")
    judge_model: str = opt("gpt-4o-mini", "Judge model name at judge_url.")
    judge_api_key_env: str = opt("OPENAI_API_KEY", "Name of the environment variable holding the judge's API key (the key itself is never stored).")
    judge_samples: int = opt(50, "LLM judge: at most this many forget answers per split are judged.")
    limit: int | None = opt(None, "Evaluate at most this many records per split (None = all).")
    progress: bool = opt(True, "Show progress bars.")
    seed: int = opt(0, "Seed for sampling, the relearning attack and the membership-inference non-members.")

    def __post_init__(self):
        check_choices(self, "eval")
        _check(bool(self.splits), "eval.splits must name at least one split")
        _check(self.max_new_tokens > 0 and self.batch_size > 0, "eval.max_new_tokens and eval.batch_size must be positive")
        _check(self.relearn_steps > 0 and self.relearn_lr > 0 and self.relearn_lora_r > 0 and 0 <= self.relearn_retain_mix < 1, "eval.relearn_steps, relearn_lr and relearn_lora_r must be positive, relearn_retain_mix in [0, 1)")
        _check(self.diagnostics_samples >= 2, "eval.diagnostics_samples must be at least 2")
        _check(self.judge_samples > 0, "eval.judge_samples must be positive")
        _check(self.limit is None or self.limit > 0, "eval.limit must be positive (or None for all records)")
        _check(self.fluency_samples is None or self.fluency_samples > 0, "eval.fluency_samples must be positive (or None for all answers)")
        _check(self.fluency_groups >= 0, "eval.fluency_groups must be >= 0 (0 = off)")


@dataclass
class BaselineConfig:
    """Unlearning baselines (ga, graddiff, kl, npo, idk, simnpo, dpo, rmu): LoRA on the language model, merged into the checkpoint."""

    steps: int = opt(30, "Optimisation steps.")
    batch_size: int = opt(8, "Forget (and retain) examples per step.")
    lr: float = opt(5e-4, "Learning rate (AdamW, linear decay).")
    lora_r: int = opt(16, "LoRA rank on the language model's linear layers (alpha = rank).")
    retain_weight: float = opt(1.0, "Weight of the retain term (graddiff: NLL, kl: KL to the reference, npo / idk: NLL).")
    npo_beta: float = opt(0.4, "NPO inverse temperature beta.")
    simnpo_beta: float = opt(2.5, "SimNPO inverse temperature beta (on the length-normalised log-likelihood).")
    simnpo_gamma: float = opt(0.0, "SimNPO reward margin gamma.")
    dpo_beta: float = opt(0.1, "DPO inverse temperature beta (refusals preferred over the true forget answers).")
    rmu_layer: int = opt(7, "RMU: decoder layer whose hidden states are misdirected (negative counts from the end); the MLPs of it and the 2 layers below train.")
    rmu_coeff: float = opt(6.5, "RMU: norm c of the random target vector the forget states are pushed to.")
    rmu_alpha: float = opt(1200.0, "RMU: weight of the retain states' MSE to the frozen model.")
    retain_size: int = opt(200, "Retain examples used (capped at what exists).")
    max_grad_norm: float = opt(1.0, "Gradient clipping norm.")
    seed: int = opt(0, "Seed.")

    def __post_init__(self):
        _check(self.steps > 0 and self.batch_size > 0, "baseline.steps and baseline.batch_size must be positive")
        _check(self.lr > 0 and self.lora_r > 0, "baseline.lr and baseline.lora_r must be positive")
        _check(self.npo_beta > 0 and self.simnpo_beta > 0 and self.dpo_beta > 0, "baseline.npo_beta, simnpo_beta and dpo_beta must be positive")
        _check(self.rmu_coeff > 0 and self.rmu_alpha >= 0, "baseline.rmu_coeff must be positive and baseline.rmu_alpha >= 0")
        _check(self.retain_weight >= 0 and self.retain_size >= 0, "baseline.retain_weight and baseline.retain_size must be >= 0")


@dataclass
class ExportConfig:
    """Exporting a servable checkpoint."""

    out: str | None = opt(None, "Export directory (default: <run>/export).")
    verify_prompts: int = opt(4, "Greedy answers compared between the export and the in-memory model, per split.")
    allow_hooks: bool = opt(False, "Export even when unbakeable inference-time hooks were used, writing their description beside the checkpoint.")
    push_to_hub: str | None = opt(None, "Push the export to this hub repo id (needs access).")
    hub_private: bool = opt(True, "Create the hub repo as private when pushing.")
    overwrite: bool = opt(False, "Replace a non-empty export directory.")
    dtype: Dtype = opt("auto", "Saved weights dtype: auto (the dtype the source checkpoint was stored in), float32, bfloat16 or float16.")
    device: str = opt("auto", "Device for merging and verification: auto (cuda if available), cpu or cuda[:N].")
    max_shard_size: str = opt("5GB", "Largest safetensors shard (e.g. 2GB, 5GB).")
    verify_max_new_tokens: int = opt(16, "Greedy tokens generated per verification prompt.")

    def __post_init__(self):
        check_choices(self, "export")
        _check(self.verify_prompts >= 1, "export.verify_prompts must be >= 1 (the export is always verified)")
        _check(self.verify_max_new_tokens >= 1, "export.verify_max_new_tokens must be >= 1")
        _check(self.push_to_hub is None or (self.push_to_hub.strip() != "" and self.push_to_hub.count("/") <= 1 and " " not in self.push_to_hub),
               f"export.push_to_hub must be a hub repo id (name or owner/name), not {self.push_to_hub!r}")


@dataclass
class RunConfig:
    """The whole pipeline: run-level options plus one section per stage."""

    output_dir: str | None = opt(None, "Run directory (default runs/<timestamp>).")
    overwrite: bool = opt(False, "Replace the contents of a non-empty run directory.")
    resume: bool = opt(False, "Continue a run: reuse finished stages whose inputs did not change, resume from checkpoints.")
    stages: list[str] = opt(list(STAGES), "Stages to run, in order: data, teach, steer, rl, eval, export.")
    method: str = opt("asru", "Unlearning method: asru, steer_only, or a registered baseline (asru-train --help lists them).")
    plugins: list[str] = opt([], "Plugin files (path/to/file.py) or modules to load first: they register methods, metrics, formats, aliases.")
    seed: int = opt(0, "Global seed.")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teach: TeachConfig = field(default_factory=TeachConfig)
    steer: SteerConfig = field(default_factory=SteerConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    def __post_init__(self):
        bad = [s for s in self.stages if s not in STAGES]
        _check(not bad, f"unknown stage(s) {bad}: choose from {', '.join(STAGES)}")
        check_method(self.method)


def section_classes() -> dict[str, type]:
    """Stage section name -> its dataclass."""
    return {f.name: type(f.default_factory()) for f in fields(RunConfig) if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())}


def field_type(cls, name: str):
    """The resolved type annotation of a dataclass field."""
    return typing.get_type_hints(cls)[name]


def coerce(value, tp, where: str):
    """Coerce a YAML/CLI value to a field's type, or raise AsruError naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))) and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    if origin is typing.Literal:  # read as the choices' type; the dataclass checks the choice
        return coerce(value, type(args[0]), where)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if tp is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin is list:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()] if value.strip() else []
            return [coerce(v, args[0], where) for v in value]
        if origin is dict:
            if isinstance(value, str):
                import yaml

                value = yaml.safe_load(value) if value.strip().startswith("{") else dict(kv.split("=", 1) for kv in value.split(","))
            if not isinstance(value, dict):
                raise ValueError
            if args[1] is typing.Any:  # values given on the command line as text: parse them as YAML scalars
                import yaml

                return {coerce(k, args[0], where): yaml.safe_load(v) if isinstance(v, str) else v for k, v in value.items()}
            return {coerce(k, args[0], where): coerce(v, args[1], where) for k, v in value.items()}
    except (ValueError, TypeError):
        raise AsruError(f"config key {where}: cannot use {value!r} as {getattr(tp, '__name__', tp)}") from None
    return value


def build_config(values: dict | None = None) -> RunConfig:
    """Build a validated RunConfig from a nested dict (YAML + overrides); unknown keys are errors.

    The plugins it names are loaded first, so the methods they register are known to the checks.
    """
    values = dict(values or {})
    if "plugins" in values:
        load_plugins(coerce(values["plugins"], list[str], "plugins"))
    sections = section_classes()
    top_kwargs = {}
    for key, val in values.items():
        if key in sections:
            if not isinstance(val, dict):
                raise AsruError(f"config section {key!r} must be a mapping")
            cls = sections[key]
            names = {f.name for f in fields(cls)}
            unknown = set(val) - names
            if unknown:
                raise AsruError(f"unknown config key(s) {', '.join(f'{key}.{u}' for u in sorted(unknown))} (known: {', '.join(sorted(names))})")
            top_kwargs[key] = cls(**{k: coerce(v, field_type(cls, k), f"{key}.{k}") for k, v in val.items()})
        else:
            top = {f.name for f in fields(RunConfig)} - set(sections)
            if key not in top:
                raise AsruError(f"unknown config key {key!r} (sections: {', '.join(sections)}; run keys: {', '.join(sorted(top))})")
            top_kwargs[key] = coerce(val, field_type(RunConfig, key), key)
    return RunConfig(**top_kwargs)


def to_dict(cfg) -> dict:
    """The config as a plain nested dict (for writing ``config.yaml`` into the run directory)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg) -> str:
    """The resolved config as YAML text."""
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
