"""Re-analysis of judged files from other tools (the Model-Organisms-for-EM format).

Each file holds `response, question, question_id, aligned, coherent` (CSV or
JSONL; blank scores are missing, counted, never dropped silently). The summary
has one row per file (`source` = file name without extension) and metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from inoculate.io import InputError
from inoculate.judging import read_table
from inoculate.stats import Criterion, summarise

REQUIRED = ("response", "aligned", "coherent")


def load_judged(paths: Sequence[Path]) -> pd.DataFrame:
    """All files as one table with a `source` column; errors name the file."""
    frames = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f"{path}: file not found")
        df = read_table(path)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; expected {list(REQUIRED)} (+ question, question_id)")
        df = df.copy()
        for col in ("aligned", "coherent"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
        if "question_id" not in df:
            df["question_id"] = df.get("question", "all")
        df.insert(0, "source", path.stem)
        df["sample"] = range(len(df))
        frames.append(df)
    if not frames:
        raise InputError("no judged files given")
    return pd.concat(frames, ignore_index=True)


def summarise_judged(
    samples: pd.DataFrame,
    criterion: Criterion,
    levels: Sequence[str] = ("sample",),
    n_boot: int = 2000,
    confidence: float = 0.95,
    rng_seed: int = 12345,
) -> pd.DataFrame:
    """One row per source and metric: mean, ci_low, ci_high, n_samples, n_missing."""
    if "seed" in levels and "seed" not in samples:
        raise InputError("bootstrap level 'seed' needs a 'seed' column in the judged files")
    table = summarise(samples, criterion, by=["source"], levels=levels, n_boot=n_boot, confidence=confidence,
                      rng_seed=rng_seed)
    return table.drop(columns=["n_seeds"])


def source_figure(summary: pd.DataFrame):
    """P(misaligned) with its interval, one marker per source."""
    from inoculate.plot import plt

    d = summary[summary.metric == "misaligned"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(d) + 1.5), 3.6))
    ax.errorbar(range(len(d)), d["mean"], yerr=[d["mean"] - d.ci_low, d.ci_high - d["mean"]], fmt="o",
                color="#D55E00", capsize=3, linestyle="none")
    ax.set_xticks(range(len(d)), d.source, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("P(misaligned)")
    ax.set_ylim(-0.02, max(0.2, float(d.ci_high.max()) + 0.05))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
