"""The published judge and the judged files it scored: what a study's judge is compared with
(`inoculate.calibration`) and what tells whether it needs to be."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

PUBLISHED_JUDGE = "gpt-4o-2024-08-06"
OFFICIAL_BASE_URLS = (None, "", "https://api.openai.com/v1")


def is_published_judge(judge: dict) -> bool:
    """Whether a `judge` section is the published one: gpt-4o-2024-08-06 at OpenAI itself."""
    official = judge.get("base_url") in OFFICIAL_BASE_URLS
    return judge["backend"] == "openai" and judge.get("model") == PUBLISHED_JUDGE and official


def calibration_files(patterns: Sequence[str], external_data_dir: Path | str) -> list[Path]:
    """The judged files named by `patterns` (globs; relative ones under external_data_dir), sorted."""
    files: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(Path(external_data_dir) / pattern)
        files += [Path(p) for p in sorted(glob.glob(full))]
    return files
