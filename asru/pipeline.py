"""The stage graph: data -> vanilla model -> steering -> rl (or a baseline) -> eval -> export.

Each stage writes into ``<run>/<stage>/`` and finishes by writing ``stage.json`` holding a fingerprint of
its inputs (its config section, the fingerprint of the model it started from, the data). With
``--resume`` a stage whose fingerprint is unchanged is reused; anything else is run again.

Under ``accelerate launch`` the main process alone writes the run directory and runs the stages that are
not distributed (data, teaching, steering, baselines, evaluation, export, the summary) while the other
processes wait and then read what it wrote; every process runs the RL stage (GRPO, distributed by TRL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import rewards
from asru.config import DataConfig, RunConfig, dump_yaml
from asru.core.aliases import MODEL_ALIASES, model_spec, resolve_model_name
from asru.core.created_dirs import removed_on_early_failure
from asru.core.errors import AsruError
from asru.core.models import cache_dir
from asru.core.rundir import (
    atomic_write_json,
    atomic_write_text,
    default_run_dir,
    directory_swap,
    is_main_process,
    main_process_first,
    prepare_run_dir,
    process_state,
    setup_logging,
)
from asru.data.benchmark import default_data_dir, is_current_benchmark
from asru.data.loaders import available_splits, load_benchmark
from asru.data.synthetic import generate_benchmark
from asru.demo.teach import TAUGHT_MODELS, build_taught_model, built_taught_model
from asru.eval.report import format_table, write_report
from asru.eval.runner import evaluate
from asru.eval.targets import check_targets, format_targets
from asru.preflight import check_all, check_run
from asru.stages.baselines import run_baseline
from asru.stages.export.stage import export_model
from asru.stages.methods import PIPELINE_METHODS, method_stages
from asru.stages.rl.stage import run_rl_stage
from asru.stages.steer.stage import run_steer_stage

LOG = logging.getLogger("asru.pipeline")
EVAL_SPLITS_NEEDED = ("forget", "retain", "test", "real")


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def eval_code_fingerprint() -> str:
    """Hash of the source the scores come from (``asru/eval``, ``rewards``, ``asru/core/prompting.py``).

    Part of the evaluation cache key, so an upgrade that changes a metric re-evaluates instead of
    reusing numbers the new code would not produce.
    """
    root = Path(__file__).resolve().parent
    files = sorted((root / "eval").glob("*.py")) + sorted(Path(rewards.__file__).resolve().parent.glob("*.py")) + [root / "core" / "prompting.py"]
    return fingerprint(*[hashlib.sha256(f.read_bytes()).hexdigest() for f in files])


def weights_digest(model_path: str) -> str:
    """SHA-256 of a local checkpoint's ``*.safetensors`` files ("" for a hub id or a folder without them).

    Part of the evaluation cache key: a stage fingerprint names the inputs, the digest the weights
    actually written, so a re-run that wrote other weights under the same fingerprint is not served
    the old scores.
    """
    files = sorted(Path(model_path).glob("*.safetensors")) if Path(model_path).is_dir() else []
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest() if files else ""


def ensure_data(data: DataConfig) -> Path:
    """The benchmark directory: the user's, or the built-in synthetic one (generated once into the cache)."""
    if data.data_dir:
        path = Path(data.data_dir)
        if not path.is_dir():
            raise AsruError(f"data directory {path} does not exist: generate one with `asru-data generate --out {path}`")
        return path
    path = default_data_dir(data)
    if not is_current_benchmark(path):
        LOG.info("generating the built-in synthetic benchmark into %s", path)
        with directory_swap(path, tmp=path.with_name(path.name + ".tmp"), create=False) as tmp:
            generate_benchmark(tmp, people=data.people, forget_ratio=data.forget_ratio, seed=data.seed,
                               image_size=data.image_size, overwrite=True)
    return path


def _data_fingerprint(data_dir: Path) -> str:
    meta = data_dir / "meta.json"
    files = sorted(p.name + str(p.stat().st_size) for p in data_dir.glob("*.jsonl"))
    return fingerprint(meta.read_text() if meta.is_file() else "", files, str(data_dir.resolve()))


def _model_fingerprint(model_path: str) -> str:
    stage = Path(model_path).parent / "stage.json"
    if stage.is_file():
        return json.loads(stage.read_text())["fingerprint"]
    report = Path(model_path) / "teach_report.json"
    if report.is_file():
        return fingerprint(report.read_text())
    return fingerprint(str(model_path))


class Stage:
    """A stage directory with fingerprint-based reuse."""

    def __init__(self, run: Path, name: str, inputs: tuple, resume: bool):
        self.dir = run / name
        self.name = name
        self.fp = fingerprint(name, *inputs)
        self.resume = resume

    def done(self) -> dict | None:
        """The stage record if it finished with the same inputs and may be reused."""
        f = self.dir / "stage.json"
        if self.resume and f.is_file():
            rec = json.loads(f.read_text())
            if rec.get("fingerprint") == self.fp:
                return rec
        return None

    def start(self) -> Path:
        """Prepare the stage directory (a stale record is removed; checkpoints are kept for resuming)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if is_main_process():
            (self.dir / "stage.json").unlink(missing_ok=True)
        self.t0 = time.time()
        return self.dir

    def finish(self, **record) -> dict:
        """The stage record, written by the main process."""
        rec = {"stage": self.name, "fingerprint": self.fp, "seconds": round(time.time() - self.t0, 1), **record}
        if is_main_process():
            atomic_write_json(self.dir / "stage.json", rec)
        return rec

    def record(self) -> dict:
        """The record the main process wrote."""
        return json.loads((self.dir / "stage.json").read_text())


def resolve_vanilla(cfg: RunConfig, data_dir: Path) -> str:
    """The model to unlearn: the demo VLM (built/taught if needed) or the user's model id/path."""
    if cfg.model.name in TAUGHT_MODELS:
        return str(build_taught_model(cfg.model.name, data_dir, cfg.teach))
    resolve_model_name(cfg.model.name)
    return cfg.model.name


def _reward_text(name: str, value) -> str:
    """``name xW`` for the plan, with a reward's options: ``fluency x0.5 (roles=['forget'])``."""
    if not isinstance(value, dict):
        return f"{name} x{value}"
    opts = ", ".join(f"{k}={v}" for k, v in value.items() if k != "weight")
    return f"{name} x{value.get('weight', 1.0)}" + (f" ({opts})" if opts else "")


def dry_run(cfg: RunConfig) -> str:
    """Validate the configuration without loading weights and return the plan as text.

    :func:`asru.preflight.check_all` reads the data, checks the rewards, the output directory and the
    layers against the model's config; what it could not check is listed at the end of the plan."""
    hub_id = resolve_model_name(cfg.model.name)
    spec = model_spec(cfg.model.name) or model_spec(hub_id)
    facts, unchecked = check_all(cfg)
    n_layers = facts.num_layers
    fixed = cfg.steer.fixed_layers
    out = cfg.output_dir or "runs/<timestamp>"
    layer_txt = ", ".join(f"{lay} (= {lay % n_layers})" if lay < 0 and n_layers else str(lay) for lay in fixed) if fixed else (
        f"auto (alias default {spec.default_layer}, scored over candidates)" if spec else "auto (scored over candidates)")
    data_txt = cfg.data.data_dir or f"built-in synthetic ({cfg.data.people} people, forget ratio {cfg.data.forget_ratio}, seed {cfg.data.seed}) at {default_data_dir(cfg.data)}"
    lines = [
        "asru plan (dry run: nothing loaded or written)",
        f"  model      {cfg.model.name} -> {hub_id}" + (f" ({spec.note})" if spec else ""),
        f"  layers     {n_layers if n_layers is not None else 'unknown until the config is loaded'}; steering layer{'s' if len(fixed) > 1 else ''} {layer_txt}",
        f"  device     {cfg.model.device}, dtype {cfg.model.dtype}",
        f"  data       {data_txt}",
        f"  method     {cfg.method}: {method_stages(cfg.method)}",
        f"  stages     {', '.join(cfg.stages)}",
        f"  rewards    {', '.join(_reward_text(k, v) for k, v in cfg.rl.rewards.items())}",
        (f"  rollouts   vLLM {cfg.rl.use_vllm}; {cfg.rl.num_generations} per prompt, temperature {cfg.rl.temperature}; "
         f"dtype {cfg.rl.dtype or cfg.model.dtype}"),
        f"  eval       splits {', '.join(cfg.eval.splits)}; dtype {cfg.eval.dtype or cfg.model.dtype}",
        f"  output     {out}",
    ]
    if cfg.model.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            lines.append("  warning    no GPU on this machine: the run itself needs one (or --model.device cpu)")
    if cfg.model.name in MODEL_ALIASES and hub_id.startswith("offline:"):
        lines.append("  note       offline model: built locally from PyPI packages, no download")
    lines += [f"  unchecked  {note}" for note in unchecked]
    return "\n".join(lines)


def _eval(cfg: RunConfig, model_path: str, data: dict, out_dir: Path, reference: str | None, cache_key: str | None = None) -> dict:
    """Evaluate a model, reusing a cached result for identical (model, data, eval config) inputs.

    The cache keeps the whole evaluation folder (``eval.json``, ``answers.jsonl``, plots), so a reused
    evaluation leaves the same files in the run directory as a fresh one.
    """
    cache = cache_dir() / "eval-cache" / cache_key if cache_key else None
    if cache and (cache / "eval.json").is_file():
        LOG.info("reusing cached evaluation of %s", model_path)
        shutil.copytree(cache, out_dir, dirs_exist_ok=True)
        return json.loads((out_dir / "eval.json").read_text())["metrics"]
    metrics = evaluate(cfg.eval, model_path, data, out_dir, reference_path=reference, model_cfg=cfg.model)
    if cache:
        with directory_swap(cache, tmp=cache.with_name(f"{cache.name}.tmp-{os.getpid()}"), create=False) as tmp:
            shutil.copytree(out_dir, tmp)  # a reader sees the whole folder or none
    return metrics


def run_pipeline(cfg: RunConfig, verbose: bool = False) -> dict:
    """Run the configured stages in a run directory and return the metrics written to metrics.json.

    Bad input is refused before the run directory is created (:func:`asru.preflight.check_run`); a run
    that still fails before its first stage removes the directories it created.
    """
    processes = process_state().num_processes
    if processes > 1 and not cfg.output_dir:
        raise AsruError(f"pass --output-dir when launching {processes} processes: they share one run directory")
    check_run(cfg, output_dir=is_main_process())  # the other processes find the directory the main one made
    target = Path(cfg.output_dir) if cfg.output_dir else default_run_dir()
    with removed_on_early_failure(target if is_main_process() else None):
        return _run_stages(cfg, target, verbose)


def _run_stages(cfg: RunConfig, target: Path, verbose: bool) -> dict:
    """The body of :func:`run_pipeline`, in the run directory ``target``."""
    t_start = time.time()
    processes, main = process_state().num_processes, is_main_process()
    run = target
    if main:  # the other processes never create, clear or log into the run directory
        run = prepare_run_dir(target, overwrite=cfg.overwrite, resume=cfg.resume)
        if cfg.overwrite and not cfg.resume:
            for child in run.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    setup_logging(run, verbose, main_process=main)
    if main:
        atomic_write_text(run / "config.yaml", dump_yaml(cfg))
    LOG.info("run directory %s", run)
    if processes > 1:
        LOG.info("%d processes: the main process writes the run directory", processes)
    stages = set(cfg.stages)

    with main_process_first():  # the main process fills the data cache, the others read it
        data_dir = ensure_data(cfg.data)
    data = load_benchmark(data_dir, list(EVAL_SPLITS_NEEDED))
    data_fp = _data_fingerprint(data_dir)
    timings: dict[str, float] = {}

    t = time.time()
    with main_process_first():  # the main process builds (or fetches) the model, the others load it
        vanilla = resolve_vanilla(cfg, data_dir) if ("teach" in stages or cfg.model.name not in TAUGHT_MODELS) else _existing_demo(data_dir, cfg.teach, cfg.model.name)
    timings["vanilla"] = round(time.time() - t, 1)
    current = vanilla
    current_fp = _model_fingerprint(vanilla)
    stage_models: dict[str, str] = {}

    def run_stage(st: Stage, fn) -> dict:
        LOG.info("stage %s: starting", st.name)
        rec = st.finish(model=str(fn(st.start())))
        LOG.info("stage %s: done in %.0f s", st.name, rec["seconds"])
        return rec

    def model_stage(name: str, section: dict, fn, every_process: bool = False) -> None:
        nonlocal current, current_fp
        st = Stage(run, name, (section, current_fp, data_fp, cfg.method), cfg.resume)
        rec = st.done()
        process_state().wait_for_everyone()  # every process has read the old record before the main process replaces it
        if rec:
            LOG.info("stage %s: inputs unchanged, reusing %s", name, rec["model"])
        elif every_process:  # its steps are distributed by TRL / accelerate
            rec = run_stage(st, fn)
        else:  # the main process runs it; the others wait, then read its record
            with main_process_first():
                rec = run_stage(st, fn) if main else st.record()
        timings[name] = rec["seconds"]
        current, current_fp = rec["model"], rec["fingerprint"]
        stage_models[name] = current

    if cfg.method in PIPELINE_METHODS:
        method_stage_names = PIPELINE_METHODS[cfg.method]
        if "steer" in stages and "steer" in method_stage_names:
            model_stage("steer", asdict(cfg.steer) | {"model": asdict(cfg.model)},
                        lambda out: run_steer_stage(cfg, current, {**data, **_teach_split(data_dir)}, out))
        if "rl" in stages and "rl" in method_stage_names:
            model_stage("rl", asdict(cfg.rl), lambda out: run_rl_stage(cfg, current, {**data, **_teach_split(data_dir)}, out,
                                                        reference_path=vanilla),
                        every_process=True)
    elif "rl" in stages or "steer" in stages:
        section = asdict(cfg.baseline) if hasattr(cfg, "baseline") else {}
        model_stage(cfg.method, section, lambda out: run_baseline(cfg, current, data, out))

    if not main:  # evaluation, export and the summary are the main process's
        process_state().wait_for_everyone()
        return json.loads((run / "metrics.json").read_text())
    metrics: dict = {"method": cfg.method, "model": cfg.model.name, "vanilla": vanilla, "final_model": current}
    if "eval" in stages:
        eval_fp = fingerprint(asdict(cfg.eval), asdict(cfg.model), data_fp, eval_code_fingerprint())
        t = time.time()

        def eval_key(path: str) -> str:  # the model's inputs and its weights, the data and the scoring
            return fingerprint(_model_fingerprint(path), weights_digest(path), eval_fp)

        scored = with_attack_data(cfg.eval, data, data_dir)
        metrics["before"] = _eval(cfg, vanilla, scored, run / "eval" / "before", vanilla, cache_key=eval_key(vanilla))
        metrics["stages"] = {}
        for name, path in stage_models.items():
            metrics["stages"][name] = _eval(cfg, path, scored, run / "eval" / name, vanilla, cache_key=eval_key(path))
        metrics["after"] = metrics["stages"][list(stage_models)[-1]] if stage_models else metrics["before"]
        timings["eval"] = round(time.time() - t, 1)
        metrics["targets"] = check_targets(metrics)
    metrics["timings_s"] = timings
    atomic_write_json(run / "metrics.json", metrics)
    if "export" in stages and stage_models:
        t = time.time()
        out = Path(cfg.export.out) if cfg.export.out else run / "export"
        # the run's own export folder belongs to this run: a resumed run replaces it
        ecfg = replace(cfg.export, overwrite=cfg.export.overwrite or not cfg.export.out)
        export_model(current, out, ecfg, run_dir=run, data=data, metrics=metrics)
        metrics["export"] = str(out)
        timings["export"] = round(time.time() - t, 1)
    timings["total"] = round(time.time() - t_start, 1)
    atomic_write_json(run / "metrics.json", metrics)
    if "before" in metrics:
        write_report(metrics, run / "report.md")
        print(format_table(metrics))
        if metrics.get("targets"):
            print("unlearning targets (after vs vanilla):\n" + format_targets(metrics["targets"]))
    print(f"run finished in {timings['total'] / 60:.1f} min -> {run} (metrics.json, report.md)")
    process_state().wait_for_everyone()
    return metrics


def _teach_split(data_dir: Path) -> dict:
    """``{"teach": records}`` when the benchmark has a teach split (its refusal answers seed the refusal
    side of the steering direction; its renders are the people's other photos for ``known_photos``), else
    ``{}``. Never part of evaluation: the teach split is trained on."""
    return load_benchmark(data_dir, ["teach"]) if "teach" in available_splits(data_dir) else {}


def with_attack_data(eval_cfg, data: dict, data_dir: Path) -> dict:
    """``data`` plus the benchmark's teach split when the relearning attack trains on it
    (``eval.relearn_form: teach``); :func:`asru.eval.runner.evaluate` keeps it apart from the scored splits."""
    if eval_cfg.relearn and eval_cfg.relearn_form == "teach":
        return {**data, **_teach_split(data_dir)}
    return data


def _existing_demo(data_dir: Path, teach_cfg, alias: str = "demo") -> str:
    """The cached taught model ``alias`` of this benchmark and teach config, without building it (no teach stage)."""
    path = built_taught_model(alias, data_dir, teach_cfg)
    if path is None:
        raise AsruError(f"the {alias} model of benchmark {data_dir} is not built: include the teach stage "
                        "(--stages teach,...) or run `asru-data teach`")
    return str(path)


def run_eval_only(cfg: RunConfig, model: str, output_dir: str | None, reference: str | None = None, overwrite: bool = False, verbose: bool = False) -> dict:
    """``asru-eval``: evaluate one model on the benchmark and write eval.json + report.md.

    An output directory this call created is removed again when it fails before writing results."""
    resolve_model_name(model)
    target = Path(output_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-eval")
    with removed_on_early_failure(target):
        out = prepare_run_dir(target, overwrite=overwrite)
        setup_logging(out, verbose)
        data_dir = ensure_data(cfg.data)
        data = with_attack_data(cfg.eval, load_benchmark(data_dir, cfg.eval.splits), data_dir)
        if model in TAUGHT_MODELS:  # this benchmark's own taught model where it is built, else the one built last
            model = str(built_taught_model(model, data_dir, cfg.teach) or model)
        metrics = evaluate(cfg.eval, model, data, out, reference_path=reference, model_cfg=cfg.model)
    summary = {"model": model, "after": metrics}
    write_report(summary, out / "report.md")
    print(format_table(summary))
    return metrics
