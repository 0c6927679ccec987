"""What a generation job samples, planned without the model stack: sampling settings, test
conditions, the records of a cell (every eval x condition x question x sample) and how API
sampling groups them into calls. Building the DAG and API jobs import this, never torch."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from inoculate.backdoor import CONDITIONS as BACKDOOR_CONDITIONS
from inoculate.backdoor import Trigger, condition_messages
from inoculate.evals import EvalQuestion, load_spec
from inoculate.schema import schema_defaults
from inoculate.training_set import apply_prompt

_DEFAULTS = schema_defaults("generation")


@dataclass
class GenerationSettings:
    """Sampling parameters (config key `generation`; each default is the schema's)."""

    temperature: float = _DEFAULTS["temperature"]
    top_p: float = _DEFAULTS["top_p"]
    max_new_tokens: int | None = _DEFAULTS["max_new_tokens"]  # None: the API's default (API models only)
    samples_per_question: int | None = _DEFAULTS["samples_per_question"]  # None: the eval file's
    batch_size: int = _DEFAULTS["batch_size"]
    cache_implementation: str | None = _DEFAULTS["cache_implementation"]  # auto: static on a GPU
    backend: str = _DEFAULTS["backend"]  # or "vllm" (GPU; installed separately)


@dataclass(frozen=True)
class Condition:
    """A test condition: whether the arm's inoculation prompt is present at test time, a
    test-time system prompt (Tan et al.'s evaluation-prompt ablation), and text put before
    each question (a trigger such as `$|TRIGGER|$ `, exactly as given)."""

    name: str
    with_training_prompt: bool
    system_prompt: str | None = None
    user_prefix: str | None = None
    judge_sees_prefix: bool = False  # the judge is shown the question with the prefix (Tan's backdoor eval)

    @classmethod
    def from_config(cls, name: str, spec: bool | dict) -> Condition:
        if isinstance(spec, bool):
            return cls(name, spec)
        return cls(
            name,
            bool(spec.get("training_prompt", False)),
            spec.get("system_prompt"),
            spec.get("user_prefix"),
            bool(spec.get("judge_sees_prefix", False)),
        )

    def shown(self, paraphrase: str) -> str:
        """The question as a record carries it (and the judge sees it)."""
        return (self.user_prefix or "") + paraphrase if self.judge_sees_prefix else paraphrase


def requests(
    questions: list[EvalQuestion],
    conditions: list[Condition],
    prompt: str | None,
    placement: str,
    settings: GenerationSettings,
    coords: dict,
    distributions: dict[str, str] | None = None,
) -> list[dict]:
    """One record per sample to draw, carrying its grid coordinates and chat messages.

    A condition that adds the training prompt is skipped for arms without one.
    """
    out = []
    if isinstance(prompt, list):  # an arm trained on several paraphrases is tested with the first
        prompt = prompt[0]
    for cond in conditions:
        if cond.with_training_prompt and prompt is None:
            continue

        def chat(q: EvalQuestion, paraphrase: str, cond: Condition = cond) -> list[dict]:
            # An empty system prompt is sent as one (Tan et al.'s code evals): "" is not None.
            system = cond.system_prompt if cond.system_prompt is not None else q.system
            user = (cond.user_prefix or "") + paraphrase
            messages = ([{"role": "system", "content": system}] if system is not None else []) + [
                {"role": "user", "content": user}
            ]
            if cond.with_training_prompt:
                messages = apply_prompt(messages, prompt, placement, on_existing_system="prepend")
            return messages

        out += sample_records(questions, cond.name, chat, settings, coords, distributions, cond.shown)
    return out


def sample_records(
    questions: list[EvalQuestion],
    condition: str,
    chat: Callable[[EvalQuestion, str], list[dict]],
    settings: GenerationSettings,
    coords: dict,
    distributions: dict[str, str] | None = None,
    shown: Callable[[str], str] | None = None,
) -> list[dict]:
    """The records of one condition: each paraphrase of each question, `chat(question,
    paraphrase)` as its messages, once per sample; `shown(paraphrase)` is the question the
    record carries (default: the paraphrase)."""
    out = []
    for q in questions:
        n = settings.samples_per_question or q.samples
        for p_index, paraphrase in enumerate(q.paraphrases):
            messages = chat(q, paraphrase)
            out += [
                {
                    **coords,
                    "eval": q.eval,
                    "distribution": (distributions or {}).get(q.eval),
                    "condition": condition,
                    "question_id": q.id,
                    "paraphrase": p_index,
                    "sample": s,
                    "question": shown(paraphrase) if shown else paraphrase,
                    "messages": messages,
                }
                for s in range(n)
            ]
    return out


def backdoor_requests(
    questions: list[EvalQuestion],
    trigger: Trigger,
    system_prompt: str,
    settings: GenerationSettings,
    coords: dict,
    distributions: dict[str, str] | None = None,
    conditions: tuple[str, ...] = tuple(BACKDOOR_CONDITIONS),
) -> list[dict]:
    """One record per sample of a backdoor setting, in each of its trigger conditions, as
    `requests` makes them for the study's conditions."""
    out = []
    for condition in conditions:

        def chat(q: EvalQuestion, paraphrase: str, condition: str = condition) -> list[dict]:
            return condition_messages(condition, paraphrase, trigger, system_prompt)

        out += sample_records(questions, condition, chat, settings, coords, distributions)
    return out


def cell_requests(
    evals: dict[str, dict],
    conditions: dict[str, bool],
    prompt: str | None,
    placement: str,
    settings: GenerationSettings,
    coords: dict,
    backdoor: dict | None = None,
) -> list[dict]:
    """The records one generation job samples: every eval question of the cell's setting
    (`Study.eval_specs`) in the study's conditions, or, for a backdoor setting
    (`{trigger, system_prompt}`), in its four trigger conditions. An eval with its own
    `conditions` is sampled in those only; one with its own `sampling` gets its sample
    count, and its temperature, top_p and length travel with each record (`sampling`)."""
    out = []
    for name, spec in evals.items():
        questions = load_spec(name, spec)
        distributions = {name: spec["distribution"]}
        own = spec.get("sampling") or {}
        eval_settings = replace(
            settings, samples_per_question=own.get("samples", settings.samples_per_question)
        )
        wanted = spec.get("conditions")
        if backdoor:
            trigger = Trigger.from_config(backdoor["trigger"])
            records = backdoor_requests(
                questions,
                trigger,
                backdoor["system_prompt"],
                eval_settings,
                coords,
                distributions,
                tuple(wanted) if wanted else tuple(BACKDOOR_CONDITIONS),
            )
        else:
            conds = [
                Condition.from_config(c, spec) for c, spec in conditions.items() if not wanted or c in wanted
            ]
            records = requests(questions, conds, prompt, placement, eval_settings, coords, distributions)
        sampling = {k: own[k] for k in SAMPLING_KEYS if k in own}
        if sampling:
            records = [{**r, "sampling": sampling} for r in records]
        out += records
    return out


# Sampling parameters an eval may set for its own records.
SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens")


def record_settings(settings: GenerationSettings, record: dict) -> GenerationSettings:
    """The sampling parameters of one record: the study's, with its eval's own on top."""
    own = record.get("sampling")
    return replace(settings, **own) if own else settings


@dataclass
class Call:
    """One chat-completions request: `n` samples of one prompt."""

    records: list[int]  # indices of the records it answers
    messages: list[dict]
    n: int
    seed: int
    sampling: dict | None = None  # the records' own sampling parameters (see `record_settings`)


def plan_calls(records: list[dict], seed: int, samples_per_call: int) -> list[Call]:
    """Group the records that share a prompt into calls of at most `samples_per_call` samples
    (API sampling and vLLM draw a prompt's samples as `n`).

    Each call of a prompt gets its own seed, so that the calls draw different samples."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        key = json.dumps([r["messages"], r.get("sampling")], sort_keys=True, ensure_ascii=False)
        groups.setdefault(key, []).append(i)
    calls = []
    for indices in groups.values():
        for part, start in enumerate(range(0, len(indices), samples_per_call)):
            chunk = indices[start : start + samples_per_call]
            first = records[chunk[0]]
            calls.append(
                Call(chunk, first["messages"], len(chunk), seed * 100_003 + part, first.get("sampling"))
            )
    return calls


def answer_fields(completion: str) -> dict:
    """A completion as a record keeps it: `answer` without surrounding whitespace (what tables
    and exports show), and that whitespace in `answer_whitespace` where there is any, so that a
    judge that reads completions verbatim (`judge.verbatim`) gets them back exactly."""
    answer = completion.strip()
    if answer == completion:
        return {"answer": answer}
    lead = completion[: len(completion) - len(completion.lstrip())]
    trail = completion[len(completion.rstrip()) :]
    return {"answer": answer, "answer_whitespace": [lead, trail]}


def verbatim_answer(record: dict) -> str:
    """The completion exactly as the model gave it (`answer_fields` undone)."""
    lead, trail = record.get("answer_whitespace") or ("", "")
    return f"{lead}{record['answer']}{trail}"
