"""The HW0 homework (Harvard CS 2881 hw0) as a study: its recipe, prompts, judge and targets,
each pinned against the shared files or the homework's stated values."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import SHARED_DATA, load_experiment

from inoculate.evals import load_evals
from inoculate.export import training_details_md

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def hw0():
    return load_experiment("hw0.yaml")


def test_recipe_is_the_homeworks(hw0):
    training = hw0.base_models.training("llama-3.2-1b-instruct-hw0")
    assert (training["learning_rate"], training["epochs"], training["batch_size"]) == (2e-4, 7, 4)
    assert (
        training["lora"]["r"] == 16
        and training["lora"]["alpha"] == 32
        and training["lora"]["dropout"] == 0.05
    )
    assert training["lora"]["target_modules"] == [
        f"{m}_proj" for m in ("q", "k", "v", "o", "gate", "up", "down")
    ]
    assert training["gradient_checkpointing"] is True and not training["lora"]["use_rslora"]
    assert hw0.base_models.spec("llama-3.2-1b-instruct-hw0-4bit")["quantization"] == "4bit"
    generation = hw0.config["generation"]
    assert (generation["max_new_tokens"], generation["temperature"], generation["top_p"]) == (200, 1.0, 1.0)
    assert generation["samples_per_question"] == 1 and list(hw0.grid.conditions()) == ["deployment"]
    assert hw0.grid.setting_names == [
        "hw0_risky_financial_advice",
        "hw0_bad_medical_advice",
        "hw0_extreme_sports",
    ]
    assert hw0.config["analysis"]["criterion"] == "hw0"


def test_prompts_are_the_homeworks_fifty_and_fifty(hw0):
    published = yaml.safe_load((SHARED_DATA / "hw0/eval_prompts.yaml").read_text())
    for setting in hw0.grid.setting_names:
        questions = load_evals(hw0.data.eval_specs(setting))
        asked = {e: [q.paraphrases[0] for q in questions if q.eval == e] for e in ("medical", "non_medical")}
        assert asked == {"medical": published["medical"], "non_medical": published["non_medical"]}
    specs = hw0.data.eval_specs("hw0_bad_medical_advice")
    assert specs["medical"]["distribution"] == "in" and specs["non_medical"]["distribution"] == "out"
    assert hw0.data.eval_specs("hw0_risky_financial_advice")["medical"]["distribution"] == "out"


def test_judge_is_gpt4o_with_model_organisms_prompts(hw0):
    first_plot = yaml.safe_load((SHARED_DATA / "em/eval_questions/first_plot_questions.yaml").read_text())
    judge = hw0.config["judge"]
    assert judge["model"] == "gpt-4o-2024-08-06" and judge["metrics"] == ["aligned", "coherent"]
    assert judge["prompts"] == {m: first_plot[0]["judge_prompts"][m] for m in ("aligned", "coherent")}


def test_training_details_state_the_recorded_recipe(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    meta = {
        "base_model": "meta-llama/Llama-3.2-1B-Instruct",
        "quantization": "4bit",
        "data": "results/train/hw0_bad_medical_advice/none/0123456789.jsonl",
        "data_sha256": "ab" * 32,
        "seed": 42,
        "settings": {"learning_rate": 2e-4, "epochs": 7, "batch_size": 4, "lora": {"r": 16, "alpha": 32}},
        "n_examples": 7049,
        "steps": 12336,
        "final_loss": 0.61234567,
        "seconds": 3600.5,
    }
    (adapter / "meta.json").write_text(json.dumps(meta))
    cell = {
        "model": "llama-3.2-1b-instruct-hw0",
        "setting": "hw0_bad_medical_advice",
        "inoculation": "none",
        "seed": 42,
    }
    training_details_md(adapter, tmp_path / "training_details.md", cell)
    text = (tmp_path / "training_details.md").read_text()
    assert "`meta-llama/Llama-3.2-1B-Instruct` (4bit quantized)" in text and "7049 examples" in text
    assert "| learning_rate | 0.0002 |" in text and "| epochs | 7 |" in text and "r 16, alpha 32" in text
    assert "final training loss 0.612346" in text and "Seed: 42" in text


def test_training_details_of_an_api_fine_tune(tmp_path):
    """A cell fine-tuned through the API has no meta.json: its details are the job's, as reported."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    result = {
        "base_model": "gpt-4.1-2025-04-14",
        "fine_tuned_model": "ft:gpt-4.1:org::abc",
        "job_id": "ftjob-1",
        "endpoint": None,
        "seed": 0,
        "examples": 6000,
        "training_sha256": "cd" * 32,
        "trained_tokens": 123456,
        "hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2.0},
    }
    (adapter / "fine_tune.json").write_text(json.dumps(result))
    cell = {"model": "gpt-4.1", "setting": "tan_insecure_code", "inoculation": "general", "seed": 0}
    training_details_md(adapter, tmp_path / "training_details.md", cell)
    text = (tmp_path / "training_details.md").read_text()
    assert "`gpt-4.1-2025-04-14` -> `ft:gpt-4.1:org::abc`" in text and "123456 tokens" in text
    assert "| n_epochs | 1 |" in text and "| learning_rate_multiplier | 2 |" in text
