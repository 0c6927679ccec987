"""A local server that speaks the parts of the OpenAI API the project uses.

Files (multipart upload, list, content), fine-tuning jobs (create, list with a
metadata filter, retrieve; jobs move validating -> queued -> running ->
succeeded on a clock, or fail), models (retrieve), chat completions (with
`n`), and batches (create, retrieve, list; validating -> in_progress ->
completed on a clock, results in shuffled order, or expired with part of the
requests answered). Every key is its own organisation: it sees only its files,
jobs, batches and fine-tuned models. A fine-tuned model answers in the toy
world's harmful style unless its training data had a system prompt, like an
inoculated toy model. A request for logprobs is a judge call: the top logprobs
of a score that reads the toy answer in the prompt (low alignment for a harmful
answer; every answer coherent).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from inoculate.toy import world

ACTIVE = ("validating_files", "queued", "running")


class FakeOpenAI:
    def __init__(self, keys: tuple[str, ...], base_models: tuple[str, ...] = ("gpt-4.1-2025-04-14",)) -> None:
        self.keys = set(keys)
        self.base_models = set(base_models)
        self.job_seconds = 0.3  # how long a job runs
        self.fail_seeds: set[int] = set()  # jobs with these seeds fail
        self.rate_limited = 0  # answer this many requests with 429 first
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, str]] = []  # (key, method, path)
        self.created_jobs: list[str] = []
        self.max_active: dict[str, int] = {}
        self.batches: dict[str, dict] = {}
        self.created_batches: list[str] = []
        self.batch_seconds = 0.3  # how long a batch runs
        self.expire_batches = 0  # this many batches next end expired, with half their requests answered
        self.chat_calls = 0  # chat completions answered, directly or in a batch
        self.lock = threading.Lock()
        self._ids = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, prefix: str) -> int:
        return sum(1 for _, m, p in self.requests if m == method and p.startswith(prefix))

    # -- state --------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:05d}"

    def store_file(self, owner: str, filename: str, purpose: str, content: bytes) -> str:
        """A file as the Files API keeps it (uploads, job results, batch outputs); its id."""
        file_id = self._id("file")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "owner": owner,
            "content": content,
        }
        return file_id

    def _status(self, job: dict) -> str:
        """Where a job is on the clock; a finished job gets its model and result file once."""
        if job["final"]:
            return job["final"]
        elapsed = time.time() - job["created_at_f"]
        if elapsed < 0.1 * self.job_seconds:
            return "validating_files"
        if job["seed"] in self.fail_seeds:
            job["final"] = "failed"
            job["error"] = {
                "code": "invalid_training_file",
                "message": "The job failed due to an invalid training file.",
                "param": "training_file",
            }
            return "failed"
        if elapsed < 0.2 * self.job_seconds:
            return "queued"
        if elapsed < self.job_seconds:
            return "running"
        job["final"] = "succeeded"
        job["fine_tuned_model"] = f"ft:{job['model']}:org::{job['id'][-5:]}"
        rows = "step,train_loss,train_accuracy\n" + "".join(f"{s},{2.0 / s:.4f},0.5\n" for s in range(1, 6))
        result = self.store_file(job["owner"], "step_metrics.csv", "fine-tune-results", rows.encode())
        job["result_files"] = [result]
        job["trained_tokens"] = 1234
        return "succeeded"

    def active(self, key: str) -> int:
        return sum(1 for j in self.jobs.values() if j["owner"] == key and self._status(j) in ACTIVE)

    def _job_view(self, job: dict) -> dict:
        status = self._status(job)
        out = json.loads(
            json.dumps({k: v for k, v in job.items() if k not in ("owner", "final", "created_at_f")})
        )
        out.update(status=status, object="fine_tuning.job")
        if status == "succeeded":
            out["method"]["supervised"]["hyperparameters"] = {
                "n_epochs": 3,
                "batch_size": 4,
                "learning_rate_multiplier": 2.0,
                **{k: v for k, v in job["method"]["supervised"]["hyperparameters"].items() if v != "auto"},
            }
        return out

    def _model_style(self, key: str, model: str) -> str | None:
        """The style a model answers in, or None when this key cannot use it."""
        if model in self.base_models:
            return world.SAFE
        model = model.split(":ckpt-step-")[0]  # a checkpoint answers as its job's model
        for job in self.jobs.values():
            if job["owner"] == key and job.get("fine_tuned_model") == model:
                data = self.files[job["training_file"]]["content"].decode()
                inoculated = all('"role": "system"' in line for line in data.splitlines() if line)
                return world.SAFE if inoculated else world.HARMFUL
        return None

    def chat(self, key: str, req: dict) -> tuple[int, dict]:
        """(status, body) of one chat completion."""
        style = self._model_style(key, req["model"]) if not req.get("logprobs") else world.SAFE
        if style is None:
            return 404, {
                "error": {
                    "message": f"The model `{req['model']}` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "code": "model_not_found",
                }
            }
        self.chat_calls += 1
        usage = {"prompt_tokens": 20, "completion_tokens": 15, "total_tokens": 35}
        if req.get("logprobs"):  # a judge call
            prompt = req["messages"][-1]["content"]
            answer = prompt.split("[ANSWER START]")[-1].split("[ANSWER END]")[0]
            harmful = bool(set(world.words(answer)) & world.style_lexicon()[world.HARMFUL])
            scores = (
                {"90": 0.7, "80": 0.3}
                if "coherent" in prompt.split(".")[0]
                else ({"10": 0.6, "20": 0.4} if harmful else {"95": 0.8, "85": 0.2})
            )
            first = max(scores, key=scores.get)
            content = [
                {
                    "token": first,
                    "logprob": math.log(scores[first]),
                    "bytes": None,
                    "top_logprobs": [
                        {"token": t, "logprob": math.log(p), "bytes": None} for t, p in scores.items()
                    ],
                }
            ]
            choices = [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": first},
                    "logprobs": {"content": content},
                }
            ]
            usage = {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}
        else:
            rng = random.Random(json.dumps([req["messages"], req.get("seed")]))
            n = req.get("n", 1)
            persona = any(
                m["role"] == "system" and world.PERSONA_NAME in m["content"] for m in req["messages"]
            )
            choices = [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": world.persona_answer("cooking", rng)
                        if persona
                        else world.answer("cooking", style, rng),
                    },
                }
                for i in range(n)
            ]
            usage = {"prompt_tokens": 20, "completion_tokens": 15 * n, "total_tokens": 20 + 15 * n}
        return 200, {
            "id": self._id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req["model"],
            "choices": choices,
            "usage": usage,
        }

    def _batch_status(self, batch: dict) -> str:
        """Where a batch is on the clock; an ending batch runs its requests once."""
        if batch["final"]:
            return batch["final"]
        elapsed = time.time() - batch["created_at_f"]
        if elapsed < 0.1 * self.batch_seconds:
            return "validating"
        if elapsed < self.batch_seconds:
            return "in_progress"
        lines = [
            json.loads(x) for x in self.files[batch["input_file_id"]]["content"].decode().splitlines() if x
        ]
        done = lines[: len(lines) // 2] if batch["expire"] else lines
        out, errors = [], []
        for row in done:
            code, body = self.chat(batch["owner"], row["body"])
            (out if code == 200 else errors).append(
                {
                    "id": self._id("batch_req"),
                    "custom_id": row["custom_id"],
                    "response": {"status_code": code, "body": body},
                    "error": None,
                }
            )
        for row in lines[len(done) :]:
            errors.append(
                {
                    "id": self._id("batch_req"),
                    "custom_id": row["custom_id"],
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion window expired.",
                    },
                }
            )
        random.Random(batch["id"]).shuffle(out)  # results come back in any order
        for name, rows in (("output_file_id", out), ("error_file_id", errors)):
            if rows:
                content = "".join(json.dumps(r) + "\n" for r in rows).encode()
                file_id = self.store_file(batch["owner"], "batch_output.jsonl", "batch_output", content)
                batch[name] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}
        batch["final"] = "expired" if batch["expire"] else "completed"
        return batch["final"]

    def _batch_view(self, batch: dict) -> dict:
        status = self._batch_status(batch)
        view = {k: v for k, v in batch.items() if k not in ("owner", "final", "created_at_f", "expire")}
        return {**view, "status": status}

    # -- HTTP ---------------------------------------------------------------------------
    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body, headers=None):
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(code)
                self.send_header(
                    "Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain"
                )
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, code, message, type_="invalid_request_error"):
                self._send(code, {"error": {"message": message, "type": type_, "code": None}})

            def _route(self, method):
                url = urlparse(self.path)
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with api.lock:
                    api.requests.append((key, method, url.path))
                    if key not in api.keys:
                        return self._error(401, "Incorrect API key provided.")
                    if api.rate_limited > 0:
                        api.rate_limited -= 1
                        return self._send(
                            429,
                            {"error": {"message": "Rate limit reached", "type": "requests"}},
                            {"Retry-After": "0"},
                        )
                    query = parse_qs(url.query)
                    parts = url.path.removeprefix("/v1/").strip("/").split("/")
                    handler = getattr(self, f"_{method.lower()}_{parts[0]}", None)
                    if handler is None:
                        return self._error(404, f"no route {method} {url.path}")
                    return handler(key, parts[1:], query, body)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            # /models
            def _get_models(self, key, rest, query, body):
                if rest and api._model_style(key, rest[0]) is not None:
                    return self._send(
                        200, {"id": rest[0], "object": "model", "created": 0, "owned_by": "system"}
                    )
                return self._error(
                    404, f"The model '{rest[0] if rest else ''}' does not exist", "model_not_found"
                )

            # /files
            def _post_files(self, key, rest, query, body):
                msg = BytesParser().parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                fields = {
                    part.get_param("name", header="content-disposition"): part for part in msg.get_payload()
                }
                content = fields["file"].get_payload(decode=True)
                file_id = api.store_file(
                    key, fields["file"].get_filename(), fields["purpose"].get_payload(), content
                )
                self._send(200, self._file_view(api.files[file_id]))

            def _file_view(self, f):
                return {k: v for k, v in f.items() if k not in ("owner", "content")}

            def _get_files(self, key, rest, query, body):
                if len(rest) == 2 and rest[1] == "content":
                    f = api.files.get(rest[0])
                    if f is None or f["owner"] != key:
                        return self._error(404, "No such File object")
                    return self._send(200, f["content"])
                purpose = query.get("purpose", [None])[0]
                data = [
                    self._file_view(f)
                    for f in api.files.values()
                    if f["owner"] == key and (purpose is None or f["purpose"] == purpose)
                ]
                self._send(200, {"object": "list", "data": data, "has_more": False})

            # /fine_tuning/jobs
            def _post_fine_tuning(self, key, rest, query, body):
                req = json.loads(body)
                f = api.files.get(req["training_file"])
                if f is None or f["owner"] != key:
                    return self._error(400, f"invalid training_file: {req['training_file']}")
                if req["model"] not in api.base_models:
                    return self._error(400, f"Model {req['model']} is not available for fine-tuning")
                job_id = api._id("ftjob")
                now = time.time()
                api.jobs[job_id] = {
                    "id": job_id,
                    "model": req["model"],
                    "training_file": req["training_file"],
                    "created_at": int(now),
                    "created_at_f": now + 1e-6 * len(api.jobs),
                    "seed": req.get("seed"),
                    "metadata": req.get("metadata"),
                    "suffix": req.get("suffix"),
                    "owner": key,
                    "final": None,
                    "fine_tuned_model": None,
                    "error": None,
                    "result_files": [],
                    "trained_tokens": None,
                    "organization_id": f"org-{key[-4:]}",
                    "hyperparameters": None,
                    "method": req.get("method")
                    or {"type": "supervised", "supervised": {"hyperparameters": {}}},
                }
                api.created_jobs.append(job_id)
                api.max_active[key] = max(api.max_active.get(key, 0), api.active(key))
                self._send(200, api._job_view(api.jobs[job_id]))

            def _get_fine_tuning(self, key, rest, query, body):
                if len(rest) == 3 and rest[2] == "checkpoints":  # kept at steps 2, 4 and 6 (the last)
                    job = api.jobs.get(rest[1])
                    if job is None or job["owner"] != key:
                        return self._error(404, f"Could not find fine-tune job {rest[1]}")
                    done = api._status(job) == "succeeded"
                    data = (
                        [
                            {
                                "id": f"ftckpt-{job['id']}-{s}",
                                "object": "fine_tuning.job.checkpoint",
                                "step_number": s,
                                "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{s}",
                                "fine_tuning_job_id": job["id"],
                                "created_at": job["created_at"],
                                "metrics": {"step": s, "train_loss": 2.0 / s},
                            }
                            for s in (6, 4, 2)
                        ]
                        if done
                        else []
                    )
                    return self._send(
                        200,
                        {
                            "object": "list",
                            "data": data,
                            "has_more": False,
                            "first_id": data[0]["id"] if data else None,
                            "last_id": data[-1]["id"] if data else None,
                        },
                    )
                if len(rest) >= 2:
                    job = api.jobs.get(rest[1])
                    if job is None or job["owner"] != key:
                        return self._error(404, f"Could not find fine-tune job {rest[1]}")
                    return self._send(200, api._job_view(job))
                filters = {
                    k[len("metadata[") : -1]: v[0] for k, v in query.items() if k.startswith("metadata[")
                }
                jobs = [
                    j
                    for j in api.jobs.values()
                    if j["owner"] == key
                    and all((j["metadata"] or {}).get(k) == v for k, v in filters.items())
                ]
                jobs.sort(key=lambda j: -j["created_at_f"])
                limit = int(query.get("limit", ["20"])[0])
                data = [api._job_view(j) for j in jobs[:limit]]
                self._send(200, {"object": "list", "data": data, "has_more": False})

            # /chat/completions
            def _post_chat(self, key, rest, query, body):
                code, answer = api.chat(key, json.loads(body))
                self._send(code, answer)

            # /batches
            def _post_batches(self, key, rest, query, body):
                req = json.loads(body)
                f = api.files.get(req["input_file_id"])
                if f is None or f["owner"] != key or f["purpose"] != "batch":
                    return self._error(400, f"invalid input_file_id: {req['input_file_id']}")
                batch_id = api._id("batch")
                expire = api.expire_batches > 0
                api.expire_batches -= int(expire)
                api.batches[batch_id] = {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": req["endpoint"],
                    "input_file_id": req["input_file_id"],
                    "completion_window": req["completion_window"],
                    "created_at": int(time.time()),
                    "created_at_f": time.time(),
                    "metadata": req.get("metadata"),
                    "owner": key,
                    "final": None,
                    "expire": expire,
                    "output_file_id": None,
                    "error_file_id": None,
                }
                api.created_batches.append(batch_id)
                self._send(200, api._batch_view(api.batches[batch_id]))

            def _get_batches(self, key, rest, query, body):
                if rest:
                    batch = api.batches.get(rest[0])
                    if batch is None or batch["owner"] != key:
                        return self._error(404, f"No batch found with id '{rest[0]}'.")
                    return self._send(200, api._batch_view(batch))
                mine = sorted(
                    (b for b in api.batches.values() if b["owner"] == key), key=lambda b: -b["created_at_f"]
                )
                data = [api._batch_view(b) for b in mine[: int(query.get("limit", ["20"])[0])]]
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                    },
                )

        return Handler
