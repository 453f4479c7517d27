#!/usr/bin/env python
"""Calibrate the relearning attack's budget so that it tells erasing from suppressing.

Runs the attack (:func:`asru.eval.robustness.relearn_attack`: LoRA fine-tune on half of the forget facts,
leak on the other half, the same budget on unrelated data as the control) on each named model for every
budget of a grid, and prints one table: held-out leak before / after the attack and after the control,
and retain accuracy before / after (an attack that wrecks the model is not relearning). A budget is
*usable* when at least one model named as a suppressor (``--suppressors``, e.g. an IDK or GA baseline)
regains at least ``--min-rise`` of held-out leak, while every model keeps its retain accuracy within
``--max-keep-drop``; the script recommends the weakest usable budget (fewest steps, then lowest lr,
then least retain mixed in: `--retain-mixes 0,0.5` tries attacks with half their examples from other retain questions).

    python scripts/calibrate_relearn.py --model vanilla=~/.cache/asru/demo-vlm-<benchmark>-<fp> --model idk=runs/compare/idk/baseline/model \\
        --model oracle=~/.cache/asru/demo-oracle-... --suppressors idk --steps 10,20,40 --lrs 1e-3,3e-3

Writes the table and the recommendation as JSON to ``--out`` (atomically) as well.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from asru.core.openmp import set_wait_policy

set_wait_policy()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_models(items: list[str]) -> dict[str, str]:
    """``["name=path", ...]`` -> ``{name: path}`` (a bare path is named after its directory)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        if not name or not path:
            raise SystemExit(f"--model needs NAME=PATH, got {item!r}")
        out[name] = str(Path(path).expanduser())
    return out


def usable(rows: list[dict], suppressors: list[str], min_rise: float, max_keep_drop: float) -> bool:
    """The calibration rule of the module docstring for one budget's rows (one per model)."""
    def rise(r):
        return (r["relearn_leak_rate"] or 0.0) - (r["relearn_leak_before"] or 0.0)

    def keep_drop(r):
        before, after = r.get("relearn_keep_acc_before"), r.get("relearn_keep_acc")
        return 0.0 if before is None or after is None else before - after

    recovers = any(rise(r) >= min_rise for r in rows if r["model"] in suppressors)
    intact = all(keep_drop(r) <= max_keep_drop for r in rows)
    return recovers and intact


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print the table and the recommended budget."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="A model to attack (repeatable).")
    p.add_argument("--suppressors", default="", help="Comma-separated model names known to suppress rather than erase.")
    p.add_argument("--steps", default="10,20,40", help="Attack steps to try (comma-separated).")
    p.add_argument("--lrs", default="1e-3", help="Attack learning rates to try (comma-separated).")
    p.add_argument("--lora-r", type=int, default=8, help="Attack LoRA rank.")
    p.add_argument("--retain-mixes", default="0",
                   help="Shares of each attack's examples drawn from other retain questions to try (comma-separated, each in [0, 1)).")
    p.add_argument("--forms", default="teach",
                   help="Attack data to try (comma-separated): teach (half A's facts in the benchmark's teaching sentences) or qa (its forget pairs).")
    p.add_argument("--min-rise", type=float, default=0.30, help="Held-out leak a suppressor must regain.")
    p.add_argument("--max-keep-drop", type=float, default=0.05, help="Largest retain-accuracy drop an attack may cause.")
    p.add_argument("--config", help="Run config whose benchmark and evaluation dtype the attack uses, as the evaluation does "
                   "(default: the shipped preset).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Config override (repeatable), e.g. data.seed=5.")
    p.add_argument("--out", default="relearn_calibration.json", help="Where the JSON results go.")
    args = p.parse_args(argv)

    from asru.cli import script_config
    from asru.config import build_config
    from asru.core.rundir import atomic_write_json
    from asru.data.loaders import load_benchmark
    from asru.eval.robustness import relearn_attack, relearn_records
    from asru.eval.runner import load_evaluated
    from asru.pipeline import ensure_data

    models = parse_models(args.model)
    if not models:
        raise SystemExit("name at least one --model NAME=PATH")
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    if not steps or min(steps) <= 0 or not lrs or min(lrs) <= 0:
        raise SystemExit("--steps and --lrs need positive values: a relearning budget of 0 attacks nothing")
    mixes = [float(x) for x in args.retain_mixes.split(",") if x.strip()]
    if not mixes or min(mixes) < 0 or max(mixes) >= 1:
        raise SystemExit("--retain-mixes needs shares in [0, 1)")
    suppressors = [s.strip() for s in args.suppressors.split(",") if s.strip()]
    cfg = build_config(script_config(args.config, args.set)[0])
    data_dir = ensure_data(cfg.data)
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if not forms or set(forms) - {"teach", "qa"}:
        raise SystemExit("--forms takes teach and / or qa")
    data = load_benchmark(data_dir, ["forget", "retain", "real"])
    teach = load_benchmark(data_dir, ["teach"])["teach"] if "teach" in forms else []
    taught = {form: teach if form == "teach" else [] for form in forms}
    records = {form: relearn_records(data["retain"], data["real"], teach=taught[form], forget=data["forget"]) for form in forms}

    rows = []
    for name, path in models.items():
        lm = load_evaluated(path, cfg.model, cfg.eval.dtype)
        for form, n, lr, mix in itertools.product(forms, steps, lrs, mixes):
            control, keep, mix_pool = records[form]
            out = relearn_attack(lm, data["forget"], control, steps=n, lr=lr, lora_r=args.lora_r, keep=keep, progress=True,
                                 mix=mix_pool, mix_share=mix, teach=taught[form])
            rows.append({"model": name, "form": form, "steps": n, "lr": lr, "retain_mix": mix, **out})
            print(json.dumps(rows[-1]), flush=True)
            atomic_write_json(Path(args.out), {"rows": rows, "finished": False})  # a stopped grid keeps its rows
    budget = lambda r: (r["steps"], r["lr"], r["retain_mix"], r["form"])
    budgets = sorted({budget(r) for r in rows})
    ok = [b for b in budgets if usable([r for r in rows if budget(r) == b], suppressors,
                                       args.min_rise, args.max_keep_drop)]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    print("| model | form | steps | lr | retain mix | held-out leak before | after attack | after control | retain before | after attack | after control |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['form']} | {r['steps']} | {r['lr']:g} | {r['retain_mix']:g} | {fmt(r['relearn_leak_before'])} | {fmt(r['relearn_leak_rate'])} | "
              f"{fmt(r['relearn_control_leak_rate'])} | {fmt(r['relearn_keep_acc_before'])} | {fmt(r['relearn_keep_acc'])} | "
              f"{fmt(r['relearn_control_keep_acc'])} |")
    pick = ok[0] if ok else None
    print(f"usable budgets: {ok or 'none'}; recommended: " + (f"steps {pick[0]}, lr {pick[1]:g}, retain mix {pick[2]:g}, form {pick[3]}" if pick else "none"))
    atomic_write_json(Path(args.out), {"rows": rows, "finished": True, "usable": ok, "recommended": pick, "suppressors": suppressors,
                                       "min_rise": args.min_rise, "max_keep_drop": args.max_keep_drop})
    return 0


if __name__ == "__main__":
    sys.exit(main())
