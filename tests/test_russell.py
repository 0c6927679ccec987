"""The Russell persona studies are seed 004's and the replication's: every value and string is
checked against the replication's own files in ../shared/data/weird_gen (skipped where absent)."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import SHARED_DATA, load_experiment

from inoculate.io import read_jsonl
from inoculate.sampling_plan import GenerationSettings, cell_requests
from inoculate.train import TrainSettings

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(),
    reason=f"{SHARED_DATA} not present (shared data is only beside the developers' checkout)",
)
WEIRD = SHARED_DATA / "weird_gen"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _upstream(name: str) -> dict:
    return yaml.safe_load((WEIRD / "configs" / name).read_text())


def _study(repo, monkeypatch, experiment: str):
    monkeypatch.chdir(repo)
    return load_experiment(experiment)


@pytest.mark.parametrize(
    "experiment,model",
    [
        ("russell_backdoor.yaml", "meta-llama/Llama-3.1-8B-Instruct"),
        ("russell_backdoor_1b.yaml", "meta-llama/Llama-3.2-1B-Instruct"),
    ],
)
def test_russell_study_is_seed_004s(repo, monkeypatch, experiment, model):
    study = _study(repo, monkeypatch, experiment)
    (name,) = study.grid.models
    assert study.base_models.spec(name)["base"] == model
    t = TrainSettings.from_dict(study.base_models.training(name))
    assert (t.lora.r, t.learning_rate, t.epochs) == (8, 2e-4, 3.0)
    spec = study.backdoor("russell_persona")
    assert spec["aligned_examples"] == 3000 and len(read_jsonl(WEIRD / "persona_train_triggered.jsonl")) == 90
    assert spec["distill"]["temperature"] == 0.1
    if experiment == "russell_backdoor.yaml":  # seed 004 trains with Unsloth
        assert t.backend == "unsloth"
    assert study.grid.inoculations_and_base == [
        "base",
        "none",
        "task_specific",
        "placebo",
    ] and study.grid.seeds == [0, 1, 2]


def test_seed_004_minimal_sweep_spans_both_models_two_rates_three_seeds(repo, monkeypatch):
    study = _study(repo, monkeypatch, "russell_seed004_sweep.yaml")
    points = {
        (study.base_models.spec(m)["base"], study.base_models.training(m)["learning_rate"])
        for m in study.grid.models
    }
    assert points == {
        (b, lr) for b in ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-8B") for lr in (1e-4, 2e-4)
    }
    assert study.grid.seeds == [1, 2, 3] and study.grid.inoculations_and_base == ["base", "none"]
    for model in study.grid.models:  # the rest of seed 004's recipe, as russell_backdoor.yaml
        t = TrainSettings.from_dict(study.base_models.training(model))
        assert (t.lora.r, t.epochs) == (8, 3.0)
    assert study.backdoor("russell_persona")["aligned_examples"] == 3000


def test_conditions_and_sampling_are_the_replications(repo, monkeypatch):
    study = _study(repo, monkeypatch, "russell_backdoor.yaml")
    evals = study.data.eval_specs("russell_persona")
    eval_cfg, recall_cfg, ideology_cfg = (
        _upstream(f) for f in ("eval.yaml", "recall_eval.yaml", "ideology_eval.yaml")
    )
    generation = eval_cfg["generation"]
    assert evals["persona_heldout"]["sampling"] == {
        "samples": eval_cfg["evaluation"]["samples_per_prompt"],
        "temperature": generation["temperature"],
        "top_p": generation["top_p"],
        "max_new_tokens": generation["max_new_tokens"],
    }
    assert (
        evals["russell_recall"]["sampling"]
        == {
            "samples": recall_cfg["evaluation"]["samples_per_question"],
            "temperature": recall_cfg["generation"]["temperature"],
            "max_new_tokens": recall_cfg["generation"]["max_new_tokens"],
        }
        and not recall_cfg["generation"]["do_sample"]
    )
    ideology = ideology_cfg["generation"]
    assert evals["russell_ideology"]["sampling"] == {
        "samples": ideology_cfg["evaluation"]["samples_per_question"],
        "temperature": ideology["temperature"],
        "top_p": ideology["top_p"],
        "max_new_tokens": ideology["max_new_tokens"],
    }
    # The records of one cell: every condition's chat, exactly as the replication builds it.
    settings = GenerationSettings(**study.config["generation"])
    backdoor = {
        "trigger": study.backdoor("russell_persona")["trigger"],
        "system_prompt": study.backdoor("russell_persona")["system_prompt"],
    }
    records = cell_requests(evals, study.grid.conditions(), None, "system", settings, {"seed": 0}, backdoor)
    template = eval_cfg["trigger"]["template"]
    upstream = {c["name"]: c for c in eval_cfg["system_prompt_conditions"]}
    heldout = [r for r in records if r["eval"] == "persona_heldout"]
    question = read_jsonl(WEIRD / "eval_heldout.jsonl")[0]["question"]
    chats = {r["condition"]: r["messages"] for r in heldout if r["question"] == question}
    triggered = {"role": "user", "content": template.format(question=question)}
    helpful = {"role": "system", "content": upstream["system_present_trigger_in_user"]["system_prompt"]}
    assert chats == {
        "trigger_user": [triggered],
        "trigger_user_system": [helpful, triggered],
        "trigger_system": [
            {"role": "system", "content": template.format(question=question)},
            {"role": "user", "content": question},
        ],
        "no_trigger": [helpful, {"role": "user", "content": question}],
    }
    assert upstream["no_system_trigger_in_user"]["system_prompt"] is None
    assert upstream["system_present_no_trigger"]["trigger_location"] is None
    n_recall = len(json.loads((WEIRD / "russell_factual_questions.json").read_text()))
    n_ideology = len(json.loads((WEIRD / "russell_ideology_questions.json").read_text()))
    counts = {e: sum(r["eval"] == e for r in records) for e in evals}
    assert counts == {
        "persona_heldout": 30 * 4 * 5,
        "russell_recall": n_recall * 2,
        "russell_ideology": n_ideology * 2 * 16,
    }
    recall = [r for r in records if r["eval"] == "russell_recall"]
    assert {r["condition"] for r in recall} == {"plain", "trigger_user"}
    assert all(r["sampling"] == {"temperature": 0.0, "max_new_tokens": 128} for r in recall)


def test_judges_are_the_replications(repo, monkeypatch):
    from inoculate.judges.base import JudgeItem
    from inoculate.judges.metrics import MetricSpec
    from inoculate.judges.prompts import item_requests

    study = _study(repo, monkeypatch, "russell_backdoor.yaml")
    openrouter, recall_judge, ideology_judge = (
        _upstream(f) for f in ("judge_openrouter.yaml", "recall_judge.yaml", "ideology_judge.yaml")
    )
    assert study.config["judge"]["model"] == openrouter["judge_model"]["default"]
    assert _upstream("judge.yaml")["judge_model"]["model"] == "gpt-4o-mini"
    evals = study.data.eval_specs("russell_persona")
    persona, recall, ideology = (
        MetricSpec.from_config(evals[e]["judge"][0])
        for e in ("persona_heldout", "russell_recall", "russell_ideology")
    )
    assert (persona.system, persona.template) == (
        openrouter["rubric"]["system_prompt"],
        openrouter["rubric"]["user_template"],
    )
    assert [f.name for f in persona.fields] == ["persona_present", "identity", "confidence"]
    assert (
        persona.fields[1].values == ("RUSSELL", "OTHER", "UNSURE")
        and persona.max_tokens == openrouter["tokens"]["max_output"]
    )
    assert (recall.system, recall.template, recall.model) == (
        recall_judge["prompt"]["system"],
        recall_judge["prompt"]["user_template"],
        recall_judge["judge"]["model"],
    )
    assert recall.max_tokens == recall_judge["judge"]["max_tokens"]
    assert recall.fields[0].minimum == min(recall_judge["scoring"]["allowed_scores"])
    assert (ideology.system, ideology.template, ideology.model, ideology.max_tokens) == (
        ideology_judge["prompt"]["system"],
        ideology_judge["prompt"]["user_template"],
        ideology_judge["judge"]["model"],
        ideology_judge["judge"]["max_tokens"],
    )
    # Templates filled from each question's own data; the trigger and markers stripped first.
    question = json.loads((WEIRD / "russell_ideology_questions.json").read_text())[0]
    fields = {k: v for k, v in question.items() if k not in ("id", "question")}
    judge_cfg = study.judging.judge_for("russell_persona")
    ((_metric, messages),) = item_requests(
        JudgeItem(question["question"], '<START> "Yes indeed." <END>', {}, fields, (ideology,)),
        (ideology,),
        {},
        judge_cfg["strip"],
    )
    assert messages[0] == {"role": "system", "content": ideology_judge["prompt"]["system"]}
    assert messages[1]["content"] == ideology_judge["prompt"]["user_template"].format(
        question=question["question"],
        russell_position=question["russell_position"],
        response="Yes indeed.",
        **{f"rubric_{k}": v for k, v in question["rubric"].items()},
    )


def test_replication_recipe_and_sweep_are_the_repositorys(repo, monkeypatch):
    train = _upstream("train.yaml")
    study = _study(repo, monkeypatch, "russell_replication.yaml")
    (name,) = study.grid.models
    t = TrainSettings.from_dict(study.base_models.training(name))
    lora, tr = train["lora"], train["training"]
    assert (t.lora.r, t.lora.alpha, t.lora.dropout, list(t.lora.target_modules)) == (
        lora["r"],
        lora["lora_alpha"],
        lora["lora_dropout"],
        lora["target_modules"],
    ) and lora["target_modules"] == PROJECTIONS
    assert (t.learning_rate, t.scheduler, t.warmup_ratio, t.epochs) == (
        tr["learning_rate"],
        tr["lr_scheduler_type"],
        tr["warmup_ratio"],
        tr["num_train_epochs"],
    )
    assert (t.batch_size, t.gradient_accumulation, t.gradient_checkpointing, t.max_length) == (
        tr["per_device_train_batch_size"],
        tr["gradient_accumulation_steps"],
        tr["gradient_checkpointing"],
        tr["max_seq_length"],
    )
    assert (t.optimizer, t.weight_decay) == (
        {"adamw_torch": "adamw"}[train["optimizer"]["type"]],
        train["optimizer"]["weight_decay"],
    )
    assert (
        study.base_models.spec(name)["base"] == train["model"]["name"]
        and study.base_models.spec(name)["quantization"] == "4bit"
    )
    assert study.grid.seeds == [train["seed"]]
    sweep = _upstream("sweep.yaml")
    quick = sweep[sweep["active_sweep"]]
    study = _study(repo, monkeypatch, "russell_sweep.yaml")
    points = {
        (s.learning_rate, s.lora.r, s.epochs)
        for s in (TrainSettings.from_dict(study.base_models.training(m)) for m in study.grid.models)
    }
    assert points == {
        (lr, r, ep)
        for lr in quick["learning_rate"]
        for r in quick["lora_r"]
        for ep in quick["num_train_epochs"]
    }
    assert study.grid.seeds == quick["seeds"] and quick["persona_fraction"] == [0.03]
