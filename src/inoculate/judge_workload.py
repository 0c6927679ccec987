"""How many judge calls a study makes and what they cost, synchronously and in batch mode,
counted from the study's own grid (cells x evals x questions x samples x conditions x metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from inoculate.config import BASE_ARM
from inoculate.evals import load_evals
from inoculate.judges.base import JudgeItem
from inoculate.judges.metrics import MetricSpec
from inoculate.judges.prompts import item_requests
from inoculate.sampling_plan import GenerationSettings, cell_requests

ANSWER_TOKENS = 300  # an answer's length where the study leaves max_new_tokens to the provider
CHARS_PER_TOKEN = 4


@dataclass
class JudgeWorkload:
    answers: int
    calls: int
    tokens_in: int
    tokens_out: int
    usd: float  # at the synchronous price (judge.price, or each metric's own)

    def batch_usd(self, discount: float = 0.5) -> float:
        return self.usd * discount


def judge_workload(study) -> JudgeWorkload:
    """Every answer the study samples, judged once: answers are assumed half of
    `generation.max_new_tokens` long (or ANSWER_TOKENS where it is unset)."""

    generation = GenerationSettings(**study.config["generation"])
    answer_tokens = (generation.max_new_tokens // 2) if generation.max_new_tokens else ANSWER_TOKENS
    total = JudgeWorkload(0, 0, 0, 0, 0.0)
    for setting in study.grid.setting_names:
        cells = study.grid.cells_of([setting])
        if not cells:
            continue
        _, _, arm, seed = cells[0]
        judge = study.judging.judge_for(setting)
        default = [MetricSpec.from_config(m) for m in judge["metrics"]]
        price = judge.get("price") or {}
        backdoor = None
        if study.grid.is_backdoor(setting):
            spec = study.backdoor(setting)
            backdoor = {"trigger": spec["trigger"], "system_prompt": spec["system_prompt"]}
        specs = study.data.eval_specs(setting)
        records = cell_requests(
            specs,
            study.grid.conditions(),
            study.inoculations.prompt(setting, arm) if arm != BASE_ARM else None,
            study.inoculations.placement(arm),
            generation,
            {"seed": seed},
            backdoor,
        )
        own = {
            name: [MetricSpec.from_config(m) for m in spec["judge"]]
            for name, spec in specs.items()
            if spec.get("judge")
        }
        questions = {(q.eval, q.id): q for q in load_evals(specs)}
        for r in records:
            q = questions.get((r.get("eval"), r.get("question_id")))
            item = JudgeItem(r["question"], "", q.judge_prompts if q else {}, q.extra if q else {})
            # the messages the judge will be sent, with an empty answer in place of the model's
            for metric, messages in item_requests(
                item, own.get(r.get("eval"), default), judge.get("prompts", {}), []
            ):
                tokens_in = sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN + answer_tokens
                tokens_out = metric.params()["max_tokens"]
                p = metric.price or price
                usd = (
                    tokens_in * p.get("input_per_million", 0) + tokens_out * p.get("output_per_million", 0)
                ) / 1e6
                total.calls += len(cells)
                total.tokens_in += tokens_in * len(cells)
                total.tokens_out += tokens_out * len(cells)
                total.usd += usd * len(cells)
        total.answers += len(records) * len(cells)
    return total
