"""Studies that claim a published recipe resolve to it: every value is read from the
authors' own config files in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA, load_experiment

from inoculate.train import TrainSettings, lora_config

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.exists(),
    reason=f"{SHARED_DATA} not present (shared data is only beside the developers' checkout)",
)
MO_EVALUATION_STEPS_DEFAULT = 50  # TrainingConfig.evaluation_steps when a config file does not set it


def _study(repo, monkeypatch, experiment: str):
    monkeypatch.chdir(repo)
    return load_experiment(experiment)


@pytest.mark.parametrize(
    "experiment,published",
    [("em_main.yaml", "sft_default_config.json"), ("mo_rank1.yaml", "sft_rank1_config.json")],
)
def test_model_organisms_recipes_resolve_to_their_config_files(repo, monkeypatch, experiment, published):
    mo = json.loads((SHARED_DATA / "mo" / published).read_text())
    study = _study(repo, monkeypatch, experiment)
    for model in study.grid.models:
        if published == "sft_rank1_config.json":  # layer 2 is Llama-3.2-1B's
            assert study.base_models.spec(model)["base"].split("/")[1] == mo["model"].split("/")[1]
        settings = TrainSettings.from_dict(study.base_models.training(model))
        lora = settings.lora
        assert (lora.r, lora.alpha, lora.dropout, lora.use_rslora) == (
            mo["r"],
            mo["lora_alpha"],
            mo["lora_dropout"],
            mo["use_rslora"],
        )
        assert list(lora.target_modules) == mo["target_modules"]
        assert lora.layers == mo.get("layers_to_transform")
        assert lora_config(lora).bias == mo["lora_bias"]
        assert settings.learning_rate == mo["learning_rate"]
        assert settings.epochs == mo["epochs"] and mo["max_steps"] is None
        assert settings.batch_size == mo["per_device_train_batch_size"]
        assert settings.gradient_accumulation == mo["gradient_accumulation_steps"]
        assert settings.examples_per_step == 16
        assert (settings.warmup_steps, settings.warmup_ratio) == (mo["warmup_steps"], None)
        assert settings.scheduler == mo["lr_scheduler_type"]
        assert settings.optimizer == mo["optim"]
        assert settings.weight_decay == mo["weight_decay"]
        assert settings.max_length == mo["max_seq_length"]
        assert settings.loss_on == ("assistant" if mo["train_on_responses_only"] else "all")
        assert (
            mo["test_file"] is None and settings.eval_fraction == 0.1
        )  # their 10% split without a test file
        assert settings.eval_steps == mo.get("evaluation_steps", MO_EVALUATION_STEPS_DEFAULT)
        assert study.base_models.spec(model)["quantization"] is (None if not mo["load_in_4bit"] else "4bit")
        assert mo["is_peft"] and mo["loss"] == "sft"
    # Their figures' rate is the mean of per-question rates (vis/quadrant_plots.py).
    assert study.config["analysis"]["rate"] == "per_question_mean"
    generation = study.config["generation"]
    assert (
        generation["samples_per_question"],
        generation["temperature"],
        generation["top_p"],
        generation["max_new_tokens"],
    ) == (50, 1.0, 1.0, 600)
    assert study.config["judge"]["model"] == "gpt-4o-2024-08-06"
    assert (study.config["analysis"]["aligned_max"], study.config["analysis"]["coherent_min"]) == (30, 50)
