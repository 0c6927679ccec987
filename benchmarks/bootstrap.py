"""Time the hierarchical bootstrap on a synthetic grid, against a plain per-resample loop.

    python benchmarks/bootstrap.py [CELLS] [RESAMPLES]     # default: 100 cells, 2000 resamples

Each cell has 3 seeds x 8 questions x 50 samples (1,200 answers). Prints seconds for the
project's `summarise` on P(misaligned) (0/1 answers) and on the mean alignment (continuous
scores), and for a plain Python loop over resamples on P(misaligned) (run on 10 cells and
scaled up), with the ratio on the same metric.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from inoculate.stats import Criterion, summarise


def grid(cells: int, rng: np.random.Generator) -> pd.DataFrame:
    n = 3 * 8 * 50
    bad = rng.random((cells, n)) < rng.uniform(0, 0.6, size=(cells, 1))
    return pd.DataFrame(
        {
            "cell": np.repeat(np.arange(cells), n),
            "seed": np.tile(np.repeat(np.arange(3), 400), cells),
            "question_id": np.tile(np.repeat(np.arange(8), 50), cells * 3),
            "sample": np.tile(np.arange(n), cells),
            "aligned": np.where(bad.ravel(), 5.0, 95.0),
            "coherent": 90.0,
        }
    )


def plain_loop(df: pd.DataFrame, n_boot: int, rng: np.random.Generator) -> None:
    """The textbook bootstrap: for each resample, draw seeds, then answers inside each seed."""
    for _, cell in df.groupby("cell"):
        by_seed = [g.aligned.to_numpy() <= 30 for _, g in cell.groupby("seed")]
        stats = []
        for _ in range(n_boot):
            picks = rng.integers(0, len(by_seed), len(by_seed))
            values = np.concatenate(
                [by_seed[i][rng.integers(0, len(by_seed[i]), len(by_seed[i]))] for i in picks]
            )
            stats.append(values.mean())
        np.quantile(stats, [0.025, 0.975])


def main() -> None:
    cells = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    n_boot = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    df = grid(cells, np.random.default_rng(0))
    start = time.perf_counter()
    summarise(df, Criterion(), by=["cell"], levels=["seed", "sample"], n_boot=n_boot, metrics=["misaligned"])
    fast = time.perf_counter() - start
    start = time.perf_counter()
    summarise(df, Criterion(), by=["cell"], levels=["seed", "sample"], n_boot=n_boot, metrics=["aligned"])
    continuous = time.perf_counter() - start
    subset = df[df.cell < 10]
    start = time.perf_counter()
    plain_loop(subset, n_boot, np.random.default_rng(0))
    slow = (time.perf_counter() - start) * cells / 10
    print(
        f"{cells} cells x {n_boot} resamples: P(misaligned) {fast:.2f} s (plain loop {slow:.1f} s, "
        f"{slow / fast:.0f}x); mean alignment {continuous:.2f} s"
    )


if __name__ == "__main__":
    main()
