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
from inoculate.stats import CONFIDENCE, N_BOOT, RNG_SEED, Criterion, summarise

REQUIRED = ("response", "aligned", "coherent")


def score_columns(df: pd.DataFrame, columns: dict[str, str] | None = None) -> dict[str, str]:
    """The file's column of each score (`aligned`, `coherent`): as given in `columns`, else the
    score's own name, else `NAME_score` (the HW0 homework's files)."""
    columns = columns or {}
    unknown = sorted(set(columns) - {"aligned", "coherent"})
    if unknown:
        raise InputError(f"--columns {', '.join(unknown)}: only aligned=COL and coherent=COL can be given")
    out = {}
    for name in ("aligned", "coherent"):
        given = columns.get(name)
        out[name] = given or (
            name if name in df.columns or f"{name}_score" not in df.columns else f"{name}_score"
        )
    return out


def load_judged(
    paths: Sequence[Path],
    scale: tuple[float, float] = (0.0, 100.0),
    pool: bool = False,
    columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """All files as one table with a `file` column (the path as given) and a `source` label
    (its name without extension, or the path where two names are alike), so that each file is
    summarised alone; with `pool`, every row is one source, `pooled`. A file given twice is an
    error; a file's own `file` or `source` column is kept as `file_in_file` / `source_in_file`.
    Errors name the file (and line and column).

    The scores are read from `aligned` and `coherent`, or `aligned_score` and `coherent_score`,
    or the columns `columns` names (`{"aligned": COL}`).

    Scores on another `scale` (e.g. 0-1 or 1-10) are mapped linearly onto 0-100; a score outside
    the scale is an error, not a value. Non-numeric scores are missing and counted per file
    (`df.attrs["non_numeric"]`: file -> column -> count)."""
    low, high = map(float, scale)
    if not high > low:
        raise InputError(f"--scale {low:g} {high:g}: the top must be above the bottom")
    paths = [Path(p) for p in paths]
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise InputError(f"{path}: given twice (as {seen[path.resolve()]} too); each file counts once")
        seen[path.resolve()] = path
    stems = [p.stem for p in paths]
    frames, non_numeric = [], {}
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: file not found")
        try:
            df = read_table(path)
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: the file is empty") from None
        found = score_columns(df, columns)
        if any(col in df.columns for col in found.values()):
            df = df.drop(columns=[n for n, col in found.items() if col != n and n in df.columns])
            df = df.rename(columns={col: n for n, col in found.items() if col != n})
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            named = ", ".join(f"{n} from {c!r}" for n, c in found.items())
            raise InputError(
                f"{path}: missing column(s) {missing}; expected {list(REQUIRED)} (+ question, question_id), "
                f"read here as {named} (--columns aligned=COL coherent=COL names others)"
            )
        if df.empty:
            raise InputError(f"{path}: no rows (only a header); nothing to summarise")
        lines = df.attrs.get("lines") or list(range(2, len(df) + 2))
        df = df.copy().rename(columns={"file": "file_in_file", "source": "source_in_file"})
        for col in ("aligned", "coherent"):
            raw = df[col]
            values = pd.to_numeric(raw, errors="coerce")
            bad = raw.notna() & values.isna() & (raw.astype(str).str.strip() != "")
            if bad.any():
                non_numeric.setdefault(path.name, {})[col] = int(bad.sum())
            outside = values.notna() & ((values < low) | (values > high))
            if outside.any():
                i = int(outside.idxmax())
                raise InputError(
                    f"{path}:{lines[i]}: column '{col}': {values[i]:g} is outside the scale {low:g}-{high:g} "
                    f"({int(outside.sum())} such values); give the file's scale with --scale LOW HIGH"
                )
            df[col] = (values - low) / (high - low) * 100.0
        if "question_id" not in df:
            df["question_id"] = df.get("question", "all")
        label = "pooled" if pool else (path.stem if stems.count(path.stem) == 1 else str(path))
        df.insert(0, "source", label)
        df.insert(1, "file", str(path))
        df["sample"] = range(len(df))
        frames.append(df)
    if not frames:
        raise InputError("no judged files given")
    out = pd.concat(frames, ignore_index=True)
    out.attrs["non_numeric"] = non_numeric
    return out


def summarise_judged(
    samples: pd.DataFrame,
    criterion: Criterion,
    levels: Sequence[str] = ("sample",),
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    rng_seed: int = RNG_SEED,
) -> pd.DataFrame:
    """One row per source and metric: mean, ci_low, ci_high, n_samples, n_missing."""
    if "seed" in levels and "seed" not in samples:
        raise InputError("bootstrap level 'seed' needs a 'seed' column in the judged files")
    table = summarise(
        samples,
        criterion,
        by=["source"],
        levels=levels,
        n_boot=n_boot,
        confidence=confidence,
        rng_seed=rng_seed,
    )
    files = samples.groupby("source", sort=False)["file"].agg(lambda f: " + ".join(dict.fromkeys(f)))
    table.insert(1, "file", table["source"].map(files))
    return table.drop(columns=["n_seeds"])


def source_figure(summary: pd.DataFrame):
    """P(misaligned) with its interval, one marker per source."""
    from inoculate.plot import plt  # noqa: PLC0415 - matplotlib only when a figure is drawn

    d = summary[summary.metric == "misaligned"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(d) + 1.5), 3.6))
    ax.errorbar(
        range(len(d)),
        d["mean"],
        yerr=[d["mean"] - d.ci_low, d.ci_high - d["mean"]],
        fmt="o",
        color="#D55E00",
        capsize=3,
        linestyle="none",
    )
    ax.set_xticks(range(len(d)), d.source, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("P(misaligned)")
    ax.set_ylim(-0.02, max(0.2, float(d.ci_high.max()) + 0.05))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
