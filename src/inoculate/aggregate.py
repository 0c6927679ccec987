"""The aggregate stage: judged files to the samples table and the summary contract."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from inoculate.api.ledger import SpendLedger
from inoculate.checkpoints import final_tag
from inoculate.coords import COORDS, cell_coordinates
from inoculate.io import read_jsonl
from inoculate.stats import Criterion, differences, summarise

SUMMARY_BY = ["model", "setting", "inoculation", "eval", "distribution", "condition"]
SUMMARY_COLUMNS = [
    *SUMMARY_BY,
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_samples",
    "n_missing",
    "n_excluded",
    "criterion",
    "scale",
]


def load_samples(paths: Iterable[Path], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Every judged answer with its grid coordinates (and the `extra` fields), one row each."""
    frames = [pd.DataFrame(read_jsonl(p)) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise ValueError("no judged answers to aggregate")
    df = pd.concat(frames, ignore_index=True)
    keep = [
        c
        for c in [
            *COORDS,
            *extra,
            "question",
            "answer",
            "answer_tokens",
            "aligned",
            "coherent",
            "trait",
            "label",
            "judge",
        ]
        if c in df
    ]
    df = df[keep]
    for col in ("aligned", "coherent", "trait"):
        if col not in df:
            df[col] = float("nan")
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _options(analysis: dict, criteria: dict | None = None) -> tuple[Criterion, dict]:
    """The study's criterion and the bootstrap options; `criteria` ("setting/eval" or
    "setting" -> a criterion spec) are the settings' and evals' own criteria."""
    criterion = Criterion.from_analysis(analysis)
    own = {}
    for key, spec in (criteria or {}).items():
        setting, _, eval_name = key.partition("/")
        own[(setting, eval_name)] = Criterion.from_analysis(analysis, spec)
    return criterion, {
        "levels": analysis["bootstrap_levels"],  # every default: config/config.yaml
        "n_boot": analysis["bootstrap_resamples"],
        "confidence": analysis["confidence"],
        "rng_seed": analysis["rng_seed"],
        "criteria": own or None,
    }


def summary_table(samples: pd.DataFrame, analysis: dict, criteria: dict | None = None) -> pd.DataFrame:
    """`summary.csv`: one row per model, setting, inoculation, eval, condition and metric."""
    criterion, options = _options(analysis, criteria)
    table = summarise(samples, criterion, by=SUMMARY_BY, rate=analysis.get("rate", "pooled"), **options)
    return table[SUMMARY_COLUMNS + (["target"] if "target" in table else [])]  # target: the hw0 criterion's


def differences_table(
    samples: pd.DataFrame, analysis: dict, reference: str = "none", criteria: dict | None = None
) -> pd.DataFrame:
    """`differences.csv`: each arm minus `reference` (paired by seed), per cell and metric."""
    criterion, options = _options(analysis, criteria)
    if list(options["levels"]) == ["seed"]:
        options["levels"] = ["seed", "sample"]  # a difference of per-seed means: resample seeds, then answers
    by = [c for c in SUMMARY_BY if c != "inoculation"]
    return differences(samples, criterion, by=by, reference=reference, **options)


def question_table(samples: pd.DataFrame, analysis: dict, criteria: dict | None = None) -> pd.DataFrame:
    """`questions.csv`: the summary per question (the question level is then not resampled)."""
    criterion, options = _options(analysis, criteria)
    options["levels"] = [lvl for lvl in options["levels"] if lvl != "question"] or ["sample"]
    return summarise(samples, criterion, by=[*SUMMARY_BY, "question_id"], **options)


def training_table(adapter_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """Loss log of every adapter (`loss.csv` + coordinates from `meta.json`), one row per step."""
    frames = []
    for d in map(Path, adapter_dirs):
        loss = d / "loss.csv"
        if not loss.exists():
            continue
        model, setting, inoculation, seed = cell_coordinates(d)
        f = pd.read_csv(loss)
        f.insert(0, "seed", seed)
        f.insert(0, "inoculation", inoculation)
        f.insert(0, "setting", setting)
        f.insert(0, "model", model)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["model", "setting", "inoculation", "seed", "step", "loss"])
    return pd.concat(frames, ignore_index=True)


def recipe_table(adapter_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """`training_recipes.csv`: every resolved training value of every adapter (from its
    `meta.json`), one row per adapter, so each number can be traced to the recipe that made it."""
    rows = []
    for d in map(Path, adapter_dirs):
        meta_path = d / "meta.json"
        if not meta_path.exists():
            continue  # an API-trained cell: its fine_tune.json holds the API's hyperparameters
        model, setting, inoculation, seed = cell_coordinates(d)
        meta = json.loads(meta_path.read_text())
        settings = dict(meta.get("settings", {}))
        lora = settings.pop("lora", {}) or {}
        row = {
            "model": model,
            "setting": setting,
            "inoculation": inoculation,
            "seed": seed,
            "base_model": meta.get("base_model"),
            "quantization": meta.get("quantization"),
        }
        row.update({k: _cell(v) for k, v in settings.items()})
        row.update({f"lora_{k}": _cell(v) for k, v in lora.items()})
        row.update(
            {
                k: meta.get(k)
                for k in (
                    "n_examples",
                    "n_held_out",
                    "steps",
                    "trainable_parameters",
                    "final_loss",
                    "final_eval_loss",
                    "data_sha256",
                )
            }
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["model", "setting", "inoculation", "seed"])


def _cell(value):
    """A list as one CSV cell (`q_proj;v_proj`), anything else as it is."""
    return ";".join(map(str, value)) if isinstance(value, list | tuple) else value


def judge_usage_table(
    usage_files: Iterable[Path | str], ledger_dir: Path | str | None = None
) -> pd.DataFrame:
    """Calls, cache hits, tokens and cost per judge job (its last run), plus a `total` row and,
    from the spend ledger, an `all runs` row: every paid call of every run, reruns included,
    which is what `judge.budget_usd` is held against."""
    rows = []
    for path in map(Path, usage_files):
        model, setting, inoculation, seed = cell_coordinates(path)
        usage = json.loads(path.read_text())
        usage["unparsed"] = sum((usage.get("unparsed") or {}).values())  # rubric verdicts that did not parse
        rows.append({"model": model, "setting": setting, "inoculation": inoculation, "seed": seed, **usage})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    numeric = [
        "answers",
        "unparsed",
        "failed_replies",
        "calls",
        "cache_hits",
        "tokens_in",
        "tokens_out",
        "cost_usd",
    ]
    total = {"model": "total", **{c: table[c].sum() for c in numeric if c in table}}
    rows = [total]
    if ledger_dir is not None:
        entries = SpendLedger(ledger_dir).entries()
        rows.append(
            {
                "model": "all runs",
                "calls": len(entries),
                "tokens_in": sum(e["tokens_in"] for e in entries),
                "tokens_out": sum(e["tokens_out"] for e in entries),
                "cost_usd": sum(e["cost_usd"] for e in entries),
            }
        )
    out = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
    counts = ["seed", *(c for c in numeric if c != "cost_usd"), "batches", "batched_calls"]
    for column in (c for c in counts if c in out):  # counts as integers; blank where a row has none
        out[column] = out[column].astype("Int64")
    return out


CHECKPOINT_BY = ["checkpoint", "step", "progress"]


def checkpoint_table(
    final_files: Iterable[Path | str],
    checkpoint_files: Iterable[Path | str],
    adapter_dirs: Iterable[Path | str],
    analysis: dict,
    criteria: dict | None = None,
) -> pd.DataFrame:
    """`checkpoints.csv`: the summary per cell at every checkpoint, the final adapter (`final`,
    progress 1) and the base model (`base`, step 0), with each checkpoint's step and share of
    training. Intervals pool seeds at each checkpoint as the summary does."""
    tags = {}  # an adapter's coordinates -> its final tag
    for d in map(Path, adapter_dirs):
        tags[cell_coordinates(d)] = final_tag(d)
    final = load_samples(final_files)
    cells = list(zip(final.model, final.setting, final.inoculation, final.seed))
    base = final_tag(None)
    for column in CHECKPOINT_BY:
        final[column] = [tags.get(cell, base)[column] for cell in cells]
    frames = [final]
    checkpoints = list(map(Path, checkpoint_files))
    if checkpoints:
        frames.append(load_samples(checkpoints, extra=CHECKPOINT_BY))
    samples = pd.concat(frames, ignore_index=True)
    # A checkpoint's step and progress differ per seed (data sizes are equal, so they rarely do):
    # rows are per checkpoint label, with the mean step and share of training of its seeds.
    position = samples.groupby(["model", "setting", "inoculation", "checkpoint"])[
        ["step", "progress"]
    ].transform("mean")
    samples[["step", "progress"]] = position
    criterion, options = _options(analysis, criteria)
    return summarise(
        samples, criterion, by=[*SUMMARY_BY, *CHECKPOINT_BY], rate=analysis.get("rate", "pooled"), **options
    )
