"""Argument parsing for the console scripts; every option's help comes from the config dataclasses.

``asru-train`` (whole pipeline), ``asru-steer`` (steering stage only), ``asru-eval``, ``asru-export`` and
``asru-data``. User mistakes end with a one-line ``asru: error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Callable

from asru.config import ExportConfig, RunConfig, build_config, field_type, section_classes
from asru.config_yaml import load_yaml, merge, parse_overrides
from asru.core.aliases import known_aliases, model_spec
from asru.core.errors import AsruError
from asru.core.openmp import set_wait_policy
from asru.core.options import choices_metavar
from asru.core.plugins import load_plugins
from asru.core.rundir import setup_logging
from asru.data.synthetic import generate_benchmark
from asru.demo.oracle import build_oracle_model
from asru.demo.teach import TAUGHT_MODELS, build_taught_model, taught_base
from asru.pipeline import dry_run, ensure_data, run_eval_only, run_pipeline
from asru.stages.export.run import export_run
from asru.stages.methods import method_names
from rewards import list_rewards

EPILOG = "Every stage option can also be set in the YAML file given to --config; command-line options win."


def _user_errors(fn: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Wrap a command: AsruError -> one line on stderr + exit 2; Ctrl-C -> exit 130."""

    def wrapper(argv: list[str] | None = None) -> int:
        set_wait_policy()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            return fn(argv)
        except AsruError as exc:
            print(f"asru: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("asru: interrupted (finished stages are kept; rerun with --resume)", file=sys.stderr)
            return 130

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def _type_name(tp) -> str:
    choices = choices_metavar(tp)
    if choices:
        return choices
    origin = typing.get_origin(tp)
    if origin is list:
        return "A,B,..."
    if origin is dict:
        return "K=V,..."
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return _type_name(args[0])
    return getattr(tp, "__name__", str(tp)).upper()


def add_config_options(parser: argparse.ArgumentParser, sections: list[str] | None = None) -> None:
    """Add ``--<section>.<field>`` for every field of the chosen stage sections (all by default)."""
    for name, cls in section_classes().items():
        if sections is not None and name not in sections:
            continue
        group = parser.add_argument_group(f"{name} options", (cls.__doc__ or "").strip().splitlines()[0])
        for f in dataclasses.fields(cls):
            tp = field_type(cls, f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            group.add_argument(
                f"--{name}.{f.name}",
                dest=f"cfg:{name}.{f.name}",
                metavar=_type_name(tp),
                default=argparse.SUPPRESS,
                help=f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%"),
            )


def preset_for(model_name: str | None) -> str | None:
    """The preset used when no ``--config`` is given: the model alias's own (``configs/default.yaml``
    for the offline models, ``configs/qwen3-vl/base.yaml`` for Qwen3-VL-2B); None (the dataclass
    defaults = the reference's values) for other models."""
    spec = model_spec(model_name or "demo")
    path = spec.preset_path() if spec else None
    return str(path) if path else None


def script_config(config: str | None, overrides: list[str]) -> tuple[dict, str | None]:
    """A benchmark script's base config: ``config`` (else the preset of the model the overrides name) with the
    ``KEY=VALUE`` overrides merged over it; returns ``(values, config file or None)``. A malformed override
    exits with a one-line message."""
    try:
        sets = parse_overrides(overrides)
    except AsruError as exc:
        raise SystemExit(f"--set: {exc}") from None
    config_file = config or preset_for(sets.get("model", {}).get("name"))
    return merge(load_yaml(config_file) if config_file else {}, sets), config_file


def plugin_specs(argv: list[str] | None) -> list[str]:
    """The ``--plugins A,B`` of a command line, loaded before its parser is built (so help lists what they add)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugins", default="")
    known, _ = pre.parse_known_args(argv)
    specs = [s.strip() for s in known.plugins.split(",") if s.strip()]
    load_plugins(specs)
    return specs


def config_from_args(args: argparse.Namespace, fixed: dict | None = None) -> RunConfig:
    """YAML file (``--config``) + ``--section.field`` overrides + ``fixed`` values -> validated RunConfig."""
    model_name = (fixed or {}).get("model", {}).get("name") or getattr(args, "cfg:model.name", None)
    config_file = getattr(args, "config", None) or preset_for(model_name)
    values: dict = load_yaml(config_file) if config_file else {}
    overrides: dict = {}
    for key, val in vars(args).items():
        if key.startswith("cfg:"):
            section, name = key[4:].split(".", 1)
            overrides.setdefault(section, {})[name] = val
    for given in (overrides, fixed or {}):
        steer = given.get("steer", {})
        if "layer" in steer and "layers" not in steer:
            steer["layers"] = []  # a layer named on the command line wins over a file's steer.layers
    values = merge(values, overrides)
    values = merge(values, fixed or {})
    cli_plugins = getattr(args, "plugins", None)
    if cli_plugins:
        values["plugins"] = list(dict.fromkeys([*values.get("plugins", []), *cli_plugins.split(",")]))
    return build_config(values)


def _common_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="Config file (see configs/default.yaml); options below override it.")
    parser.add_argument("--model", metavar="NAME", help=f"Shortcut for --model.name: an alias ({known_aliases()}), a hub id or a local directory.")
    parser.add_argument("--plugins", metavar="A,B", help="Plugin files (path/to/file.py) or modules to load first; they register "
                        "methods, metrics, benchmark formats or model aliases (docs/extending.md).")
    parser.add_argument("--data", metavar="DIR", help="Shortcut for --data.data_dir: benchmark directory (default: the built-in synthetic one).")
    parser.add_argument("--output-dir", metavar="DIR", help="Run directory (default runs/<timestamp>); a non-empty one needs --overwrite or --resume.")
    parser.add_argument("--overwrite", action="store_true", help="Replace the contents of a non-empty run directory.")
    parser.add_argument("--resume", action="store_true", help="Continue a run directory: reuse finished stages whose inputs did not change.")
    parser.add_argument("--layer", type=int, metavar="N", help="Shortcut for --steer.layer: decoder layer to steer (default: chosen automatically).")
    parser.add_argument("--dry-run", action="store_true", help="Validate everything and print the plan without loading weights, then exit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging on the console.")


def _shortcuts(args: argparse.Namespace) -> dict:
    fixed: dict = {}
    if args.model:
        fixed.setdefault("model", {})["name"] = args.model
    if args.data:
        fixed.setdefault("data", {})["data_dir"] = args.data
    if args.layer is not None:
        fixed.setdefault("steer", {})["layer"] = args.layer
    for key in ("output_dir", "overwrite", "resume"):
        val = getattr(args, key)
        if val:
            fixed[key] = val
    return fixed


def train_parser() -> argparse.ArgumentParser:
    """The ``asru-train`` parser."""
    p = argparse.ArgumentParser(
        prog="asru-train",
        description="Run the ASRU unlearning pipeline: data -> vanilla model -> steering -> GRPO -> evaluation -> export. "
        "With no arguments it runs the built-in offline default (demo VLM + synthetic benchmark) on the CPU.",
        epilog=EPILOG,
    )
    _common_run_options(p)
    p.add_argument("--stages", metavar="A,B", help="Stages to run, comma-separated, from data,teach,steer,rl,eval,export (default: all).")
    p.add_argument("--method", metavar="NAME", help=f"Unlearning method: {', '.join(method_names())} (default asru).")
    p.add_argument("--list-rewards", action="store_true", help="List the reward functions that rl.rewards can name, then exit.")
    add_config_options(p)
    return p


@_user_errors
def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``asru-train``."""
    plugin_specs(argv)
    args = train_parser().parse_args(argv)
    if args.list_rewards:
        for name, desc in list_rewards().items():
            print(f"{name:24s} {desc}")
        return 0
    fixed = _shortcuts(args)
    if args.stages:
        fixed["stages"] = args.stages
    if args.method:
        fixed["method"] = args.method
    return _run_or_plan(args, fixed)


def _run_or_plan(args: argparse.Namespace, fixed: dict) -> int:
    """Build the config; print the plan for ``--dry-run``, else run the pipeline."""
    cfg = config_from_args(args, fixed)
    if args.dry_run:
        print(dry_run(cfg))
        return 0
    run_pipeline(cfg, verbose=args.verbose)
    return 0


def steer_parser() -> argparse.ArgumentParser:
    """The ``asru-steer`` parser."""
    p = argparse.ArgumentParser(
        prog="asru-steer",
        description="Run the steering stage alone: refusal direction, layer choice and redirection, with a before/after table.",
        epilog=EPILOG,
    )
    _common_run_options(p)
    add_config_options(p, ["model", "data", "teach", "steer"])
    return p


@_user_errors
def steer_main(argv: list[str] | None = None) -> int:
    """Entry point of ``asru-steer``."""
    plugin_specs(argv)
    args = steer_parser().parse_args(argv)
    fixed = _shortcuts(args)
    fixed["stages"] = ["data", "teach", "steer"]
    return _run_or_plan(args, fixed)


def eval_parser() -> argparse.ArgumentParser:
    """The ``asru-eval`` parser."""
    p = argparse.ArgumentParser(
        prog="asru-eval",
        description="Evaluate a model on a benchmark: forget/retain/test/real task metrics, quality, privacy, robustness.",
        epilog=EPILOG,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="Model to evaluate: a saved model directory, hub id or alias.")
    p.add_argument("--data", metavar="DIR", help="Benchmark directory (default: the built-in synthetic benchmark).")
    p.add_argument("--splits", metavar="A,B", help="Splits to evaluate (default forget,retain,test,real).")
    p.add_argument("--reference", metavar="DIR", help="Reference (original) model for fluency and diagnostics.")
    p.add_argument("--output-dir", metavar="DIR", help="Where eval.json, report.md and plots go (default runs/<timestamp>-eval).")
    p.add_argument("--overwrite", action="store_true", help="Replace the contents of a non-empty output directory.")
    p.add_argument("--config", metavar="YAML", help="Config file; its eval/data sections are used.")
    p.add_argument("--plugins", metavar="A,B", help="Plugin files or modules to load first (a metric or benchmark format of your own).")
    p.add_argument("-v", "--verbose", action="store_true", help="Debug logging on the console.")
    add_config_options(p, ["eval", "data"])
    return p


@_user_errors
def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``asru-eval``."""
    plugin_specs(argv)
    args = eval_parser().parse_args(argv)
    fixed: dict = {}
    if args.data:
        fixed.setdefault("data", {})["data_dir"] = args.data
    if args.splits:
        fixed.setdefault("eval", {})["splits"] = args.splits
    cfg = config_from_args(args, fixed)
    run_eval_only(cfg, args.model, args.output_dir, reference=args.reference, overwrite=args.overwrite, verbose=args.verbose)
    return 0


def export_parser() -> argparse.ArgumentParser:
    """The ``asru-export`` parser."""
    p = argparse.ArgumentParser(
        prog="asru-export",
        description="Export a run's final model as a plain checkpoint (LoRA merged, hooks baked or refused) with a model card, "
        "verified by reloading it.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="Finished run directory (asru-train --output-dir).")
    p.add_argument("--out", required=True, metavar="DIR", help="Export directory (must be empty or new unless --overwrite).")
    p.add_argument("--overwrite", action="store_true", help="Replace a non-empty export directory.")
    p.add_argument("--push-to-hub", metavar="REPO", help="Also push the export to this hub repository (needs access).")
    p.add_argument("--allow-hooks", action="store_true", help="Export even when unbakeable hooks were used; their description is written beside the weights.")
    p.add_argument("-v", "--verbose", action="store_true", help="Debug logging on the console.")
    return p


@_user_errors
def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``asru-export``."""
    args = export_parser().parse_args(argv)
    setup_logging(None, args.verbose)
    cfg = ExportConfig(out=args.out, push_to_hub=args.push_to_hub, allow_hooks=args.allow_hooks)
    out = export_run(args.run, args.out, cfg, overwrite=args.overwrite)
    print(f"exported to {out}")
    return 0


def data_parser() -> argparse.ArgumentParser:
    """The ``asru-data`` parser."""
    p = argparse.ArgumentParser(prog="asru-data", description="Make benchmark data and the offline demo model.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="Generate the synthetic fictitious-profile benchmark (JSONL + portraits).")
    g.add_argument("--out", required=True, metavar="DIR", help="Output directory (must be empty or new unless --overwrite).")
    g.add_argument("--people", type=int, default=20, help="Number of fictitious people (default 20).")
    g.add_argument("--forget-ratio", type=float, default=0.1, help="Share of people to forget, in (0, 1) (default 0.1).")
    g.add_argument("--seed", type=int, default=0, help="Generator seed (default 0).")
    g.add_argument("--image-size", type=int, default=64, help="Portrait size in pixels (default 64).")
    g.add_argument("--overwrite", action="store_true", help="Replace a non-empty output directory.")
    for name, help_text, data_help, out_default in (
        ("teach", "Build the offline demo VLM and teach it the benchmark's profiles (cached).",
         "Benchmark directory (default: the built-in synthetic benchmark, generated if missing).", "the cache's demo-vlm-<benchmark>-<fingerprint>"),
        ("oracle", "Teach the demo recipe without the forget people: the model that never knew them (cached).",
         "Benchmark directory with a teach split (default: the built-in synthetic benchmark).",
         "the cache's demo-oracle-<benchmark>-<fingerprint>"),
    ):
        t = sub.add_parser(name, help=help_text)
        t.add_argument("--data", metavar="DIR", help=data_help)
        t.add_argument("--out", metavar="DIR", help=f"Output model directory (default: {out_default}).")
        t.add_argument("--overwrite", action="store_true", help="Rebuild even if a model taught on other data/settings is there.")
        t.add_argument("--config", metavar="YAML", help="Config file; its teach/data sections are used.")
        t.add_argument("--model", choices=sorted(TAUGHT_MODELS), default="demo",
                       help="demo (the demo VLM, default) or demo-text (SmolLM2-135M-Instruct taught the text questions).")
        add_config_options(t, ["teach", "data"])
    return p


@_user_errors
def data_main(argv: list[str] | None = None) -> int:
    """Entry point of ``asru-data``."""
    args = data_parser().parse_args(argv)
    setup_logging(None)
    if args.command == "generate":
        if not 0 < args.forget_ratio < 1:
            raise AsruError(f"--forget-ratio must be in (0, 1), not {args.forget_ratio}")
        meta = generate_benchmark(args.out, people=args.people, forget_ratio=args.forget_ratio, seed=args.seed,
                                  image_size=args.image_size, overwrite=args.overwrite)
        counts = meta.get("counts", {})
        print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    fixed = {"data": {"data_dir": args.data}} if args.data else {}
    cfg = config_from_args(args, fixed)
    data_dir = ensure_data(cfg.data)
    if args.command == "oracle":
        path = build_oracle_model(data_dir, cfg.teach, out_dir=args.out, overwrite=args.overwrite, base_model=taught_base(args.model))
        print(f"oracle model ready at {path}")
        return 0
    path = build_taught_model(args.model, data_dir, cfg.teach, out_dir=args.out, overwrite=args.overwrite)
    print(f"demo model ready at {path}")
    return 0
