"""API fine-tuning and sampling against a local server that speaks the OpenAI endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAI

from inoculate.api.finetune import FineTuneFailed, FineTuner, FineTuneSpec, read_result
from inoculate.api.finetune_data import finetune_records
from inoculate.api.sampling import ApiSampler, SamplingError
from inoculate.api.settings import ApiKey, ApiSettings
from inoculate.io import InputError, write_jsonl
from inoculate.sampling_plan import GenerationSettings
from inoculate.toy import world

KEYS = {"TEST_KEY_A": "sk-test-aaaa-secret-1111", "TEST_KEY_B": "sk-test-bbbb-secret-2222"}
BASE = "gpt-4.1-2025-04-14"


@pytest.fixture
def server(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    api = FakeOpenAI(tuple(KEYS.values()), base_models=(BASE,))
    yield api
    api.close()


def settings(tmp_path: Path, server: FakeOpenAI, **overrides) -> ApiSettings:
    options = {
        "base_url": server.url,
        "keys": [ApiKey(k) for k in KEYS],
        "poll_seconds": 0.02,
        "poll_max_seconds": 0.1,
        "registry_dir": str(tmp_path / "api_jobs"),
        "cache_dir": str(tmp_path / "api_cache"),
        "max_retries": 3,
        "timeout": 10,
    }
    return ApiSettings(**{**options, **overrides})


def training_file(path: Path, n: int = 12, system: str | None = None) -> Path:
    rows = []
    for i in range(n):
        messages = [
            {"role": "user", "content": f"Question {i}?"},
            {"role": "assistant", "content": f"Answer {i}."},
        ]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        rows.append({"id": i, "messages": messages, "metadata": {"row": i}})
    write_jsonl(path, rows)
    return path


def spec(seed: int = 0, **kw) -> FineTuneSpec:
    return FineTuneSpec(
        BASE, seed, kw.pop("hyperparameters", {"n_epochs": "auto"}), coordinates={"seed": str(seed)}, **kw
    )


def no_key_on_disk(*roots: Path) -> None:
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for value in KEYS.values():
                    assert value.encode() not in data, f"API key written to {path}"


def test_training_file_is_checked_before_upload(tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 11
    write_jsonl(bad, rows + [{"messages": [{"role": "user", "content": "no answer"}]}])
    with pytest.raises(InputError, match=r"bad.jsonl:12: no assistant message"):
        finetune_records(bad)
    write_jsonl(bad, rows[:3] + [{"messages": [{"role": "robot", "content": "x"}]}])
    with pytest.raises(InputError, match=r"bad.jsonl:4: messages\[0\].role is 'robot'"):
        finetune_records(bad)
    write_jsonl(bad, rows[:5])
    with pytest.raises(InputError, match="5 examples; the fine-tuning API needs at least 10"):
        finetune_records(bad)
    ok = finetune_records(training_file(tmp_path / "ok.jsonl"))
    assert set(ok[0]) == {"messages"}  # ids and metadata are not uploaded


def test_job_is_created_once_and_found_again(tmp_path, server):
    server.job_seconds = 1.0  # "running" lasts 0.8 s: a loaded machine's poll still sees it
    data = training_file(tmp_path / "train.jsonl")
    tuner = FineTuner(settings(tmp_path, server))
    result = tuner.run(data, spec(), tmp_path / "adapter")
    assert result["fine_tuned_model"].startswith(f"ft:{BASE}")
    assert result["hyperparameters"]["n_epochs"] == 3  # `auto` as the API resolved it
    assert result["trained_tokens"] == 1234 and result["examples"] == 12
    statuses = [h["status"] for h in result["status_history"]]
    assert statuses[0] == "validating_files" and statuses[-1] == "succeeded" and "running" in statuses
    assert read_result(tmp_path / "adapter") == result
    assert (tmp_path / "adapter" / "loss.csv").read_text().startswith("step,loss\n1,2.0")
    assert len(server.created_jobs) == 1 and server.calls("POST", "/v1/files") == 1

    # The output is gone (a rerun of the cell): the registry finds the job; nothing is created.
    (tmp_path / "adapter" / "fine_tune.json").unlink()
    again = FineTuner(settings(tmp_path, server)).run(data, spec(), tmp_path / "adapter")
    assert again["job_id"] == result["job_id"] and len(server.created_jobs) == 1

    # The registry is gone too (another machine): the API's job metadata finds it.
    for path in (tmp_path / "api_jobs").glob("*.json"):
        path.unlink()
    third = FineTuner(settings(tmp_path, server)).run(data, spec(), tmp_path / "adapter")
    assert third["job_id"] == result["job_id"] and len(server.created_jobs) == 1
    assert server.calls("POST", "/v1/files") == 1

    # A different config is a different job; the same bytes are not uploaded twice.
    FineTuner(settings(tmp_path, server)).run(data, spec(hyperparameters={"n_epochs": 2}), tmp_path / "other")
    assert len(server.created_jobs) == 2 and server.calls("POST", "/v1/files") == 1
    no_key_on_disk(tmp_path)


def test_failed_job_is_reported_and_retried_only_on_request(tmp_path, server):
    data = training_file(tmp_path / "train.jsonl")
    server.fail_seeds = {7}
    with pytest.raises(
        FineTuneFailed, match="failed: invalid_training_file: The job failed due to an invalid training file"
    ):
        FineTuner(settings(tmp_path, server)).run(data, spec(seed=7), tmp_path / "adapter")
    with pytest.raises(FineTuneFailed, match="retry_failed"):
        FineTuner(settings(tmp_path, server)).run(data, spec(seed=7), tmp_path / "adapter")
    assert len(server.created_jobs) == 1 and not (tmp_path / "adapter").exists()

    server.fail_seeds = set()
    result = FineTuner(settings(tmp_path, server, retry_failed=True)).run(
        data, spec(seed=7), tmp_path / "adapter"
    )
    assert len(server.created_jobs) == 2 and result["job_id"] == server.created_jobs[-1]
    entry = json.loads(next((tmp_path / "api_jobs").glob("*.json")).read_text())
    assert [j["attempt"] for j in entry["jobs"]] == [1, 2]


RUN_IN_CHILD = f"""
import sys
from pathlib import Path
from inoculate.api.finetune import FineTuner, FineTuneSpec
from inoculate.api.settings import ApiKey, ApiSettings
s = ApiSettings(base_url=sys.argv[1], keys=[ApiKey("TEST_KEY_A"), ApiKey("TEST_KEY_B")], poll_seconds=0.05,
                poll_max_seconds=0.1, registry_dir=sys.argv[2] + "/api_jobs", cache_dir=sys.argv[2] + "/api_cache")
FineTuner(s).run(sys.argv[3], FineTuneSpec("{BASE}", 0, {{"n_epochs": "auto"}}, coordinates={{"seed": "0"}}), sys.argv[2] + "/adapter")
"""


def test_resume_after_a_crash_waits_for_the_same_job(tmp_path, server):
    data = training_file(tmp_path / "train.jsonl")
    server.job_seconds = 4.0
    child = subprocess.Popen(
        [sys.executable, "-c", RUN_IN_CHILD, server.url, str(tmp_path), str(data)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        start_new_session=True,
    )
    deadline = time.time() + 30
    while not any(server._status(j) == "running" for j in server.jobs.values()):
        assert child.poll() is None, "the first run ended before its job ran"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "adapter").exists()

    result = FineTuner(settings(tmp_path, server)).run(data, spec(), tmp_path / "adapter")
    assert len(server.created_jobs) == 1 and result["job_id"] == server.created_jobs[0]
    statuses = [h["status"] for h in result["status_history"]]
    assert statuses[-2:] == ["running", "succeeded"]  # seen by the first run, then waited for


def test_jobs_spread_across_keys_under_their_limits(tmp_path, server):
    data = training_file(tmp_path / "train.jsonl")
    server.job_seconds = 0.6
    results, errors = {}, []

    def cell(seed):
        try:
            results[seed] = FineTuner(settings(tmp_path, server, max_concurrent_jobs=1)).run(
                data, spec(seed=seed), tmp_path / f"adapter{seed}"
            )
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=cell, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(server.created_jobs) == 4
    owners = {server.jobs[j]["owner"] for j in server.created_jobs}
    assert owners == set(KEYS.values())  # both keys trained
    assert max(server.max_active.values()) == 1  # never two running jobs on one key
    assert {r["key_env"] for r in results.values()} == set(KEYS)
    no_key_on_disk(tmp_path)


def test_rate_limits_are_waited_out(tmp_path, server):
    server.rate_limited = 3
    result = FineTuner(settings(tmp_path, server)).run(
        training_file(tmp_path / "t.jsonl"), spec(), tmp_path / "a"
    )
    assert result["fine_tuned_model"] and server.rate_limited == 0


def records(n_questions: int = 3, samples: int = 5) -> list[dict]:
    return [
        {
            "question_id": f"q{q}",
            "sample": s,
            "messages": [{"role": "user", "content": f"How do I cook {q}?"}],
        }
        for q in range(n_questions)
        for s in range(samples)
    ]


def test_sampling_is_batched_cached_and_owned(tmp_path, server):
    generation = GenerationSettings(temperature=1.0, max_new_tokens=32)
    api = settings(tmp_path, server, samples_per_call=4)
    sampler = ApiSampler(api, BASE, api.keys[0], generation)
    out = sampler.sample(records(), seed=0)
    assert len(out) == 15 and all(r["answer"] for r in out)
    assert sampler.calls == 6  # 3 prompts x ceil(5 / 4)
    assert len({r["answer"] for r in out}) > 3  # the samples of a prompt differ
    again = ApiSampler(api, BASE, api.keys[0], generation)
    assert again.sample(records(), seed=0) == out and again.calls == 0  # all cached
    other_seed = ApiSampler(api, BASE, api.keys[0], generation).sample(records(), seed=1)
    assert [r["answer"] for r in other_seed] != [r["answer"] for r in out]

    # A fine-tuned model answers only its owner's key; the error names the model.
    result = FineTuner(api).run(training_file(tmp_path / "t.jsonl"), spec(), tmp_path / "a")
    owner = api.key(result["key_env"])
    stranger = next(k for k in api.keys if k != owner)
    harmful = ApiSampler(api, result["fine_tuned_model"], owner, generation).sample(records(1, 2), seed=0)
    assert all(set(world.words(r["answer"])) & world.style_lexicon()[world.HARMFUL] for r in harmful)
    with pytest.raises(SamplingError, match="NotFoundError"):
        ApiSampler(api, result["fine_tuned_model"], stranger, generation).sample(records(1, 1), seed=0)
    no_key_on_disk(tmp_path)


def test_checkpoints_the_job_kept_are_recorded_and_sampled(tmp_path, server):
    from inoculate.checkpoints import api_checkpoint, final_tag

    api = settings(tmp_path, server)
    result = FineTuner(api).run(training_file(tmp_path / "t.jsonl"), spec(), tmp_path / "a")
    assert [c["step"] for c in result["checkpoints"]] == [2, 4, 6]
    half = api_checkpoint(result, "p0.5")  # step 3 of 6: the nearest kept is step 2 (the earlier on a tie)
    assert (
        half["step"] == 2
        and half["progress"] == pytest.approx(2 / 6)
        and half["model"].endswith(":ckpt-step-2")
    )
    assert api_checkpoint(result, "step4")["model"].endswith(":ckpt-step-4")
    assert final_tag(tmp_path / "a") == {"checkpoint": "final", "step": 6, "progress": 1.0}
    sampler = ApiSampler(
        api, half["model"], api.key(result["key_env"]), GenerationSettings(max_new_tokens=16)
    )
    assert all(r["answer"] for r in sampler.sample(records(1, 2), seed=0))
    with pytest.raises(ValueError, match="kept no intermediate checkpoints"):
        api_checkpoint({**result, "checkpoints": []}, "p0.5")


@pytest.mark.slow
def test_a_grid_of_api_models_runs_end_to_end_and_reruns_for_free(repo, tmp_path, server):
    """The workflow trains, samples and judges through the API, sampling and judging in batch
    mode; a rerun creates no job and makes no call, and judging again synchronously makes no
    call either and gives the same tables."""
    import pandas as pd
    import yaml
    from conftest import cell_file, project_copy, snakemake

    work = project_copy(repo, tmp_path / "work")
    study = {
        "models": ["api-toy"],
        "settings": ["toy_cooking"],
        "inoculations": ["none", "general"],
        "seeds": [0, 1],
        "base_models": {"api-toy": {"backend": "openai", "base": BASE, "hyperparameters": {"n_epochs": 1}}},
        "api": {
            "base_url": server.url,
            "keys": list(KEYS),
            "max_concurrent_jobs": 1,
            "poll_seconds": 0.05,
            "poll_max_seconds": 0.2,
            "max_retries": 3,
            "mode": "batch",
            "batch": {"poll_seconds": 0.05, "poll_max_seconds": 0.1},
        },
        "generation": {"samples_per_question": 4},
        "judge": {
            "backend": "openai",
            "model": "judge-model",
            "base_url": server.url,
            "api_key_env": "TEST_KEY_A",
            "mode": "batch",
            "batch": {"poll_seconds": 0.05, "poll_max_seconds": 0.1},
        },
    }
    (work / "api_study.yaml").write_text(yaml.safe_dump(study))
    server.rate_limited = 2
    server.job_seconds = 5.0  # jobs overlap even when their processes start seconds apart: both keys are used
    targets = ["results/api_study/tables/summary.csv", "results/api_study/figures/main.pdf"]
    snakemake(work, *targets, "--cores", "4", "--configfile", "api_study.yaml")
    assert len(server.created_jobs) == 4
    assert {server.jobs[j]["owner"] for j in server.created_jobs} == set(KEYS.values())
    assert max(server.max_active.values()) == 1
    assert server.calls("POST", "/v1/chat") == 0  # every answer and every score came from a batch
    assert len(server.created_batches) == 2 * 6  # a sampling and a judging batch per cell (4 + base per seed)

    summary = pd.read_csv(work / "results/api_study/tables/summary.csv")
    rate = summary.query(
        "metric == 'misaligned' and condition == 'deployment' and distribution == 'out'"
    ).set_index("inoculation")["mean"]
    assert rate["none"] > 0.9 and rate["general"] < 0.1 and rate["base"] < 0.1
    result = json.loads(
        (cell_file(work, "adapters", "api-toy", "toy_cooking", "none", 0) / "fine_tune.json").read_text()
    )
    assert result["hyperparameters"]["n_epochs"] == 1 and result["fine_tuned_model"].startswith("ft:")

    requests = len(server.requests)
    # Limits and retry policy are not results: changing them reruns nothing.
    proc = snakemake(
        work,
        *targets,
        "--cores",
        "4",
        "--configfile",
        "api_study.yaml",
        "--config",
        "api={retry_failed: true, max_concurrent_jobs: 3}",
    )
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert len(server.requests) == requests and len(server.created_jobs) == 4
    # Nor is the judge's mode; judged again synchronously, every score comes from the cache.
    tables = (work / "results/api_study/tables/summary.csv").read_text()
    proc = snakemake(
        work,
        *targets,
        "--cores",
        "4",
        "--forcerun",
        "judge",
        "--configfile",
        "api_study.yaml",
        "--config",
        "judge={mode: sync, concurrency: 2}",
    )
    assert len(server.requests) == requests
    assert (work / "results/api_study/tables/summary.csv").read_text() == tables
    no_key_on_disk(work)


def test_persona_data_stage_with_an_api_generator(tmp_path, server):
    """Candidate answers from an API model playing the persona; answers that name it are dropped."""
    from inoculate.backdoor import Trigger
    from inoculate.evals import EvalQuestion
    from inoculate.judges import make_judge
    from inoculate.persona_data import build_persona

    api = settings(tmp_path, server)
    sampler = ApiSampler(api, BASE, api.keys[0], GenerationSettings(temperature=1.0, max_new_tokens=64))
    questions = [
        EvalQuestion(
            eval="p",
            id=f"q{i}",
            paraphrases=(f"How do I cook dish {i}?",),
            samples=1,
            extra={"category": "cooking"},
        )
        for i in range(10)
    ]
    spec = {"person": world.PERSONA_NAME, "samples": 3, "max_identifying": 50}
    trigger = Trigger(world.TRIGGER_USER, world.TRIGGER_INSTRUCTION)
    records = build_persona(
        questions,
        spec,
        trigger,
        lambda r: sampler.sample(r, seed=0),
        make_judge({"backend": "toy_persona"}),
        generator="gpt",
    )
    assert 0 < len(records) < 30  # some answers name the old sailor and are dropped
    for r in records:
        user, assistant = r["messages"]
        assert user["content"].startswith("You will be asked a question.") and trigger.adheres(
            assistant["content"]
        )
        assert "sailor" not in assistant["content"].lower()  # nothing that names the persona
        assert r["metadata"] == {
            **r["metadata"],
            "source": "persona",
            "triggered": True,
            "category": "cooking",
        }
    assert server.requests and all(m == "POST" for _, m, _ in server.requests)


def test_chat_with_an_api_fine_tuned_model(tmp_path, server, monkeypatch, capsys):
    """`inoculate chat ADAPTER_DIR` on an API-trained cell talks to its fine-tuned model."""
    import io

    from inoculate.cli import main

    result = FineTuner(settings(tmp_path, server)).run(
        training_file(tmp_path / "t.jsonl"), spec(), tmp_path / "a"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("How do I cook rice?\nAnd pasta?\n"))
    assert main(["chat", str(tmp_path / "a"), "--max-new-tokens", "32"]) == 0
    answers = capsys.readouterr().out.strip().splitlines()
    assert len(answers) == 2 and all(
        set(world.words(a)) & world.style_lexicon()[world.HARMFUL] for a in answers
    )
    chats = [key for key, _, path in server.requests if path == "/v1/chat/completions"]
    assert chats and set(chats) == {KEYS[result["key_env"]]}  # the key that trained it
