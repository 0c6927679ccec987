"""Judge backends, chosen by config key `judge.backend`."""

from __future__ import annotations

from dataclasses import fields

from inoculate.judges.base import Judge, JudgeItem, Judgment
from inoculate.judges.openai_judge import OpenAIJudge, OpenAIJudgeSettings
from inoculate.judges.toy import ToyJudge, ToyPersonaJudge
from inoculate.schema import schema_defaults

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


def judge_options(config: dict) -> dict:
    """A `judge` section with its backend's defaults from the schema filled in (the toy
    persona judge of backdoor studies takes the toy judge's)."""
    backend = config["backend"]
    like = "toy" if backend == "toy_persona" else backend
    return {**schema_defaults("judge", given={"backend": like}), **config, "backend": backend}


def _taken_by(settings_class: type, options: dict) -> dict:
    """The options a backend's settings take: the schema fills every backend's call settings
    (spend ledger, mode), which only a paying backend uses."""
    names = {f.name for f in fields(settings_class)}
    return {k: v for k, v in options.items() if k in names}


def make_judge(config: dict, spend_file: str | None = None) -> Judge:
    """The judge a config's `judge` section asks for; its other keys are the backend's settings.

    `spend_file` is where a paying backend records this job's spend for the study's budget."""
    options = judge_options(config)
    backend = options.pop("backend")
    if backend == "toy":
        return ToyJudge(min_words=options["min_words"])
    if backend == "toy_persona":
        return ToyPersonaJudge(min_words=options["min_words"])
    if backend == "openai":
        return OpenAIJudge(
            OpenAIJudgeSettings(**_taken_by(OpenAIJudgeSettings, options), spend_file=spend_file)
        )
    if backend == "hf":
        from inoculate.judges.hf_judge import HFJudge, HFJudgeSettings  # noqa: PLC0415 - loads torch

        return HFJudge(HFJudgeSettings(**_taken_by(HFJudgeSettings, options)))
    raise ValueError(f"judge.backend: unknown backend {backend!r} (available: toy, openai, hf)")


__all__ = [
    "Judge",
    "JudgeItem",
    "Judgment",
    "judge_options",
    "make_judge",
    "result_settings",
    "with_call_settings",
]
