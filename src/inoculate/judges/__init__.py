"""Judge backends, chosen by config key `judge.backend`."""

from __future__ import annotations

from inoculate.judges.base import Judge, JudgeItem, Judgment


def make_judge(config: dict) -> Judge:
    """The judge a config's `judge` section asks for."""
    backend = config.get("backend", "toy")
    if backend == "toy":
        from inoculate.judges.toy import ToyJudge

        return ToyJudge(**config.get("options", {}))
    raise ValueError(f"judge.backend: unknown backend {backend!r} (available: toy)")


__all__ = ["Judge", "JudgeItem", "Judgment", "make_judge"]
