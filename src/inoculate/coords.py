"""The grid coordinates every sampled and judged record carries, so that any file of answers
can be read alone and every table groups by the same names."""

from __future__ import annotations

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
