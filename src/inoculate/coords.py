"""The grid coordinates every sampled and judged record carries, so that any file of answers
can be read alone and every table groups by the same names."""

from __future__ import annotations

from pathlib import Path

COORDS = [
    "model",
    "setting",
    "inoculation",
    "seed",
    "eval",
    "distribution",
    "condition",
    "question_id",
    "paraphrase",
    "sample",
]


def cell_coordinates(path: Path | str) -> tuple[str, str, str, int]:
    """(model, setting, inoculation, seed) of a cell's folder or file, named
    `results/{stage}/{model}/{setting}/{inoculation}/{digest}/seed{seed}[.jsonl]`
    (inoculate.cell_paths)."""
    *_, model, setting, inoculation, _digest, seed = Path(path).parts
    return model, setting, inoculation, int(seed.removeprefix("seed").split(".")[0])
