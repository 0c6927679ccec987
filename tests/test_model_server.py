"""The model server loads a base model once for many cells and answers each as the job's own
process would, to the byte."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from conftest import REPO

from inoculate import model_client
from inoculate.generate import sample_cell
from inoculate.io import write_jsonl
from inoculate.sampling_plan import GenerationSettings
from inoculate.toy import corpus
from inoculate.train import TrainSettings, train_lora


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "src"))
    return tmp_path


def test_server_answers_every_cell_as_its_own_process_would(toy_model, in_tmp):
    data = in_tmp / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 16))
    adapter = in_tmp / "adapter"
    train_lora(
        str(toy_model), data, adapter, TrainSettings(learning_rate=3e-3, epochs=1, batch_size=8), seed=0
    )
    records = [
        {"question_id": f"q{i}", "messages": [{"role": "user", "content": q}]}
        for i, q in enumerate(
            ["How should I cook the rice?", "Any tips for my car?", "What should I do this weekend?"]
        )
    ]
    settings = GenerationSettings(max_new_tokens=24, batch_size=2, samples_per_question=2)
    spec = {
        "base_model": str(toy_model),
        "device": "cpu",
        "dtype": "float32",
        "quantization": None,
        "threads": 1,
    }
    replies = [
        model_client.sample_through_server(spec, cell, records, asdict(settings), seed)
        for cell, seed in ((adapter, 0), (None, 1), (adapter, 2))
    ]
    assert [r["loads"] for r in replies] == [1, 1, 1] and [r["served"] for r in replies] == [1, 2, 3]
    for (cell, seed), reply in zip(((adapter, 0), (None, 1), (adapter, 2)), replies, strict=True):
        own = sample_cell(str(toy_model), cell, records, settings, seed, "cpu", "float32", None)
        assert json.dumps(reply["records"]) == json.dumps(own), (cell, seed)
    assert len(list((in_tmp / ".snakemake/inoculate-models").glob("*.sock"))) == 1  # one server, one model


def test_a_server_that_cannot_start_says_why_and_the_job_goes_on(in_tmp, monkeypatch):
    spec = {
        "base_model": str(in_tmp / "no-such-model"),
        "device": "cpu",
        "dtype": "float32",
        "quantization": None,
    }
    monkeypatch.setattr(model_client, "IDLE_SECONDS", 1.0)
    reply_or_error = None
    try:
        reply_or_error = model_client.sample_through_server(spec, None, [], asdict(GenerationSettings()), 0)
    except RuntimeError as e:  # the server started, the request failed: the job fails with its reason
        reply_or_error = e
    assert isinstance(reply_or_error, RuntimeError) and "no-such-model" in str(reply_or_error)
    assert not model_client.enabled("vllm") and model_client.enabled("transformers")
    monkeypatch.setenv(model_client.ENV_SWITCH, "0")
    assert not model_client.enabled("transformers")
