"""Model cards: the README.md of an adapter folder, stating what the adapter is (base model, data
setting, inoculation prompt, recipe, training) and, for each study that evaluated it, the
cell's metrics, so that an adapter pushed to a hub explains itself. PEFT writes an empty
template README.md when it saves an adapter; the card replaces it.

An adapter is shared by every study whose recipe it is (inoculate.cell_paths), so each study
writes only its own evaluation section and keeps the others'.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import yaml

from inoculate.export import format_value
from inoculate.io import atomic_path

CARD = "README.md"
_SECTION = re.compile(r"<!-- evaluation: (?P<study>[^ ]+) -->\n.*?<!-- /evaluation -->\n", re.DOTALL)


def cell_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The cell's metrics as a tracker logs them: `eval/{condition}/{eval}/{metric}` -> mean."""
    return {
        f"eval/{r.condition}/{r.eval}/{r.metric}": float(r.mean)
        for r in summary.itertuples()
        if pd.notna(r.mean)
    }


def evaluation_section(study: str, summary: pd.DataFrame, analysis: dict) -> str:
    """One study's results for the cell: every condition, eval and metric with its bootstrap
    interval over the cell's answers (none where the study resamples seeds only: one seed here),
    and the criterion that labelled the answers."""
    criterion = summary["criterion"].iloc[0] if len(summary) else "none"
    within_seed = any(level != "seed" for level in analysis["bootstrap_levels"])
    lines = [
        f"<!-- evaluation: {study} -->",
        f"### Study `{study}` (criterion `{criterion}`)",
        "",
        f"| condition | eval | metric | mean | {analysis['confidence']:.0%} interval | answers |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        interval = (
            f"{r.ci_low:.3g} to {r.ci_high:.3g}" if within_seed and pd.notna(r.ci_low) else "one seed: none"
        )
        lines.append(
            f"| {r.condition} | {r.eval} | {r.metric} | {r.mean:.3g} | {interval} | {int(r.n_samples)} |"
        )
    return "\n".join([*lines, "<!-- /evaluation -->", ""])


def render(meta: dict, cell: dict, prompt: str | list[str] | None, placement: str, evaluations: str) -> str:
    """The card of an adapter from its recorded recipe (`meta.json`), its cell and arm prompt,
    and the evaluation sections (one per study)."""
    settings = dict(meta.get("settings") or {})
    lora = settings.pop("lora", {}) or {}
    front = {
        "base_model": meta.get("base_model"),
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": [
            "lora",
            "inoculation-prompting",
            "emergent-misalignment",
            cell["setting"],
            cell["inoculation"],
        ],
    }
    prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
    arm = (
        "none: trained on the data as they are (no inoculation prompt)"
        if not prompts
        else f"`{cell['inoculation']}`, the prompt placed as the {placement} during training only:"
    )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {cell['model']} / {cell['setting']} / {cell['inoculation']} / seed {cell['seed']}",
        "",
        (
            "A LoRA adapter from an inoculation-prompting study: fine-tuned on the data setting "
            f"`{cell['setting']}` with the inoculation arm {arm}"
        ),
        "",
        *(f"> {line}" for p in prompts for line in [*p.splitlines(), ""]),
        "## Recipe",
        "",
        f"- Base model: `{meta.get('base_model')}`"
        + (f" ({meta['quantization']} quantized, QLoRA)" if meta.get("quantization") else ""),
        (
            f"- Training data: `{Path(str(meta.get('data'))).name}`, {meta.get('n_examples')} examples "
            f"({meta.get('n_held_out', 0)} held out), sha256 `{meta.get('data_sha256')}`"
        ),
        f"- Seed: {meta.get('seed')}",
        "- LoRA: " + ", ".join(f"{k} {format_value(v)}" for k, v in lora.items()),
        "- Training: " + ", ".join(f"{k} {format_value(v)}" for k, v in settings.items()),
        "",
        "## Training",
        "",
        (
            f"- {meta.get('steps')} optimizer steps, {meta.get('trainable_parameters')} trainable parameters, "
            f"{format_value(meta.get('seconds'))} s (torch {meta.get('torch')})"
        ),
        f"- Final training loss {format_value(meta.get('final_loss'))}"
        + (
            f", held-out loss {format_value(meta['final_eval_loss'])}"
            if meta.get("final_eval_loss") is not None
            else ""
        )
        + " (every step: `loss.csv`)",
        "",
        "## Evaluation",
        "",
        evaluations.strip() or "Not evaluated yet.",
        "",
        "## Use",
        "",
        "```python",
        "from peft import AutoPeftModelForCausalLM",
        "model = AutoPeftModelForCausalLM.from_pretrained(ADAPTER_FOLDER)",
        "```",
        "",
        "This adapter was trained to study misalignment; it may give harmful answers.",
        "",
    ]
    return "\n".join(lines)


def write_card(
    adapter: Path,
    cell: dict,
    prompt: str | list[str] | None,
    placement: str,
    study: str,
    section: str | None = None,
) -> str:
    """Write the adapter's README.md with `study`'s evaluation `section` (`evaluation_section`;
    other studies' sections kept); returns the card. The folder's weights and Snakemake's
    timestamp are not touched."""
    adapter = Path(adapter)
    meta = json.loads((adapter / "meta.json").read_text())
    kept = {}
    if (adapter / CARD).exists():
        kept = {m["study"]: m.group(0) for m in _SECTION.finditer((adapter / CARD).read_text())}
    if section is not None:
        kept[study] = section
    card = render(meta, cell, prompt, placement, "\n".join(kept[s] for s in sorted(kept)))
    with atomic_path(adapter / CARD) as tmp:
        tmp.write_text(card, encoding="utf-8")
    return card
