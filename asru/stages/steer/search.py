"""Automatic steering configuration: an Optuna study over the steered layers and the shift ``c``.

With ``steer.search`` on (and no ``steer.layers`` / ``steer.layer`` given, which win) the steering stage
runs ``steer.search_trials`` trials before redirection. A trial picks up to ``steer.search_max_layers``
layers from the candidates and a coefficient in ``steer.search_coeff``, and is *screened* cheaply: add hooks
``h + c * v`` at those layers on the generation copy (on the prompt's tokens only with ``steer.search_hook:
prompt``), greedy answers to the held-out forget prompts (the ones the direction was not computed from) and
to held-out retain questions, and the next-token KL to the unsteered model on held-out retain and bundled
general questions. Every answer is judged by
:func:`rewards.judge.judge`, as the evaluation judges it:

* ``refusal`` (maximised) — share of forget answers that are clean refusals (a refusal that leaks no fact
  and no part of the name, and is not degenerate);
* ``kl`` (minimised) — mean KL(unsteered || steered) of the retain and general questions' next token;
* ``retain`` — share of retain answers stating their ground truth. With ``steer.search_finalists`` = 0 a
  trial that loses more than ``steer.search_max_retain_drop`` of the unsteered model's retain accuracy is
  infeasible (Optuna's constraint), whatever it does to the forget set. The hooks shift the retain
  questions too, which redirection is trained not to do, so by default (finalists > 0) the constraint is
  applied after a short redirection of the best trials instead (:mod:`asru.stages.steer.finalists`), whose
  forget side adds forget image questions (free answer and fill-in-the-blank, where naming the person is the
  leak) to the held-out prompts.

The sampler is Optuna's multi-objective TPE with that constraint (``Trial.set_constraint``), re-seeded with ``seed + trial number``
before each trial, so a study resumed after an interruption asks the same trials as one that ran
through. The study lives in ``search/study.journal`` in the stage directory (Optuna's journal file); a
rerun reuses its finished trials, and a journal written for another model, benchmark or search space is
refused by name. Without finalists the chosen trial is, among the feasible Pareto-optimal ones, the one
with the lowest KL whose refusal is within ``steer.search_refusal_margin`` of the best refusal found; with
finalists the redirected finalists' scores are compared the same way, the lowest leak deciding before the KL. When nothing feasible refuses at all
the search stops with an error instead of choosing a no-op. The chosen settings are then redirected on
all of the rows.

Written: ``search/trials.json`` (every trial and finalist, the Pareto front and the choice marked),
``search/finalists.json`` (the finalists' scores, reused by a resumed search), ``search/pareto.png``
(refusal against KL) and ``chosen.yaml`` in the stage directory: the run's config with the chosen
``steer.layers`` and ``steer.coeff`` and the search off, for ``--config runs/x/steer/chosen.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from asru.core.errors import AsruError
from asru.core.layers import check_layer
from asru.core.prompting import generate
from asru.core.rundir import atomic_write_json, atomic_write_text
from asru.data.general_questions import general_retain_questions
from asru.stages.steer.finalists import check_finalists, choose_finalist, format_finalists
from asru.stages.steer.trial import Trial
from rewards.judge import judge
from steering.hooks import add_steering_layers
from steering.layer_select import mean_kl, next_token_logprobs

LOG = logging.getLogger("asru.steer")

STUDY_NAME = "steer-search"
NO_LAYER = -1  # a trial's second layer "none": it steers one layer only
# Finalists are few, so their retain answers are judged on 4x the screen's retain questions: on the screen's 8,
# one lost answer (0.125) is already past the 0.1 drop a finalist may lose, on 32 it is 0.03.
FINALIST_RETAIN_FACTOR = 4
# ... and their forget side on as many more of the forget image questions (free answer and fill-in-the-blank):
# where the question does not name the person, naming them is the leak a redirected layer set may still make
# (on seed 1 / forget ratio 0.3, "Quilla's favorite hobby is fishing." on 15 of 51 after steering)
FINALIST_FORGET_FACTOR = 4
FINALIST_FORGET_TASKS = ("generation", "cloze")


@dataclasses.dataclass
class ScreenSet:
    """What every trial is screened on: held-out forget records, held-out retain records (with ground
    truth) and the questions whose next-token distribution must not move (retain and general)."""

    forget: list
    retain: list
    kl_questions: list[str]
    kl_images: list
    finalist_retain: list = dataclasses.field(default_factory=list)  # more retain records, for the few finalists
    finalist_forget: list = dataclasses.field(default_factory=list)  # more forget image records, for the finalists

    @property
    def finalist_forget_pool(self) -> list:
        """The forget records the finalists are scored on (and none of them trained on): the screen's and the extra ones."""
        return self.forget + self.finalist_forget

    def digest(self) -> str:
        """A hash of the prompts (and ground truths), for the study's fingerprint."""
        rows = [(r.id, r.question, str(r.image), r.answer)
                for r in self.forget + self.retain + self.finalist_retain + self.finalist_forget]
        return hashlib.sha256(json.dumps([rows, self.kl_questions, [str(i) for i in self.kl_images]]).encode()).hexdigest()[:16]


def screen_set(prompts, retain: Sequence, all_records: Sequence, sc, seed: int) -> ScreenSet:
    """The held-out screening prompts: the forget prompts layer selection holds out, up to
    ``steer.select_prompts`` retain generation questions redirection does not train on, and as many bundled
    general questions beyond those redirection keeps. The finalists' retain answers are judged on up to
    ``FINALIST_RETAIN_FACTOR`` times as many retain questions (the screen's among them), their forget answers
    on up to ``FINALIST_FORGET_FACTOR`` times as many forget image questions besides the screen's (free answer
    and fill-in-the-blank; none of them in a finalist's training share)."""
    n = sc.select_prompts
    forget = [prompts.forget_records[i] for i in prompts.held_out] or [prompts.forget_records[i] for i in prompts.direction_ids[:n]]
    screened = {r.id for r in forget}
    images = [r for r in prompts.forget_records if r.image and r.task in FINALIST_FORGET_TASKS and r.id not in screened]
    more_forget = random.Random(seed + 3).sample(images, min(FINALIST_FORGET_FACTOR * n, len(images)))
    trained = {r.id for r in prompts.retain_records}
    spare = [r for r in retain if r.task == "generation" and r.id not in trained]
    pool = spare or [r for r in retain if r.task == "generation"]
    held = random.Random(seed + 2).sample(pool, min(FINALIST_RETAIN_FACTOR * n, len(pool)))
    held_retain = held[:n]
    general = general_retain_questions(all_records, sc.general_retain + n)[sc.general_retain:]
    return ScreenSet(forget=forget, retain=held_retain,
                     kl_questions=[r.question for r in held_retain] + general,
                     kl_images=[r.image for r in held_retain] + [None] * len(general), finalist_retain=held,
                     finalist_forget=more_forget)


def _judged(lm, records: Sequence, max_new_tokens: int) -> tuple[list[str], list]:
    answers = generate(lm, [r.question for r in records], [r.image for r in records], max_new_tokens=max_new_tokens, batch_size=16)
    return answers, [judge(a, r) for a, r in zip(answers, records)]


def _share(flags) -> float:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def retain_flags(lm, records: Sequence, max_new_tokens: int) -> list[bool]:
    """Per record, whether ``lm``'s greedy answer states its ground truth (the judge's fact leak)."""
    return [v.fact_leak for v in _judged(lm, records, max_new_tokens)[1]]


def score(lm, prompts: ScreenSet, base_logprobs, max_new_tokens: int, retain: Sequence | None = None,
          forget: Sequence | None = None) -> dict:
    """The screening scores of ``lm`` as it is (hooks on or weights trained): clean refusal and leak (on
    ``forget``, default the screen's forget records), retain accuracy (on ``retain``, default the screen's
    retain records) and next-token KL to the unsteered model (see the module docstring)."""
    answers, verdicts = _judged(lm, prompts.forget if forget is None else forget, max_new_tokens)
    _, kept = _judged(lm, prompts.retain if retain is None else retain, max_new_tokens)
    kl = mean_kl(base_logprobs, next_token_logprobs(lm, prompts.kl_questions, prompts.kl_images)) if prompts.kl_questions else 0.0
    return {"refusal": _share(v.clean_refusal for v in verdicts), "leak": _share(v.leak for v in verdicts),
            "retain": _share(v.fact_leak for v in kept), "kl": round(kl, 5), "example": answers[0][:100] if answers else ""}


def screen(lm, dirs: dict, layers: Sequence[int], coeff: float, prompts: ScreenSet, base_logprobs, max_new_tokens: int,
           prompt_only: bool = True) -> dict:
    """:func:`score` with add hooks at ``layers`` and shift ``coeff``; with ``prompt_only`` the hooks shift the
    prompt's tokens only, as redirection paired with natural refusals does."""
    with add_steering_layers(lm.model, list(layers), dirs, coeff, prompt_only=prompt_only):
        return score(lm, prompts, base_logprobs, max_new_tokens)


def search_space(lm, candidates: Sequence[int], sc) -> dict:
    """The searched layers (each checked by :func:`asru.core.layers.check_layer`: a one-line error for a layer
    the model lacks) and coefficient range."""
    layers = sorted({check_layer(lm.model, c) for c in candidates})
    if not layers:
        raise AsruError("steering search: no candidate layer to search; set steer.candidate_layers")
    lo, hi = sc.search_coeff
    return {"layers": layers, "max_layers": sc.search_max_layers, "coeff": [float(lo), float(hi)]}


def _suggest(trial, space: dict) -> tuple[list[int], float]:
    first = trial.suggest_categorical("layer_a", space["layers"])
    chosen = {first}
    if space["max_layers"] > 1:
        second = trial.suggest_categorical("layer_b", [NO_LAYER, *space["layers"]])
        chosen.add(second)
    lo, hi = space["coeff"]
    return sorted(chosen - {NO_LAYER}), trial.suggest_float("coeff", lo, hi)


def open_study(path: Path, fingerprint: str):
    """The study in the journal file ``path`` (created if absent); a journal of another fingerprint is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=["maximize", "minimize"],
                                load_if_exists=True)
    found = study.user_attrs.get("fingerprint")
    if found is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif found != fingerprint:
        raise AsruError(f"{path} holds a steering search of another model, benchmark or search space: "
                        "delete it (or run with --overwrite) to search again")
    return study


def run_trials(study, n_trials: int, seed: int, objective) -> None:
    """Run trials until ``n_trials`` are complete, re-seeding the sampler per trial number (see module docstring)."""
    import optuna
    from tqdm.auto import tqdm

    def complete() -> int:
        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))

    done = complete()
    if done:
        LOG.info("steering search: %d of %d trials already in the study, resuming", done, n_trials)
    with tqdm(total=n_trials, initial=min(done, n_trials), desc="steering search") as bar:
        while complete() < n_trials:
            number = len(study.trials)
            study.sampler = optuna.samplers.TPESampler(seed=seed + number, n_startup_trials=max(4, n_trials // 3))
            study.optimize(objective, n_trials=1)
            bar.update(1)


def trials_of(study) -> list[Trial]:
    """The study's complete trials as :class:`Trial` rows, the Pareto front marked."""
    import optuna

    rows = [Trial(number=t.number, layers=t.user_attrs["layers"], coeff=round(t.params["coeff"], 4),
                  refusal=t.values[0], kl=t.values[1], leak=t.user_attrs["leak"], retain=t.user_attrs["retain"],
                  feasible=t.user_attrs["retain_drop_excess"] <= 0, example=t.user_attrs.get("example", ""))
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    feasible = [r for r in rows if r.feasible]
    for r in feasible:
        r.pareto = not any(o.refusal >= r.refusal and o.kl <= r.kl and (o.refusal > r.refusal or o.kl < r.kl) for o in feasible)
    return rows


def choose(rows: list[Trial], margin: float) -> Trial:
    """The feasible Pareto-optimal trial with the lowest KL among those within ``margin`` of the best refusal."""
    front = [r for r in rows if r.pareto]
    if not front:
        raise AsruError("steering search: no trial kept the retain answers (every one lost more than "
                        "steer.search_max_retain_drop); widen steer.search_coeff downwards or add trials")
    best = max(r.refusal for r in front)
    if best <= 0:
        raise AsruError("steering search: no trial that kept the retain answers made a held-out forget prompt refuse "
                        "(add hooks at these layers garble or change nothing): widen steer.candidate_layers or "
                        "steer.search_coeff, or set steer.layers and steer.coeff yourself")
    pick = min((r for r in front if r.refusal >= best - margin), key=lambda r: (r.kl, -r.refusal, r.number))
    pick.chosen = True
    return pick


def format_trials(rows: list[Trial]) -> str:
    """The trials as a fixed-width table (``P`` = Pareto front, ``*`` = chosen, ``x`` = infeasible)."""
    lines = ["trial  layers   coeff  refusal  leak  retain      kl  mark", "-----  -------  -----  -------  ----  ------  ------  ----"]
    for r in rows:
        mark = "*" if r.chosen else "P" if r.pareto else "x" if not r.feasible else ""
        lines.append(f"{r.number:>5}  {','.join(map(str, r.layers)):<7}  {r.coeff:>5.2f}  {r.refusal:>7.2f}  {r.leak:>4.2f}  "
                     f"{r.retain:>6.2f}  {r.kl:>6.3f}  {mark}")
    return "\n".join(lines)


def plot_front(rows: list[Trial], path: Path) -> None:
    """Refusal against retain KL for every trial, the Pareto front joined and the choice starred (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for feasible, color, label in ((True, "tab:blue", "feasible"), (False, "tab:gray", "loses retain answers")):
        pts = [r for r in rows if r.feasible == feasible]
        if pts:
            ax.scatter([r.kl for r in pts], [r.refusal for r in pts], c=color, s=24, label=label)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.kl)
    if front:
        ax.plot([r.kl for r in front], [r.refusal for r in front], c="tab:orange", label="Pareto front")
    for r in rows:
        if r.chosen:
            ax.scatter([r.kl], [r.refusal], marker="*", s=220, c="tab:red", label=f"chosen: layers {r.layers}, c {r.coeff:.2f}")
    ax.set_xlabel("retain next-token KL to the unsteered model")
    ax.set_ylabel("held-out forget: clean refusal rate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def search_steering(lm, dirs: dict, candidates: Sequence[int], screen_prompts: ScreenSet, sc, out_dir: Path,
                    model_id: str, seed: int, check=None):
    """Run (or resume) the study in ``out_dir/search`` and return the chosen trial (see the module docstring):
    a screened :class:`Trial`, or with ``steer.search_finalists`` a :class:`~asru.stages.steer.finalists.Finalist`
    checked by ``check(layers, coeff, score_model)`` (:func:`~asru.stages.steer.finalists.redirect_and_score`)."""
    if not screen_prompts.forget:
        raise AsruError("steering search needs held-out forget prompts, and there are none: the forget set is too small")
    space = search_space(lm, candidates, sc)
    missing = [c for c in space["layers"] if c not in dirs]
    if missing:
        raise AsruError(f"steering search: no direction computed for candidate layer(s) {missing}")
    two_rounds = sc.search_finalists > 0 and check is not None
    settings = {"space": space, "tokens": sc.select_max_new_tokens, "drop": sc.search_max_retain_drop, "seed": seed,
                "hook": sc.search_hook, "retain_on_hooks": not two_rounds}
    fp = hashlib.sha256(json.dumps([model_id, screen_prompts.digest(), settings], sort_keys=True).encode()).hexdigest()[:16]
    study = open_study(out_dir / "search" / "study.journal", fp)
    base_lp = next_token_logprobs(lm, screen_prompts.kl_questions, screen_prompts.kl_images) if screen_prompts.kl_questions else None
    n_screen = len(screen_prompts.retain)
    final_retain = (screen_prompts.finalist_retain or screen_prompts.retain) if two_rounds else screen_prompts.retain
    final_forget = screen_prompts.finalist_forget_pool
    base_kept = retain_flags(lm, final_retain, sc.select_max_new_tokens)
    # screen_set makes the screen's retain questions the first of the finalists' pool: one judging gives both accuracies
    base_retain = _share(base_kept[:n_screen] if final_retain[:n_screen] == screen_prompts.retain
                         else retain_flags(lm, screen_prompts.retain, sc.select_max_new_tokens))

    def objective(trial):
        layers, coeff = _suggest(trial, space)
        s = screen(lm, dirs, layers, coeff, screen_prompts, base_lp, sc.select_max_new_tokens,
                   prompt_only=sc.search_hook == "prompt")
        trial.set_user_attr("layers", layers)
        trial.set_user_attr("leak", s["leak"])
        trial.set_user_attr("retain", s["retain"])
        trial.set_user_attr("example", s["example"])
        # with finalists the retain answers are judged after redirection, not under hooks that shift them too
        excess = round(base_retain - s["retain"] - sc.search_max_retain_drop, 4) if not two_rounds else 0.0
        trial.set_user_attr("retain_drop_excess", excess)
        trial.set_constraint("retain_drop", excess)  # > 0: infeasible
        return s["refusal"], s["kl"]

    run_trials(study, sc.search_trials, seed, objective)
    rows = trials_of(study)
    pick, failure, finals, base_final = None, None, [], None
    try:
        if two_rounds:
            fin_fp = hashlib.sha256(json.dumps([fp, sc.search_finalists, sc.search_finalist_share, sc.search_finalist_epochs,
                                                sc.redirect_settings().__dict__], sort_keys=True, default=str).encode()).hexdigest()[:16]
            base_final = _share(base_kept)
            finals = check_finalists(rows, sc.search_finalists, check,
                                     lambda m: score(m, screen_prompts, base_lp, sc.select_max_new_tokens, retain=final_retain,
                                                     forget=final_forget),
                                     sc.search_max_retain_drop,
                                     out_dir / "search" / "finalists.json", fin_fp)
            pick = choose_finalist(finals, sc.search_refusal_margin)
            if base_final - pick.retain > sc.search_max_retain_drop:
                LOG.info("steering search: the chosen finalist kept %.2f of the retain answers after its short redirection "
                         "(unsteered %.2f); the full redirection trains longer on the retain rows: see the stage's after-table",
                         pick.retain, base_final)
        else:
            pick = choose(rows, sc.search_refusal_margin)
    except AsruError as exc:
        failure = exc  # the trials are shown and written all the same: they say why nothing was chosen
    print(f"steering search ({len(rows)} trials; unsteered retain accuracy {base_retain:.2f}):\n{format_trials(rows)}")
    if finals:
        print(f"finalists (short redirection: {sc.search_finalist_share:g} of the rows, {sc.search_finalist_epochs} epochs; "
              f"scored without hooks on {len(final_forget)} forget questions; unsteered retain accuracy {base_final:.2f} "
              f"on {len(final_retain)} questions):\n"
              f"{format_finalists(finals)}")
    for r in rows:
        r.chosen = pick is not None and r.number == pick.number
    atomic_write_json(out_dir / "search" / "trials.json", {
        "chosen": {"layers": pick.layers, "coeff": pick.coeff, "trial": pick.number} if pick else None,
        "base_retain": base_retain, "finalist_base_retain": base_final, "settings": settings, "fingerprint": fp, "trials": [dataclasses.asdict(r) for r in rows],
        "finalists": [dataclasses.asdict(f) for f in finals]})
    plot_front(rows, out_dir / "search" / "pareto.png")
    if failure is not None:
        raise failure
    return pick


def write_chosen_config(cfg, pick: Trial, path: Path) -> None:
    """The run's config with the chosen layers and coefficient fixed and the search off, as YAML at ``path``."""
    from asru.config import dump_yaml

    steer = dataclasses.replace(cfg.steer, layers=list(pick.layers), layer=None, coeff=pick.coeff, search=False)
    header = (f"# steering settings chosen by the search (trial {pick.number}: refusal {pick.refusal:.2f}, retain KL {pick.kl:.3f});\n"
              "# reuse them with --config <this file>\n")
    atomic_write_text(path, header + dump_yaml(dataclasses.replace(cfg, steer=steer)))
