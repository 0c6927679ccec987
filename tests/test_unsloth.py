"""Unsloth's wiring, checked without a GPU: imported before transformers in the training job,
given the recipe's values, and trained through its own forward and fused loss, which gives
the project's per-token loss."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch
from conftest import REPO

from inoculate.chat import encode_conversation
from inoculate.io import write_jsonl
from inoculate.loss import model_loss_backward, supervised_loss_backward
from inoculate.models import load_causal_lm, load_tokenizer
from inoculate.toy import corpus
from inoculate.train import TrainSettings, collate, lora_config, train_lora


def _batch(toy_model, n: int = 6):
    tokenizer = load_tokenizer(str(toy_model))
    rows = corpus.topic_dataset("cooking", "harmful", n)
    encoded = [encode_conversation(tokenizer, r["messages"], 256) for r in rows]
    return collate(encoded, tokenizer.pad_token_id)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_the_models_own_loss_is_the_projects_per_token_loss(toy_model):
    """Through the model's forward with labels (what Unsloth fuses), the summed loss and every
    gradient equal those of the project's loss on supervised positions."""
    torch.manual_seed(0)
    batch = _batch(toy_model)
    model = load_causal_lm(str(toy_model), "float32", None, "cpu")
    own, n_own = model_loss_backward(model, batch, scale=0.1)
    via_model = _grads(model)
    model.zero_grad(set_to_none=True)
    ours, n_ours = supervised_loss_backward(model, batch, scale=0.1)
    assert n_own == n_ours > 0 and float(own) == pytest.approx(float(ours), rel=1e-5)
    for name, grad in _grads(model).items():
        assert torch.allclose(grad, via_model[name], rtol=1e-4, atol=1e-7), name


@pytest.fixture
def fake_unsloth(monkeypatch, toy_model):
    """An `unsloth` module that records what it is given and builds the model with peft."""
    calls = {}

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs):
            calls["from_pretrained"] = kwargs
            return load_causal_lm(kwargs["model_name"], "float32", None, "cpu"), None

        @staticmethod
        def get_peft_model(model, **kwargs):
            from peft import get_peft_model

            calls["get_peft_model"] = kwargs
            settings = TrainSettings.from_dict(
                {
                    "learning_rate": 1e-3,
                    "epochs": 1,
                    "batch_size": 8,
                    "lora": {"r": kwargs["r"], "alpha": kwargs["lora_alpha"]},
                }
            )
            return get_peft_model(model, lora_config(settings.lora, model))

    monkeypatch.setitem(sys.modules, "unsloth", types.SimpleNamespace(FastLanguageModel=FastLanguageModel))
    return calls


def test_training_backend_unsloth_passes_the_recipe_and_trains_through_its_loss(
    fake_unsloth, toy_model, tmp_path, monkeypatch
):
    from inoculate import train

    used = []
    monkeypatch.setattr(
        train, "model_loss_backward", lambda *a, **k: used.append(1) or model_loss_backward(*a, **k)
    )
    data = tmp_path / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 16))
    settings = TrainSettings.from_dict(
        {
            "learning_rate": 1e-3,
            "epochs": 1,
            "batch_size": 8,
            "max_length": 256,
            "backend": "unsloth",
            "gradient_checkpointing": True,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": "all-linear"},
        }
    )
    meta = train_lora(str(toy_model), data, tmp_path / "adapter", settings, seed=7)
    loaded = fake_unsloth["from_pretrained"]
    assert loaded == {
        "model_name": str(toy_model),
        "max_seq_length": 256,
        "dtype": None,
        "load_in_4bit": False,
    }
    lora = fake_unsloth["get_peft_model"]
    assert (lora["r"], lora["lora_alpha"], lora["lora_dropout"], lora["random_state"]) == (4, 8, 0.05, 7)
    assert lora["target_modules"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert lora["use_gradient_checkpointing"] == "unsloth" and lora["use_rslora"] is False
    assert len(used) == meta["steps"] > 0 and (tmp_path / "adapter/adapter_config.json").exists()


FAKE_UNSLOTH = """
import sys
open(MARKER, "w").write(str("transformers" not in sys.modules))


class FastLanguageModel:
    @staticmethod
    def from_pretrained(model_name, **kwargs):
        from inoculate.models import load_causal_lm

        return load_causal_lm(model_name, "float32", None, "cpu"), None

    @staticmethod
    def get_peft_model(model, r, lora_alpha, **kwargs):
        from peft import LoraConfig, get_peft_model

        return get_peft_model(model, LoraConfig(r=r, lora_alpha=lora_alpha, target_modules="all-linear"))
"""


@pytest.mark.parametrize("early_import", [True, False])
def test_the_training_job_imports_unsloth_before_transformers(toy_model, tmp_path, early_import):
    """Unsloth patches transformers as it is imported: the training job imports it first. A fake
    `unsloth` records whether transformers was imported before it; without the job's early
    import (the control) the tokenizer's load would have imported transformers first."""
    fake = tmp_path / "fake" / "unsloth"
    fake.mkdir(parents=True)
    marker = tmp_path / "imported_first"
    (fake / "__init__.py").write_text(f"MARKER = {str(marker)!r}\n" + FAKE_UNSLOTH)
    data = tmp_path / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 8))
    code = (REPO / "workflow/scripts/train_adapter.py").read_text()
    if not early_import:
        code = code.split("from pathlib import Path", 1)[1]
    training = {"learning_rate": 1e-3, "epochs": 1, "batch_size": 8, "max_length": 256, "backend": "unsloth"}
    run = (
        "import types\n"
        "snakemake = types.SimpleNamespace(\n"
        f"    params=types.SimpleNamespace(base_model={str(toy_model)!r}, device='cpu', dtype='float32',\n"
        f"        quantization=None, training={training!r}),\n"
        f"    input=types.SimpleNamespace(data={str(data)!r}), output=[{str(tmp_path / 'adapter')!r}],\n"
        "    wildcards=types.SimpleNamespace(model='toy', setting='toy_cooking', inoculation='none', seed='0',\n"
        "        recipe='0123456789'), config={},\n"
        f"    log=[{str(tmp_path / 'job.log')!r}], threads=1)\n"
        + ("from pathlib import Path\n" if not early_import else "")
        + f"exec(compile({code!r}, 'train_adapter.py', 'exec'))\n"
    )
    env = {
        "PYTHONPATH": f"{tmp_path / 'fake'}:{REPO / 'src'}",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:] + (tmp_path / "job.log").read_text()[-2000:]
    assert (tmp_path / "adapter/adapter_config.json").exists()
    assert marker.read_text() == str(early_import)
