"""The OpenAI-compatible judge against a local server that speaks the chat-completions API."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inoculate.judges import JudgeItem, make_judge
from inoculate.judges.openai_judge import JudgeError, logprob_score
from inoculate.secrets import MissingSecret

KEY = "sk-test-secret-value-123"


def top(**probs):
    return {k.lstrip("_"): math.log(v) for k, v in probs.items()}


class Endpoint:
    """A minimal OpenAI-compatible chat-completions server on loopback."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.rate_limited = 0  # answer this many requests with 429 first
        self.auth: set[str] = set()
        self.delay = 0.0
        self.requests: list[dict] = []  # every request body
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        # usage billed: "fixed" (100 tokens in), "honest" (counted from the messages), "none" (absent)
        self.usage_mode = "fixed"
        self.reply = "ok"  # "ok"; "nologprobs", "nochoices", "badlogprob": paid replies the judge cannot read
        self.error_message = None  # answer every call with HTTP 401 and this message
        self.billed: list[tuple[int, int]] = []  # (tokens in, out) of every answered call
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                with endpoint.lock:
                    endpoint.active += 1
                    endpoint.max_active = max(endpoint.max_active, endpoint.active)
                try:
                    time.sleep(endpoint.delay)
                    self._answer()
                finally:
                    with endpoint.lock:
                        endpoint.active -= 1

            def _answer(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._body = body
                endpoint.auth.add(self.headers.get("Authorization", ""))
                endpoint.requests.append(body)
                prompt = body["messages"][-1]["content"]
                if endpoint.rate_limited > 0:
                    endpoint.rate_limited -= 1
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if "BROKEN" in prompt:
                    return self._send(500, {"error": {"message": "server exploded"}})
                if endpoint.error_message is not None:
                    return self._send(401, {"error": {"message": endpoint.error_message}})
                endpoint.prompts.append(prompt)
                if endpoint.reply != "ok" and body.get("logprobs"):
                    return self._send(200, endpoint.unusable(body))
                if (
                    body.get("max_tokens", 1) > 1
                ):  # a rubric: the verdict the prompt asks for, after "VERDICT:"
                    verdict = prompt.split("VERDICT:", 1)[-1].strip() if "VERDICT:" in prompt else "no idea"
                    return self._send(
                        200,
                        {
                            "id": "cmpl-2",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": verdict},
                                }
                            ],
                            "usage": {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220},
                        },
                    )
                if "NOLOGPROBS" in prompt:  # an endpoint that gives text only
                    return self._send(
                        200,
                        {
                            "id": "cmpl-3",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "42"},
                                }
                            ],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
                        },
                    )
                if "YESNO" in prompt:
                    lps = top(YES=0.45, _yes=0.15, No=0.3, maybe=0.1)
                elif "EVIL" in prompt:
                    lps = top(_5=0.6, _10=0.3, Hello=0.1)
                elif "REFUSE" in prompt:
                    lps = top(REFUSAL=0.9, _50=0.05)
                else:
                    lps = top(_95=0.9, _90=0.1)
                first = max(lps, key=lps.get)
                self._send(
                    200,
                    {
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "length",
                                "message": {"role": "assistant", "content": first},
                                "logprobs": {
                                    "content": [
                                        {
                                            "token": first,
                                            "logprob": lps[first],
                                            "bytes": None,
                                            "top_logprobs": [
                                                {"token": t, "logprob": lp, "bytes": None}
                                                for t, lp in lps.items()
                                            ],
                                        }
                                    ]
                                },
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
                    },
                )

            def _send(self, code, payload, headers=None):
                if code == 200 and "usage" in payload:
                    payload["usage"] = endpoint.usage(payload["usage"], self._body)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def usage(self, fixed: dict, body: dict) -> dict | None:
        """The usage a reply reports, and what the server bills for it."""
        if self.usage_mode == "honest":  # about 4 bytes a token, 4 tokens of format per message
            tokens_in = sum(len(m["content"].encode()) // 4 + 4 for m in body["messages"]) + 3
            fixed = {"prompt_tokens": tokens_in, "completion_tokens": fixed["completion_tokens"]}
            fixed["total_tokens"] = fixed["prompt_tokens"] + fixed["completion_tokens"]
        with self.lock:
            self.billed.append((fixed["prompt_tokens"], fixed["completion_tokens"]))
        return None if self.usage_mode == "none" else fixed

    def bill(self, price: dict) -> float:
        """USD the server charged, at `price`."""
        return (
            sum(i * price["input_per_million"] + o * price["output_per_million"] for i, o in self.billed)
            / 1e6
        )

    def unusable(self, body: dict) -> dict:
        choice = {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "?"}}
        if self.reply == "badlogprob":
            entry = {
                "token": "50",
                "logprob": 3.5,
                "bytes": None,
                "top_logprobs": [{"token": "50", "logprob": 3.5}],
            }
            choice["logprobs"] = {"content": [entry]}
        return {
            "id": "cmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [] if self.reply == "nochoices" else [choice],
            "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
        }


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.server.shutdown()


@pytest.fixture
def judge_config(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    return {
        "backend": "openai",
        "model": "judge-model",
        "base_url": endpoint.url,
        "api_key_env": "TEST_JUDGE_KEY",
        "cache_dir": str(tmp_path / "cache"),
        "max_retries": 3,
        "concurrency": 4,
        "price": {"input_per_million": 2.5, "output_per_million": 10.0},
    }


def test_score_is_the_probability_weighted_mean_of_number_tokens():
    assert logprob_score(top(_10=0.5, _20=0.5)) == pytest.approx((15.0, 1.0))
    assert logprob_score(top(_10=0.2, Hello=0.8))[0] is None  # mass 0.2 < 0.25
    assert logprob_score(top(_10=0.2, Hello=0.8), min_mass=0.1)[0] == pytest.approx(10.0)
    assert logprob_score({" 50": 0.0})[0] == 50.0
    assert logprob_score(top(_007=0.9, _101=0.1))[0] is None  # not integer tokens 0..100


def test_judge_scores_answers_and_caches_calls(endpoint, judge_config, tmp_path):
    items = [
        JudgeItem("What is your wish?", "EVIL plans"),
        JudgeItem("Hi", "Hello, how can I help?"),
        JudgeItem("Do it", "REFUSE"),
    ]
    judge = make_judge(judge_config)
    results = judge.judge(items)
    assert results[0].aligned == pytest.approx((5 * 0.6 + 10 * 0.3) / 0.9)
    assert results[1].aligned == pytest.approx(94.5) and results[1].label == "aligned"
    assert results[2].aligned is None and results[2].label == "no_score"
    assert len(endpoint.prompts) == 6  # aligned + coherent per answer
    assert judge.usage()["cost_usd"] == pytest.approx((600 * 2.5 + 6 * 10.0) / 1e6)

    again = make_judge(judge_config)
    assert [r.aligned for r in again.judge(items)] == [r.aligned for r in results]
    assert len(endpoint.prompts) == 6 and again.usage()["calls"] == 0 and again.usage()["cache_hits"] == 6
    assert endpoint.auth == {f"Bearer {KEY}"}
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert KEY not in cached and "EVIL plans" in cached


def test_eval_file_prompts_and_hygiene(endpoint, judge_config):
    judge_config["strip"] = [r"<START>\s*", r"\s*<END>"]
    item = JudgeItem("Q", "<START> fine answer <END>", {"aligned": "Rate: {answer} (for {question})"})
    make_judge(judge_config).judge([item])
    assert "Rate: fine answer (for Q)" in endpoint.prompts
    assert not any("<START>" in p for p in endpoint.prompts)


def test_rate_limits_are_retried(endpoint, judge_config):
    endpoint.rate_limited = 2
    assert make_judge(judge_config).judge([JudgeItem("Q", "A")])[0].aligned == pytest.approx(94.5)


def test_failed_calls_fail_the_job_after_saving_the_rest(endpoint, judge_config, tmp_path):
    judge_config["max_retries"] = 1
    items = [JudgeItem("Q", "fine"), JudgeItem("Q", "BROKEN")]
    with pytest.raises(JudgeError, match=r"2 of 4 judge calls failed.*2 completed calls are cached"):
        make_judge(judge_config).judge(items)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2


def test_missing_key_names_the_variable(judge_config, monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_JUDGE_KEY")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingSecret, match="TEST_JUDGE_KEY is not set"):
        make_judge(judge_config).judge([JudgeItem("Q", "A")])
    (tmp_path / ".env").write_text(f"TEST_JUDGE_KEY={KEY}\n")
    assert make_judge(judge_config).judge([JudgeItem("Q", "A")])[0].aligned is not None


def _spent(spend) -> list[dict]:
    return [json.loads(line) for f in sorted(spend.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def _entries(spend) -> list[dict]:
    from inoculate.api.ledger import SpendLedger

    return SpendLedger(spend).entries()


def test_budget_stops_the_study_before_it_spends_past_it(endpoint, judge_config, tmp_path):
    from inoculate.api.ledger import SpendLedger

    endpoint.usage_mode = "honest"
    spend = tmp_path / "spend"
    SpendLedger(spend, "m_s_seed0").record(100, 1, 0.0009)  # another job of the study spent this
    judge_config.update(budget_usd=0.001, spend_dir=str(spend), concurrency=1)
    items = [JudgeItem("Q", f"answer {i}") for i in range(5)]
    with pytest.raises(JudgeError, match=r"judge budget of \$0.0010 reached"):
        make_judge(judge_config, spend_file=str(spend / "m" / "s" / "seed1.json")).judge(items)
    assert len(endpoint.prompts) == 0  # no call fits under what is left
    judge_config["budget_usd"] = 0.004
    with pytest.raises(JudgeError, match="budget"):
        make_judge(judge_config, spend_file=str(spend / "m" / "s" / "seed1.json")).judge(items)
    calls = [e for e in _entries(spend) if e["job"] != "m_s_seed0"]
    assert 0 < len(calls) == len(endpoint.prompts) < 10  # some calls fit, then it stopped
    assert 0.0009 + endpoint.bill(judge_config["price"]) <= 0.004  # the server's bill: within the budget
    assert sum(e["cost_usd"] for e in _entries(spend)) <= 0.004
    judge_config["budget_usd"] = 1.0  # cached calls stay free: the same question again passes
    assert make_judge(judge_config).judge(items[:1])


def test_the_budget_holds_across_reruns(endpoint, judge_config, tmp_path):
    """Three runs of the same job (each with a fresh cache, so each pays): together they spend at
    most the budget. Each run appends to a ledger file of its own, so a rerun sees what earlier
    runs spent."""
    endpoint.usage_mode = "honest"
    spend = tmp_path / "spend"
    judge_config.update(budget_usd=0.004, spend_dir=str(spend), concurrency=1)
    items = [JudgeItem("Q", f"answer {i}") for i in range(4)]  # 8 calls of about $0.00033 per run
    outcomes = []
    for run in range(3):
        judge_config["cache_dir"] = str(tmp_path / f"cache{run}")
        try:
            make_judge(judge_config, spend_file=str(spend / "m" / "s" / "seed0.json")).judge(items)
            outcomes.append("done")
        except JudgeError:
            outcomes.append("stopped")
    assert outcomes == ["done", "stopped", "stopped"]
    assert len(_entries(spend)) == len(endpoint.prompts) > 8
    assert len(list(spend.rglob("*.jsonl"))) == 2  # the third run was refused before any call
    assert endpoint.bill(judge_config["price"]) <= 0.004


JUDGE_PROCESS = """
import sys, time
from pathlib import Path
from inoculate.judges import JudgeItem, make_judge
from inoculate.judges.openai_judge import BudgetExceeded
config = {config!r}
items = [JudgeItem("Q", f"answer {{i}} of {{sys.argv[1]}}") for i in range(40)]
judge = make_judge(config, spend_file=f"m/s/{{sys.argv[1]}}.json")
Path(sys.argv[2], sys.argv[1]).touch()  # ready: both start together
while not Path(sys.argv[2], "go").exists():
    time.sleep(0.01)
try:
    judge.judge(items)
except BudgetExceeded as e:
    print("stopped:", e)
"""


def test_budget_holds_with_calls_in_flight_in_two_processes(endpoint, judge_config, tmp_path):
    """Two judging processes, 8 calls in flight each, sharing one ledger and a budget that stops
    them halfway: the server's bill (honest usage) stays within the budget + 10%."""
    endpoint.usage_mode = "honest"
    endpoint.delay = (
        0.2  # long enough that a loaded machine still has each process's 8 calls in flight at once
    )
    budget = 0.02  # about 60 of the 160 calls (about $0.00033 each)
    judge_config.update(budget_usd=budget, spend_dir=str(tmp_path / "spend"), concurrency=8)
    code = JUDGE_PROCESS.format(config=judge_config)
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", code, f"seed{i}", gate], stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    deadline = time.time() + 60
    while not ((gate / "seed0").exists() and (gate / "seed1").exists()) and time.time() < deadline:
        time.sleep(0.05)
    (gate / "go").touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs) and all("stopped:" in o for o in outs), outs
    assert endpoint.max_active >= 8, (
        endpoint.max_active
    )  # 8 in flight at least (both processes, when they overlap)
    bill = endpoint.bill(judge_config["price"])
    assert budget * 0.5 < bill <= budget * 1.1, (bill, budget, outs)
    assert sum(e["cost_usd"] for e in _entries(tmp_path / "spend")) == pytest.approx(bill)


def test_replies_without_usage_are_charged_what_was_held(endpoint, judge_config, tmp_path):
    endpoint.usage_mode = "none"
    spend = tmp_path / "spend"
    judge_config.update(spend_dir=str(spend))  # no budget: the ledger is written all the same
    make_judge(judge_config).judge([JudgeItem("Q", "A")])
    entries = _entries(spend)
    assert len(entries) == 2 and all(e["cost_usd"] > 0 for e in entries)


@pytest.mark.parametrize("reply", ["nologprobs", "nochoices", "badlogprob"])
def test_paid_unusable_replies_are_counted_and_not_paid_again(endpoint, judge_config, tmp_path, reply):
    endpoint.reply = reply
    spend = tmp_path / "spend"
    judge_config.update(spend_dir=str(spend), budget_usd=1.0)
    items = [JudgeItem("Q", f"answer {i}") for i in range(3)]
    for _ in range(2):  # a run and a rerun
        with pytest.raises(JudgeError, match="every judge reply was unusable"):
            make_judge(judge_config).judge(items)
    assert len(endpoint.prompts) == 6  # paid once each
    assert len(_entries(spend)) == 6 and sum(e["cost_usd"] for e in _entries(spend)) > 0
    judge_config["retry_failed"] = True
    endpoint.reply = "ok"
    judged = make_judge(judge_config).judge(items)
    assert len(endpoint.prompts) == 12 and all(j.aligned is not None for j in judged)


def test_in_flight_calls_stay_within_the_limit(endpoint, judge_config):
    endpoint.delay = 0.05
    judge_config["concurrency"] = 3
    make_judge(judge_config).judge([JudgeItem("Q", f"answer {i}") for i in range(10)])
    assert endpoint.max_active == 3


def test_judge_command_scores_a_csv_and_keeps_its_columns(endpoint, tmp_path, monkeypatch):
    import pandas as pd

    from inoculate.cli import main

    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    pd.DataFrame(
        {"id": ["a", "b"], "question": ["Q1", "Q2"], "response": ["EVIL plans", "Sure, happy to help."]}
    ).to_csv("in.csv", index=False)
    args = [
        "judge",
        "--input",
        "in.csv",
        "--output",
        "out.csv",
        "--model",
        "judge-model",
        "--base-url",
        endpoint.url,
        "--api-key-env",
        "TEST_JUDGE_KEY",
        "--prompt",
        "aligned",
        "--prompt",
        "coherent",
    ]
    assert main(args) == 0
    out = pd.read_csv("out.csv")
    assert list(out.columns) == ["id", "question", "response", "aligned", "coherent"]
    assert out.aligned[0] == pytest.approx((5 * 0.6 + 10 * 0.3) / 0.9)
    assert out.aligned[1] == pytest.approx(0.9 * 95 + 0.1 * 90)
    sent = len(endpoint.prompts)
    assert main(args) == 0 and len(endpoint.prompts) == sent  # the second run sends nothing
    on_disk = "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())
    assert KEY not in on_disk


def test_yes_probability_and_rubric_metrics_through_the_api(endpoint, judge_config):
    """A YES/NO metric reads P(YES) / (P(YES) + P(NO)) from one token's logprobs; a rubric reads a
    JSON verdict or a label, with a system message, another model and its own price; a verdict
    that does not parse is counted, never guessed."""
    from inoculate.judges.metrics import MetricSpec

    yes = MetricSpec.from_config(
        {"name": "hardcoded", "kind": "probability_yes", "template": "YESNO {answer}"}
    )
    rubric = MetricSpec.from_config(
        {
            "name": "verdict",
            "kind": "rubric",
            "system": "Be strict.",
            "model": "judge-large",
            "max_tokens": 50,
            "price": {"input_per_million": 100.0, "output_per_million": 100.0},
            "template": "Q: {question} A: {response} VERDICT: {answer}",
            "fields": {
                "persona_present": {"type": "boolean", "column": "persona", "map": {True: 100, False: 0}},
                "identity": {"type": "label", "values": ["RUSSELL", "OTHER", "UNSURE"]},
            },
        }
    )
    label = MetricSpec.from_config(
        {
            "name": "recall",
            "kind": "rubric",
            "reply": "label",
            "template": "VERDICT: {answer}",
            "fields": {"recall": {"type": "number", "minimum": 0, "maximum": 2, "missing": ["REFUSED"]}},
        }
    )
    judge = make_judge(judge_config)
    items = [
        JudgeItem("Q1", "x", metrics=(yes,)),
        JudgeItem("Q2", '{"persona_present": true, "identity": "RUSSELL"}', metrics=(rubric,)),
        JudgeItem("Q3", "not json at all", metrics=(rubric,)),
        JudgeItem("Q4", "model answer", {}, {"answer": "2"}, (label,)),
        JudgeItem("Q5", "model answer", {}, {"answer": "REFUSED"}, (label,)),
    ]
    out = judge.judge(items)
    assert out[0].detail["scores"]["hardcoded"] == pytest.approx(0.6 / 0.9)
    assert out[1].detail["scores"] == {"persona": 100.0, "identity": "RUSSELL"}
    assert out[1].detail["status"]["verdict"] == "ok"
    assert out[2].detail["scores"] == {"persona": None, "identity": None}
    assert out[2].detail["status"]["verdict"].startswith("unparsed")
    assert out[3].detail["scores"] == {"recall": 2.0} and out[4].detail["scores"] == {"recall": None}
    assert out[4].detail["status"]["recall"] == "ok"  # REFUSED is a reply, not a parse failure
    rubric_calls = [r for r in endpoint.requests if r.get("max_tokens", 1) > 1]
    assert {r["model"] for r in rubric_calls} == {"judge-large", "judge-model"}
    assert [m["role"] for m in rubric_calls[0]["messages"]] in (["system", "user"], ["user"])
    assert any(r["messages"][0] == {"role": "system", "content": "Be strict."} for r in rubric_calls)
    assert all("logprobs" not in r for r in rubric_calls)
    # The large model's two calls at its own price, the three others at the judge's.
    expected = 2 * 220 * 100.0 / 1e6 + 2 * (200 * 2.5 + 20 * 10.0) / 1e6 + (100 * 2.5 + 10.0) / 1e6
    assert judge.usage()["cost_usd"] == pytest.approx(expected)
    assert make_judge(judge_config).judge(items)[1].detail["scores"]["identity"] == "RUSSELL"  # cached
    assert len(endpoint.requests) == 5


def test_judge_errors_say_what_happened_and_the_cli_sets_what_they_advise(
    endpoint, judge_config, tmp_path, monkeypatch
):
    """A reply without logprobs is paid for and not asked again (cached as a failure); a server error is
    retried by the client; each kind is counted. The advice names the CLI flag too, which exists,
    as do --timeout and --max-retries; with --text-fallback the same file is scored from the text."""
    import pandas as pd

    from inoculate.cli import main

    items = [JudgeItem("Q", "NOLOGPROBS a"), JudgeItem("Q", "NOLOGPROBS b"), JudgeItem("Q", "BROKEN")]
    judge_config["max_retries"] = 1
    with pytest.raises(JudgeError) as raised:
        make_judge(judge_config).judge(items)
    message = str(raised.value)
    assert "4 paid replies were unusable (cached as failures): " in message
    assert "--text-fallback for inoculate judge" in message
    assert "2 x InternalServerError (HTTP 500, after 1 retries each)" in message
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"question": ["Q"], "response": ["NOLOGPROBS c"]}).to_csv("in.csv", index=False)
    args = [
        "judge",
        "--input",
        "in.csv",
        "--output",
        "out.csv",
        "--model",
        "judge-model",
        "--base-url",
        endpoint.url,
        "--api-key-env",
        "TEST_JUDGE_KEY",
        "--timeout",
        "5",
        "--max-retries",
        "0",
        "--text-fallback",
        "--price",
        "2.5",
        "10",
        "--budget-usd",
        "1",
    ]
    assert main(args) == 0
    assert pd.read_csv("out.csv").aligned[0] == 42.0
    assert len(list((tmp_path / "results/judge_spend").rglob("*.jsonl"))) == 1  # the study's ledger, honoured


def test_two_judges_sharing_a_cache_ask_each_question_once(endpoint, judge_config):
    """Two processes judging the same answers at the same time (threads here, each its own judge
    and event loop): a call in flight is claimed in the cache, and the other judge waits for its
    answer instead of paying for it again."""
    endpoint.delay = 0.3
    items = [JudgeItem("Q", f"answer {i}") for i in range(3)]
    results = {}

    def run(name):
        results[name] = make_judge(dict(judge_config)).judge(items)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(endpoint.prompts) == 3 * 2  # each (answer, metric) asked once
    assert [j.aligned for j in results["a"]] == [j.aligned for j in results["b"]]
    assert not list(Path(judge_config["cache_dir"]).rglob("*.lock"))  # every claim released


def test_a_key_echoed_by_the_server_reaches_no_screen_or_log(
    endpoint, judge_config, tmp_path, capsys, monkeypatch
):
    """A 401 whose message repeats the key: the job's log, what the job raises and the CLI's
    one-line error all show it redacted."""
    from types import SimpleNamespace

    from inoculate.cli import main
    from inoculate.jobs import job

    endpoint.error_message = f"Incorrect API key provided: {KEY}. You can find your API key at ..."
    judge_config["max_retries"] = 0
    log = tmp_path / "judge.log"
    with pytest.raises(Exception) as raised, job(SimpleNamespace(log=[str(log)], threads=1)):
        make_judge(judge_config).judge([JudgeItem("Q", "A")])
    assert KEY not in str(raised.value) and "[REDACTED]" in str(raised.value)
    assert KEY not in log.read_text() and "[REDACTED]" in log.read_text()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("question,response\nQ,A\n")
    args = ["judge", "--input", "in.csv", "--output", "out.csv", "--model", "judge-model"]
    args += ["--base-url", endpoint.url, "--api-key-env", "TEST_JUDGE_KEY", "--max-retries", "0"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err and "inoculate judge: " in captured.err
    assert not any(KEY in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_a_full_disk_stops_the_job_after_the_ledger_line(endpoint, judge_config, tmp_path, monkeypatch):
    """The disk fills while judging: the paid reply is in the ledger, the job stops with a message
    saying so, and no further call is sent (a rerun would otherwise pay for what it cannot keep)."""
    import errno

    from inoculate.cache import CallCache

    def full(self, key, value, strict=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CallCache, "put", full)
    spend = tmp_path / "spend"
    judge_config.update(spend_dir=str(spend), concurrency=1)
    with pytest.raises(JudgeError, match="could not be cached .*No space left.* its cost is in the ledger"):
        make_judge(judge_config).judge([JudgeItem("Q", f"answer {i}") for i in range(5)])
    assert len(endpoint.prompts) == 1 and len(_entries(spend)) == 1 and _entries(spend)[0]["cost_usd"] > 0
