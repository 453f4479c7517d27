"""Check that the base model answers the synthetic benchmark's general-knowledge (``real``) items.

Usage: python scripts/check_real_items.py [--model smollm2] [--max-new-tokens 32]

Greedy-decodes every item of ``asru.data.synthetic.REAL_ITEMS`` as a question and as a
fill-in-the-blank (the cloze record's question), and prints the share whose answer contains the
ground truth (case-insensitive), the misses, and the wall time. The items were chosen with this check.
"""

from __future__ import annotations

import argparse
import time

from asru.core.models import load_model
from asru.core.prompting import generate
from asru.data.synthetic import cloze_question
from asru.data.synthetic_vocab import REAL_ITEMS


def main(argv=None) -> int:
    """Run the check and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args(argv)
    lm = load_model(args.model)
    t0 = time.time()
    forms = {
        "question": [q for q, _, _, _ in REAL_ITEMS],
        "cloze": [cloze_question(c) for _, _, _, c in REAL_ITEMS],
    }
    for form, prompts in forms.items():
        outs = generate(lm, prompts, max_new_tokens=args.max_new_tokens, batch_size=16)
        hits = 0
        for (_, answer, _, _), prompt, out in zip(REAL_ITEMS, prompts, outs):
            if answer.lower() in out.lower():
                hits += 1
            else:
                print(f"miss ({form}): {prompt} -> {out[:80]!r} (want {answer!r})")
        print(f"{form}: {hits}/{len(prompts)} = {hits / len(prompts):.0%}")
    print(f"wall time {time.time() - t0:.0f} s for {2 * len(REAL_ITEMS)} generations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
