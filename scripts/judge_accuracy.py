"""Accuracy of the answer judge (:func:`rewards.judge.judge`) on the hand-labelled corpus, as markdown tables.

    python scripts/judge_accuracy.py [--corpus tests/data/judge_corpus.jsonl] [--set main|holdout|blind|blind2|all] [--errors]

Prints, per set: overall accuracy (an answer is right when all four labels are), accuracy /
precision / recall per label, and accuracy per category. ``--errors`` lists the wrong answers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

LABELS = ("refusal", "fact_leak", "identity_leak", "degenerate")
DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "judge_corpus.jsonl"


def load_corpus(path: str | Path = DEFAULT_CORPUS) -> list[dict]:
    """The corpus rows (one JSON object per line)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(rows: list[dict]) -> dict:
    """Judge every row; returns overall / per-label / per-category scores and the wrong rows."""
    from rewards.judge import judge

    counts = {lab: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for lab in LABELS}
    cats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    right, wrong = 0, []
    for row in rows:
        v = judge(row["answer"], {"question": row["question"], "answer": row["truth"], "person": row["person"]})
        ok = True
        for lab in LABELS:
            got, want = getattr(v, lab), bool(row[lab])
            key = ("t" if got == want else "f") + ("p" if got else "n")
            counts[lab][key] += 1
            ok &= got == want
        right += ok
        cats[row["category"]][0] += ok
        cats[row["category"]][1] += 1
        if not ok:
            wrong.append((row, v))
    per_label = {}
    for lab, c in counts.items():
        n = sum(c.values())
        prec = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        rec = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
        per_label[lab] = {"accuracy": (c["tp"] + c["tn"]) / n if n else None, "precision": prec, "recall": rec,
                          "positives": c["tp"] + c["fn"]}
    return {"n": len(rows), "accuracy": right / len(rows) if rows else None, "labels": per_label,
            "categories": {k: {"accuracy": a / n, "n": n} for k, (a, n) in sorted(cats.items())}, "wrong": wrong}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(name: str, res: dict) -> str:
    """The tables of one set."""
    out = [f"### {name}: {res['n']} answers, accuracy {_pct(res['accuracy'])} (all four labels right)", "",
           "| label | positives | accuracy | precision | recall |", "|---|---|---|---|---|"]
    for lab, m in res["labels"].items():
        out.append(f"| {lab} | {m['positives']} | {_pct(m['accuracy'])} | {_pct(m['precision'])} | {_pct(m['recall'])} |")
    out += ["", "| category | n | accuracy |", "|---|---|---|"]
    for cat, m in res["categories"].items():
        out.append(f"| {cat} | {m['n']} | {_pct(m['accuracy'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables; exit status 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--set", choices=("main", "holdout", "blind", "blind2", "all"), default="all", help="which part of the corpus (all: each part)")
    ap.add_argument("--errors", action="store_true", help="list the answers the judge gets wrong")
    args = ap.parse_args(argv)
    rows = load_corpus(args.corpus)
    sets = ("main", "holdout", "blind", "blind2") if args.set == "all" else (args.set,)
    for name in sets:
        part = [r for r in rows if r.get("set", "main") == name]
        if not part:
            continue
        res = evaluate(part)
        print(markdown(name, res) + "\n")
        if args.errors:
            for row, v in res["wrong"]:
                want = "".join(k[0] for k in LABELS if row[k]) or "-"
                got = "".join(k[0] for k in LABELS if getattr(v, k)) or "-"
                print(f"- [{row['category']}] want {want} got {got}: {row['answer']!r}")
            print()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
