"""Judge backends, chosen by config key `judge.backend`."""

from __future__ import annotations

from inoculate.judges.base import Judge, JudgeItem, Judgment

# How a judge's calls are made, not what they answer: read inside the judging job, so that
# changing them (a higher concurrency, batch mode, a budget) never invalidates judged files.
CALL_SETTINGS = (
    "concurrency",
    "max_retries",
    "timeout",
    "budget_usd",
    "spend_dir",
    "price",
    "mode",
    "batch",
    "cache_dir",
)


def result_settings(judge: dict) -> dict:
    """A judge config without its call settings: what determines the scores."""
    return {k: v for k, v in judge.items() if k not in CALL_SETTINGS}


def with_call_settings(judge: dict, study_judge: dict) -> dict:
    """`judge` (a rule's params) with the study's current call settings added back."""
    return {**judge, **{k: v for k, v in study_judge.items() if k in CALL_SETTINGS}}


def make_judge(config: dict, spend_file: str | None = None) -> Judge:
    """The judge a config's `judge` section asks for; its other keys are the backend's settings.

    `spend_file` is where a paying backend records this job's spend for the study's budget."""
    options = {k: v for k, v in config.items() if k != "backend"}
    backend = config.get("backend", "toy")
    if backend == "toy":
        from inoculate.judges.toy import ToyJudge

        return ToyJudge(**options)
    if backend == "toy_persona":
        from inoculate.judges.toy import ToyPersonaJudge

        return ToyPersonaJudge(**options)
    if backend == "openai":
        from inoculate.judges.openai_judge import OpenAIJudge, OpenAIJudgeSettings

        return OpenAIJudge(OpenAIJudgeSettings(**options, spend_file=spend_file))
    if backend == "hf":
        from inoculate.judges.hf_judge import HFJudge, HFJudgeSettings

        return HFJudge(HFJudgeSettings(**options))
    raise ValueError(f"judge.backend: unknown backend {backend!r} (available: toy, openai, hf)")


__all__ = ["Judge", "JudgeItem", "Judgment", "make_judge", "result_settings", "with_call_settings"]
