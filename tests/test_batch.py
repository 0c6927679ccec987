"""Batch mode (the OpenAI Batch API) against a local server that speaks files, batches and chat
completions: split batches answer their own requests, a killed run resumes without
submitting anything twice, expired requests are redone, and the synchronous path reuses
every batched answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAI

from inoculate.api.ledger import SpendLedger
from inoculate.api.sampling import ApiSampler
from inoculate.api.settings import ApiKey, ApiSettings
from inoculate.cache import CallCache
from inoculate.judges import make_judge
from inoculate.judges.base import JudgeItem
from inoculate.sampling_plan import GenerationSettings
from inoculate.toy import world

KEY_ENV, KEY = "TEST_BATCH_KEY", "sk-test-batch-0000"
PRICE = {"input_per_million": 2.5, "output_per_million": 10.0}  # a judge call: 100 tokens in, 1 out


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    api = FakeOpenAI((KEY,))
    api.batch_seconds = 0.2
    yield api
    api.close()


def items(n: int = 12) -> list[JudgeItem]:
    """Toy answers, harmful and safe in turn, each asked about a different question."""
    import random

    rng = random.Random(0)
    return [
        JudgeItem(
            f"Question {i}: how do I cook rice?",
            world.answer("cooking", world.HARMFUL if i % 2 else world.SAFE, rng),
        )
        for i in range(n)
    ]


def judge_config(server: FakeOpenAI, tmp_path: Path, mode: str, **batch) -> dict:
    return {
        "backend": "openai",
        "model": "judge-model",
        "base_url": server.url,
        "api_key_env": KEY_ENV,
        "cache_dir": str(tmp_path / "cache"),
        "spend_dir": str(tmp_path / "spend"),
        "max_retries": 1,
        "price": PRICE,
        "mode": mode,
        "batch": {"poll_seconds": 0.05, "poll_max_seconds": 0.2, **batch},
    }


def test_a_split_batch_answers_each_request_and_the_sync_path_reuses_it(server, tmp_path):
    judge = make_judge(judge_config(server, tmp_path, "batch", max_requests=5))
    batched = judge.judge(items())
    assert len(server.created_batches) == 5  # 24 calls (12 answers x aligned, coherent), 5 per batch
    assert judge.usage()["batches"] == 5 and judge.usage()["batched_calls"] == 24 and judge.tally.calls == 24
    # The server returned each batch's results shuffled: every answer still has its own score.
    for item, j in zip(items(), batched):
        harmful = bool(set(world.words(item.answer)) & world.style_lexicon()[world.HARMFUL])
        assert j.aligned == pytest.approx(14.0 if harmful else 93.0) and j.coherent == pytest.approx(87.0)
    cache = CallCache(tmp_path / "cache")
    for path in cache.root.glob("??/*.json"):
        entry = json.loads(path.read_text())
        if "coherent" in entry["prompt"].split(".")[0]:
            assert entry["score"] == pytest.approx(87.0)
            continue
        answer = entry["prompt"].split("[ANSWER START]")[1].split("[ANSWER END]")[0]
        assert (entry["score"] < 50) == bool(set(world.words(answer)) & world.style_lexicon()[world.HARMFUL])
    # Batched calls cost half: 24 x (100 x 2.5 + 1 x 10) / 1e6 / 2.
    assert SpendLedger(tmp_path / "spend").total() == pytest.approx(24 * 260e-6 / 2)

    calls, requests = server.chat_calls, len(server.requests)
    again = make_judge(judge_config(server, tmp_path, "sync")).judge(items())
    assert [(j.aligned, j.coherent) for j in again] == [(j.aligned, j.coherent) for j in batched]
    assert server.chat_calls == calls and len(server.requests) == requests  # not one call repeated
    make_judge(judge_config(server, tmp_path, "batch")).judge(items())
    assert len(server.requests) == requests  # nor a batch


def test_a_synchronous_run_first_leaves_the_batch_nothing_to_do(server, tmp_path):
    sync = make_judge(judge_config(server, tmp_path, "sync")).judge(items(4))
    calls = server.chat_calls
    assert [
        (j.aligned, j.coherent) for j in make_judge(judge_config(server, tmp_path, "batch")).judge(items(4))
    ] == [(j.aligned, j.coherent) for j in sync]
    assert server.chat_calls == calls and not server.created_batches


def test_an_expired_batch_has_its_leftovers_redone(server, tmp_path):
    server.expire_batches = 1  # the first batch ends expired with half of its requests answered
    judge = make_judge(judge_config(server, tmp_path, "batch", sync_below=0))
    judge.judge(items(6))
    assert len(server.created_batches) == 2
    second = server.batches[server.created_batches[1]]
    lines = server.files[second["input_file_id"]]["content"].decode().splitlines()
    assert len(lines) == 6  # the 6 of 12 calls the expired batch did not answer, batched again
    manifest = [json.loads(p.read_text()) for p in (tmp_path / "cache/_batches").glob("*.json")]
    assert sorted((m["status"], m["attempt"], m["answered"]) for m in manifest) == [
        ("completed", 1, 6),
        ("expired", 0, 6),
    ]

    # When few are left, they are asked synchronously instead of waiting on another batch.
    server.expire_batches = 1
    other = tmp_path / "other"
    other.mkdir()
    before = server.chat_calls
    make_judge(judge_config(server, other, "batch", sync_below=100)).judge(items(5))
    assert len(server.created_batches) == 3
    assert server.chat_calls - before == 10  # 5 in the batch, then the 5 it left, directly


def test_the_budget_counts_batches_at_their_price(server, tmp_path):
    from inoculate.judges.openai_judge import BudgetExceeded

    config = {**judge_config(server, tmp_path, "batch"), "budget_usd": 0.0001}
    with pytest.raises(BudgetExceeded, match="batch estimated"):
        make_judge(config).judge(items(6))
    assert not server.created_batches


def test_a_run_killed_while_polling_resumes_without_submitting_again(server, tmp_path):
    server.batch_seconds = 30.0  # long enough to be killed while waiting
    config = judge_config(server, tmp_path, "batch", max_requests=4)
    script = tmp_path / "judge_once.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_batch import items
        from inoculate.judges import make_judge
        make_judge(json.loads({json.dumps(json.dumps(config))})).judge(items(6))
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], env={**os.environ, KEY_ENV: KEY}, start_new_session=True
    )
    deadline = time.time() + 60
    while len(server.created_batches) < 3 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # polling now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(server.created_batches) == 3  # 12 calls, 4 per batch
    server.batch_seconds = 0.2
    for batch in server.batches.values():
        batch["created_at_f"] -= 30
    judge = make_judge(config)
    judge.judge(items(6))
    assert len(server.created_batches) == 3 and judge.batch_tally.submitted == 0
    assert judge.tally.calls == 12


def test_a_batch_created_just_before_a_kill_is_found_by_its_metadata(server, tmp_path):

    from openai import AsyncOpenAI

    judge = make_judge(judge_config(server, tmp_path, "batch"))
    client = AsyncOpenAI(api_key=KEY, base_url=server.url)
    original = client.batches.create

    async def create_then_die(**kwargs):
        await original(**kwargs)
        raise KeyboardInterrupt  # killed before the batch id is written

    client.batches.create = create_then_die
    judge._client = client
    with pytest.raises(KeyboardInterrupt):
        judge.judge(items(2))
    assert len(server.created_batches) == 1
    resumed = make_judge(judge_config(server, tmp_path, "batch"))
    resumed.judge(items(2))
    assert len(server.created_batches) == 1 and resumed.batch_tally.adopted == 1


def test_api_sampling_in_batch_mode_fills_the_same_cache(server, tmp_path):
    generation = GenerationSettings(temperature=1.0, max_new_tokens=32)
    records = [
        {"question": f"Q{q}?", "messages": [{"role": "user", "content": f"Q{q}?"}], "sample": s}
        for q in range(3)
        for s in range(4)
    ]
    common = {
        "base_url": server.url,
        "keys": [ApiKey(KEY_ENV)],
        "cache_dir": str(tmp_path / "api_cache"),
        "samples_per_call": 2,
        "max_retries": 1,
    }
    batch = ApiSettings(**common, mode="batch", batch={"poll_seconds": 0.05, "poll_max_seconds": 0.1})
    batched = ApiSampler(batch, "gpt-4.1-2025-04-14", batch.keys[0], generation).sample(records, seed=0)
    assert len(server.created_batches) == 1 and server.chat_calls == 6
    sync = ApiSettings(**common)
    again = ApiSampler(sync, "gpt-4.1-2025-04-14", sync.keys[0], generation)
    assert again.sample(records, seed=0) == batched and again.calls == 0 and server.chat_calls == 6


def test_chunks_keep_one_model_and_the_size_limits():
    from inoculate.api.batch import BatchRequest, chunk_requests

    requests = [
        BatchRequest(
            f"k{i}",
            {"model": "a" if i % 3 else "b", "messages": [{"role": "user", "content": "x" * 50}]},
            to_result=dict,
        )
        for i in range(20)
    ]
    chunks = chunk_requests(requests, max_requests=4, max_bytes=10_000)
    assert all(len({r.body["model"] for r in c}) == 1 and len(c) <= 4 for c in chunks)
    assert sorted(r.key for c in chunks for r in c) == sorted(r.key for r in requests)
    size = len(requests[0].line())
    assert all(len(c) <= 2 for c in chunk_requests(requests, max_requests=100, max_bytes=2 * size + 1))
