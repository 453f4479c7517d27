"""The model card (README.md) written beside an exported checkpoint.

It records what a user of the checkpoint needs to know: the base model, the unlearning method and its
hyper-parameters, *how much* was forgotten (counts of people and questions per split, never the names or
facts themselves), the before/after metrics, how the export was verified, and any inference-time hooks
the weights alone do not reproduce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from asru.stages.methods import method_description

# Metrics shown first in the before/after table when present (the rest follow alphabetically).
HEADLINE_METRICS = ("leak_rate", "refusal_rate", "rougeL", "cloze_acc", "classification_acc")
SPLIT_ORDER = ("forget", "retain", "test", "real")


def data_counts(data: Mapping[str, Sequence] | None) -> dict[str, dict[str, int]]:
    """Per split: number of questions, distinct people, and image/text question counts (no names)."""
    out: dict[str, dict[str, int]] = {}
    for split, records in (data or {}).items():
        people = {r.person for r in records if getattr(r, "person", None)}
        out[split] = {
            "questions": len(records),
            "people": len(people),
            "image_questions": sum(1 for r in records if getattr(r, "modality", "text") == "image"),
            "text_questions": sum(1 for r in records if getattr(r, "modality", "text") != "image"),
        }
    return out


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (int, str)):
        return str(value)
    return "" if value is None else str(value)


def _split_names(*tables: Mapping | None) -> list[str]:
    names = {s for t in tables if t for s, v in t.items() if isinstance(v, Mapping)}
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def metrics_table(metrics: Mapping | None) -> str:
    """A markdown table of before/after metrics per split (empty string when there are none)."""
    if not metrics:
        return ""
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    rows = []
    for split in _split_names(before, after):
        b, a = before.get(split) or {}, after.get(split) or {}
        keys = {k for k, v in list(b.items()) + list(a.items()) if isinstance(v, (int, float)) and not isinstance(v, bool)}
        ordered = [k for k in HEADLINE_METRICS if k in keys] + sorted(keys - set(HEADLINE_METRICS))
        for k in ordered:
            rows.append(f"| {split} | {k} | {_fmt(b.get(k))} | {_fmt(a.get(k))} |")
    if not rows:
        return ""
    return "| split | metric | before | after |\n|---|---|---|---|\n" + "\n".join(rows)


def _counts_table(counts: Mapping[str, Mapping[str, int]]) -> str:
    rows = [f"| {s} | {c['people']} | {c['questions']} | {c['image_questions']} | {c['text_questions']} |"
            for s in _split_names(counts) for c in [counts[s]]]
    return "| split | people | questions | with image | text only |\n|---|---|---|---|---|\n" + "\n".join(rows)


def _yaml_block(obj) -> str:
    import yaml

    return "```yaml\n" + yaml.safe_dump(obj, sort_keys=False).rstrip() + "\n```"


def render_model_card(info: Mapping) -> str:
    """The README.md text for an export.

    ``info`` keys (all optional except ``base_model``): ``base_model`` (hub id or description),
    ``base_model_hub_id`` (for the front matter), ``source`` (what was exported), ``stage``, ``method``,
    ``counts`` (:func:`data_counts`), ``hyperparameters`` (dict of config sections), ``metrics``
    (``{"before": {split: {...}}, "after": {...}}``), ``hooks`` (description dict), ``verification``
    (dict), ``dtype``, ``is_vlm``, ``adapter_merged`` (bool), ``baked`` (list of str).
    """
    method = info.get("method")
    is_vlm = bool(info.get("is_vlm"))
    front = {"library_name": "transformers", "pipeline_tag": "image-text-to-text" if is_vlm else "text-generation",
             "tags": ["unlearning", "asru"] + ([method] if method and method != "asru" else [])}
    if info.get("base_model_hub_id"):
        front["base_model"] = info["base_model_hub_id"]
    import yaml

    parts = ["---\n" + yaml.safe_dump(front, sort_keys=False) + "---", "", f"# Unlearned model ({method or 'unknown method'})", ""]
    parts.append(f"- Base model: {info.get('base_model', 'unknown')}")
    if info.get("source"):
        parts.append(f"- Exported from: `{info['source']}`" + (f" (stage `{info['stage']}`)" if info.get("stage") else ""))
    if method:
        parts.append(f"- Method: {method_description(method)}")
    parts.append(f"- Weights: safetensors, {info.get('dtype', 'unknown dtype')}"
                 + ("; LoRA adapters merged into the weights" if info.get("adapter_merged") else ""))
    for line in info.get("baked") or []:
        parts.append(f"- Baked into the weights: {line}")
    parts.append(f"- Exported: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    parts.append("")

    parts += ["## What was forgotten", ""]
    counts = info.get("counts")
    if counts:
        parts += ["Counts only: the names and facts of the forgotten people are deliberately not recorded here.", "",
                  _counts_table(counts), ""]
    else:
        parts += ["Not recorded (the export was made without the run's benchmark).", ""]

    hooks = info.get("hooks")
    if hooks:
        kinds = "/".join(hooks.get("kinds") or [])
        layers = ", ".join(str(x) for x in hooks.get("layers") or [])
        parts += ["## Inference-time hooks (not in the weights)", "",
                  (f"The model was steered with `{kinds}` hooks at layer(s) {layers}, which cannot be written into the weights. "
                   "These weights alone behave like the model *before* that steering; apply the hooks described in "
                   f"`{hooks.get('file', 'steering/hooks.json')}` (with the direction file beside it) using "
                   "`steering.hooks.apply_hook` to reproduce the unlearned behaviour. "
                   "`vllm serve` and a plain transformers pipeline do NOT apply them."), ""]

    metrics = metrics_table(info.get("metrics"))
    parts += ["## Metrics (before = the model before unlearning, after = this checkpoint)", ""]
    parts += [metrics if metrics else "Not recorded (the run has no metrics.json yet; run the eval stage).", ""]

    if info.get("hyperparameters"):
        parts += ["## Hyper-parameters", "", _yaml_block(info["hyperparameters"]), ""]

    ver = info.get("verification")
    if ver:
        parts += ["## Verification", "",
                  (f"After writing, the checkpoint was reloaded from disk and its greedy answers to {ver.get('prompts', 0)} prompts "
                  f"({', '.join(f'{k}: {v}' for k, v in (ver.get('per_split') or {}).items())}; {ver.get('max_new_tokens')} new tokens each) "
                  f"were compared with the in-memory model: {'all identical' if ver.get('identical') else 'DIFFERENT'}. "
                  f"Parameter names checked against a freshly built `{ver.get('architecture', '?')}`: "
                  f"{'no extra or missing parameters' if ver.get('keys_ok') else 'mismatch'}."), ""]

    parts += ["## Usage", "", "```bash", "vllm serve ./THIS_DIR", "```", "", "```python",
              "from transformers import pipeline",
              f"pipe = pipeline(\"{front['pipeline_tag']}\", model=\"./THIS_DIR\")",
              "messages = [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Who are you?\"}]}]"
              if is_vlm else "messages = [{\"role\": \"user\", \"content\": \"Who are you?\"}]",
              "print(pipe(text=messages, max_new_tokens=64))" if is_vlm else "print(pipe(messages, max_new_tokens=64))",
              "```", ""]
    return "\n".join(parts)
