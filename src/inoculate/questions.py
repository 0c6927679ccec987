"""One eval question, whatever file it came from: the unit that sampling, judging and the
tables share. Its own module so that every reader of question files (`evals`, `tan_evals`)
builds it without importing another."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvalQuestion:
    eval: str
    id: str
    paraphrases: tuple[str, ...]
    samples: int = 1
    system: str | None = None
    judge_prompts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
