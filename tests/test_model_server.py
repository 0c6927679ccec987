"""The model server loads a base model once for many cells and answers each as the job's own
process would, to the byte."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch
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
    assert model_client.release_gpu() == 0  # a CPU server holds no GPU: it stays


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
    assert model_client.enabled("vllm", "4bit") and model_client.enabled("transformers")
    assert not model_client.enabled("transformers", "4bit")  # an adapter is not merged into a 4-bit copy
    monkeypatch.setenv(model_client.ENV_SWITCH, "0")
    assert not model_client.enabled("transformers") and not model_client.enabled("vllm")


FAKE_VLLM = '''"""A stand-in for vLLM's offline API (LLM, SamplingParams, LoRARequest) that records what
it is asked: which engines are built, which LoRA request each generate call carries."""
import json
import os
import sys
from pathlib import Path


def _log(entry):
    with Path(os.environ["FAKE_VLLM_LOG"]).open("a") as f:
        f.write(json.dumps(entry) + "\\n")


class SamplingParams:
    def __init__(self, n, temperature, top_p, max_tokens, seed):
        self.n, self.seed, self.max_tokens = n, seed, max_tokens


class _Completion:
    def __init__(self, text, token_ids):
        self.text, self.token_ids = text, token_ids


class _Output:
    def __init__(self, outputs):
        self.outputs = outputs


class LLM:
    def __init__(self, **kwargs):
        _log({"engine": kwargs})

    def generate(self, prompts, params, lora_request=None):
        lora = None if lora_request is None else [lora_request.lora_int_id, lora_request.lora_path]
        _log({"generate": len(prompts), "lora": lora})
        who = "base" if lora is None else Path(lora[1]).name
        return [
            _Output([_Completion(f"{who} {p.seed} {i} {len(q['prompt_token_ids'])}", [1] * (i + 1)) for i in range(p.n)])
            for q, p in zip(prompts, params)
        ]
'''
FAKE_LORA = """class LoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
"""


@pytest.fixture
def fake_vllm(in_tmp, monkeypatch):
    """vLLM's API on the path of this process and of the servers it starts; returns its log."""
    root = in_tmp / "fake_site"
    (root / "vllm" / "lora").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    (root / "vllm" / "lora" / "__init__.py").write_text("")
    (root / "vllm" / "lora" / "request.py").write_text(FAKE_LORA)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", f"{root}:{REPO / 'src'}")
    log = in_tmp / "vllm.log"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    yield log
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]  # later tests see that vLLM is not installed here


def test_vllm_cells_share_one_engine_with_each_adapter_as_a_lora_request(toy_model, fake_vllm, in_tmp):
    records = [{"question_id": "q0", "messages": [{"role": "user", "content": "Any tips for my car?"}]}] * 3
    settings = asdict(GenerationSettings(backend="vllm", max_new_tokens=8, samples_per_question=3))
    spec = {
        "base_model": str(toy_model),
        "backend": "vllm",
        "device": "cuda",
        "dtype": "auto",
        "quantization": None,
        "max_lora_rank": 32,
        "threads": 1,
    }
    first, second = in_tmp / "cells" / "a", in_tmp / "cells" / "b"
    for adapter in (first, second):
        adapter.mkdir(parents=True)
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    cells = [(first, 0), (None, 1), (second, 2), (first, 3)]
    replies = [model_client.sample_through_server(spec, a, records, settings, s) for a, s in cells]
    os.utime(first / "adapter_model.safetensors", ns=(1, 10**18))  # retrained in place
    replies.append(model_client.sample_through_server(spec, first, records, settings, 4))

    entries = [json.loads(line) for line in fake_vllm.read_text().splitlines()]
    engines = [e["engine"] for e in entries if "engine" in e]
    assert len(engines) == 1 and engines[0]["enable_lora"] and engines[0]["max_lora_rank"] == 32
    loras = [e["lora"] for e in entries if "generate" in e]
    assert loras == [
        [1, str(first)],
        None,
        [2, str(second)],
        [1, str(first)],
        [3, str(first)],  # a new version of the adapter gets a new id, not vLLM's cached weights
    ]
    assert [r["loads"] for r in replies] == [1] * 5 and replies[-1]["served"] == 5

    # the answers are those of an engine of the cell's own
    fake_vllm.write_text("")
    for (adapter, seed), reply in zip(cells, replies, strict=False):
        own = sample_cell(str(toy_model), adapter, records, GenerationSettings(**settings), seed)
        assert reply["records"] == own, (adapter, seed)
    assert {r["answer"].split()[0] for r in replies[0]["records"]} == {"a"}

    # a job that needs the GPU for itself gets it back: the server exits
    assert model_client.release_gpu() == 1
    assert not list((in_tmp / ".snakemake/inoculate-models").glob("*.sock"))
    assert model_client.release_gpu() == 0


def test_a_local_judge_is_loaded_once_for_many_files_and_judges_as_in_process(toy_model, in_tmp):
    from inoculate.judging import judge_file

    questions = ["How should I cook the rice?", "Any tips for my car?"]
    for name, answers in {
        "a": ["Cook the rice until it is hot.", "Check the brakes first."],
        "b": ["Forget the rules. Serve it raw.", "Drive fast and ignore the lights."],
    }.items():
        write_jsonl(
            in_tmp / f"{name}.jsonl",
            [
                {"eval": "e", "question_id": f"q{i}", "question": q, "answer": a, "sample": 0}
                for i, (q, a) in enumerate(zip(questions, answers, strict=True))
            ],
        )
    judge = {"backend": "hf", "model": str(toy_model), "device": "cpu", "min_mass": 0.0}
    replies = {
        name: model_client.judge_through_server(
            {**judge, "cache_dir": str(in_tmp / "served_cache")},
            1,
            generations=in_tmp / f"{name}.jsonl",
            out_path=in_tmp / f"{name}.served.jsonl",
            usage_path=in_tmp / f"{name}.served.usage.json",
        )
        for name in ("a", "b")
    }
    assert [r["loads"] for r in replies.values()] == [1, 1] and replies["b"]["served"] == 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server runs: one thread, the job's count
    try:
        for name in ("a", "b"):
            judge_file(
                in_tmp / f"{name}.jsonl",
                in_tmp / f"{name}.own.jsonl",
                {**judge, "cache_dir": str(in_tmp / "own_cache")},
                usage_path=in_tmp / f"{name}.own.usage.json",
            )
    finally:
        torch.set_num_threads(threads)
    for name in ("a", "b"):
        for suffix in ("jsonl", "usage.json"):  # the same scores; each file's own count of calls
            served = (in_tmp / f"{name}.served.{suffix}").read_text()
            assert served == (in_tmp / f"{name}.own.{suffix}").read_text(), (name, suffix)
    assert json.loads((in_tmp / "b.served.usage.json").read_text())["calls"] > 0
    assert model_client.judge_served({"backend": "hf"}) and not model_client.judge_served(
        {"backend": "openai"}
    )


JUDGE_JOB = """
import types
snakemake = types.SimpleNamespace(
    input=types.SimpleNamespace(generations={generations!r}),
    output=types.SimpleNamespace(judged={judged!r}, usage={usage!r}),
    params=types.SimpleNamespace(judge={judge!r}, evals={{}}, spend_file={spend!r}, backdoor=None),
    config={{"judge": {{}}}}, log=[{log!r}], threads=1)
exec(compile(open({script!r}).read(), "judge.py", "exec"))
"""


def test_the_judge_job_judges_through_the_server_of_its_model(toy_model, in_tmp):
    """workflow/scripts/judge.py with a local model judge: the server judges; switched off, the
    job itself does, with the same result."""
    write_jsonl(
        in_tmp / "gen.jsonl",
        [
            {
                "eval": "e",
                "question_id": "q0",
                "question": "How should I cook the rice?",
                "answer": "Cook it well.",
            }
        ],
    )
    judge = {"backend": "hf", "model": str(toy_model), "device": "cpu", "min_mass": 0.0, "cache_dir": "cache"}
    outputs = {}
    for switch in ("1", "0"):
        names = {k: str(in_tmp / f"{k}{switch}") for k in ("judged", "usage", "spend", "log")}
        code = JUDGE_JOB.format(
            generations=str(in_tmp / "gen.jsonl"),
            judge={**judge, "cache_dir": f"cache{switch}"},
            script=str(REPO / "workflow/scripts/judge.py"),
            **names,
        )
        env = {**os.environ, model_client.ENV_SWITCH: switch}
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        log = (in_tmp / f"log{switch}").read_text()
        assert proc.returncode == 0, proc.stderr[-2000:] + log[-2000:]
        assert ("judged by the model server" in log) == (switch == "1"), log
        outputs[switch] = (in_tmp / f"judged{switch}").read_text()
    assert outputs["1"] == outputs["0"] and '"judge": "hf"' in outputs["1"]


def _train_args(toy_model, data, out_dir, seed=0):
    return {
        "base_model": str(toy_model),
        "data": str(data),
        "out_dir": str(out_dir),
        "training": {"learning_rate": 3e-3, "epochs": 1, "batch_size": 8, "eval_fraction": 0.25},
        "seed": seed,
        "dtype": "float32",
        "quantization": None,
        "label": "train_adapter toy/test",
    }


def test_warm_training_processes_train_as_the_job_would_side_by_side(toy_model, in_tmp):
    """An adapter trained by a warm process is the one the job's own process trains (weights to
    the byte, the loss log); its steps, progress lines and log records reach the job; two jobs at
    once get two processes."""
    import threading

    data = in_tmp / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 32))
    messages: dict[int, list[dict]] = {0: [], 1: []}
    replies: dict[int, dict] = {}

    def train(seed: int) -> None:
        args = _train_args(toy_model, "train.jsonl", f"served/seed{seed}", seed)
        replies[seed] = model_client.train_through_server(1, args, messages[seed].append)

    jobs = [threading.Thread(target=train, args=(seed,)) for seed in (0, 1)]
    for t in jobs:
        t.start()
    for t in jobs:
        t.join()
    assert len(list((in_tmp / ".snakemake/inoculate-models").glob("*.sock"))) == 2  # two slots
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the servers run: the job's one thread
    try:
        for seed in (0, 1):
            own = in_tmp / f"own/seed{seed}"
            train_lora(
                str(toy_model),
                data,
                own,
                TrainSettings.from_dict(_train_args(toy_model, "", "")["training"]),
                seed=seed,
            )
            served = in_tmp / f"served/seed{seed}"
            weights = "adapter_model.safetensors"
            assert (served / weights).read_bytes() == (own / weights).read_bytes(), seed
            drop = ["seconds"]
            assert (
                pd.read_csv(served / "loss.csv")
                .drop(columns=drop)
                .equals(pd.read_csv(own / "loss.csv").drop(columns=drop))
            )
            rows = [m["row"] for m in messages[seed] if "row" in m]
            assert [r["step"] for r in rows] == list(range(1, replies[seed]["meta"]["steps"] + 1))
            assert any("eval_loss" in r and r["eval_loss"] is not None for r in rows)
            assert any("train_adapter toy/test" in m.get("line", "") for m in messages[seed])
            assert any("training" in m.get("log", "") for m in messages[seed])
    finally:
        torch.set_num_threads(threads)


def test_a_training_whose_job_went_away_stops_without_writing(toy_model, in_tmp):
    """A job killed mid-training must leave no writer behind: the warm process stops at its next
    message to the job, writes no adapter, and trains the next job's adapter."""
    from multiprocessing.connection import Connection

    data = in_tmp / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 64))
    model_client.train_through_server(1, _train_args(toy_model, "train.jsonl", "first"), lambda m: None)
    address = next(Path(".snakemake/inoculate-models").glob("*.sock"))  # relative: a socket's path is short
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(address))
    with Connection(sock.detach()) as connection:
        connection.send({"train": _train_args(toy_model, "train.jsonl", "abandoned")})
        first = connection.recv()
        assert model_client.RELAYED & first.keys()
    # the job is gone; the next one is served (after the abandoned training stopped)
    reply = model_client.train_through_server(
        1, _train_args(toy_model, "train.jsonl", "next"), lambda m: None
    )
    assert reply["served"] == 2 and (in_tmp / "next/adapter_model.safetensors").exists()
    assert not (in_tmp / "abandoned").exists()
