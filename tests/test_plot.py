"""Figures are reproducible files: the same figure gives the same bytes, PDF and PNG alike."""

from __future__ import annotations

import time

import pandas as pd

from inoculate.plot import progress_figure, save


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    rows = []
    for arm, rates in (("base", [0.0]), ("none", [0.1, 0.4]), ("general", [0.0, 0.01])):
        progress = [0.0] if arm == "base" else [0.5, 1.0]
        for p, rate in zip(progress, rates):
            rows.append(
                {
                    "model": "toy",
                    "setting": "s",
                    "eval": "e",
                    "inoculation": arm,
                    "metric": "misaligned",
                    "condition": "deployment",
                    "distribution": "out",
                    "progress": p,
                    "mean": rate,
                    "ci_low": rate,
                    "ci_high": rate,
                }
            )
    table = pd.DataFrame(rows)
    written = []
    for i in range(2):
        save(progress_figure(table, ["base", "none", "general"], "deployment", "out"), tmp_path / f"{i}.pdf")
        written.append(((tmp_path / f"{i}.pdf").read_bytes(), (tmp_path / f"{i}.png").read_bytes()))
        time.sleep(1.1)  # a creation date in the file would now differ
    assert written[0] == written[1]
