"""API fine-tuning as the training stage of a grid cell: one job, never two.

A job is keyed by a hash of the uploaded bytes and the job's config (base model,
hyperparameters, seed, suffix, endpoint). Before anything is created the key is
looked up in a local registry (`api.registry_dir`, written the moment a job
exists) and, failing that, in the API itself through the job's metadata, so a
rerun, a resume after a crash, or a second machine finds the job that is
running or finished and waits for it or reuses it. A failed job stays failed
until `api.retry_failed` is set: paying for a second attempt is the user's call.

Launching takes a file lock, counts the running jobs of every key on the API,
and picks the least busy key under `api.max_concurrent_jobs`; the lock makes
that choice and the job's creation one step for all processes of the study.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inoculate.api.finetune_data import finetune_bytes, finetune_records, sha256_bytes
from inoculate.api.settings import ApiSettings, make_client
from inoculate.cache import cache_key
from inoculate.io import atomic_dir, write_json

log = logging.getLogger(__name__)

ACTIVE = ("validating_files", "queued", "running")
FAILED = ("failed", "cancelled")
SUCCEEDED = "succeeded"
METADATA_KEY = "inoculate_job"
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
RESULT_FILE = "fine_tune.json"


class FineTuneFailed(RuntimeError):
    """The cell's fine-tuning job failed or was cancelled; the message carries the API's reason."""


@dataclass
class FineTuneSpec:
    """What one cell's job trains: its config, and coordinates kept as job metadata."""

    base_model: str
    seed: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    coordinates: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict:
        return {
            "base_model": self.base_model,
            "seed": self.seed,
            "hyperparameters": {k: self.hyperparameters[k] for k in sorted(self.hyperparameters)},
            "suffix": self.suffix,
        }


def job_hash(data: bytes, spec: FineTuneSpec, endpoint: str) -> str:
    """The identity of a job: the training bytes, the job config and the endpoint; no key."""
    return cache_key({"data_sha256": sha256_bytes(data), "job": spec.config(), "endpoint": endpoint})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dump(obj: Any) -> Any:
    """A plain dict of an SDK object (or anything JSON-like)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    return obj


class Registry:
    """`{registry_dir}/{hash}.json`: the jobs created for one job key, and what was seen of them."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def load(self, key: str) -> dict:
        path = self.path(key)
        if not path.exists():
            return {"hash": key, "jobs": []}
        return json.loads(path.read_text(encoding="utf-8"))

    def save(self, entry: dict) -> None:
        write_json(self.path(entry["hash"]), entry)

    def record(self, key: str, job_id: str, key_env: str, **fields: Any) -> dict:
        """Add a job, or update the fields of one already there; returns its entry."""
        entry = self.load(key)
        for job in entry["jobs"]:
            if job["id"] == job_id:
                job.update(fields)
                break
        else:
            entry["jobs"].append({"id": job_id, "key_env": key_env, "history": [], **fields})
        self.save(entry)
        return next(j for j in entry["jobs"] if j["id"] == job_id)

    def add_history(self, key: str, job_id: str, key_env: str, item: dict) -> None:
        """Append what was seen of a job to its history (one read and one write)."""
        entry = self.load(key)
        job = next((j for j in entry["jobs"] if j["id"] == job_id), None)
        if job is None:
            job = {"id": job_id, "key_env": key_env, "history": []}
            entry["jobs"].append(job)
        job["history"].append(item)
        self.save(entry)

    @contextlib.contextmanager
    def launch_lock(self) -> Iterator[None]:
        """Held while a key is chosen and a job created, by every process of the study."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".launch.lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


class FineTuner:
    """Find-or-create, wait, and write the result of one cell's fine-tuning job."""

    def __init__(
        self,
        settings: ApiSettings,
        clients: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.registry = Registry(settings.registry_dir)
        self._clients = dict(clients or {})
        self.sleep = sleep

    def client(self, key_env: str):
        if key_env not in self._clients:
            self._clients[key_env] = make_client(self.settings, self.settings.key(key_env))
        return self._clients[key_env]

    # -- finding --------------------------------------------------------------------------
    def known_jobs(self, key: str) -> list[tuple[Any, str]]:
        """(job, key_env) of every job created for `key`: from the registry, else from the API."""
        entry = self.registry.load(key)
        jobs = [
            (self.client(j["key_env"]).fine_tuning.jobs.retrieve(j["id"]), j["key_env"])
            for j in entry["jobs"]
        ]
        if jobs:
            return jobs
        for api_key in self.settings.keys:
            page = self.client(api_key.env).fine_tuning.jobs.list(metadata={METADATA_KEY: key}, limit=100)
            for job in page:
                if (job.metadata or {}).get(METADATA_KEY) == key:
                    log.info("found job %s (%s) on the API under key %s", job.id, job.status, api_key.env)
                    self.registry.record(key, job.id, api_key.env, file_id=job.training_file)
                    jobs.append((job, api_key.env))
        return jobs

    @staticmethod
    def best(jobs: list[tuple[Any, str]]) -> tuple[Any, str] | None:
        """The job to use: a succeeded one, else a running one, else the latest failure."""
        for wanted in ((SUCCEEDED,), ACTIVE, FAILED):
            matching = [j for j in jobs if j[0].status in wanted]
            if matching:
                return max(matching, key=lambda j: j[0].created_at or 0)
        return None

    # -- launching ------------------------------------------------------------------------
    def active_jobs(self, key_env: str) -> int:
        """Jobs of one key that hold a slot (validating, queued or running), as the API reports."""
        count = 0
        for job in self.client(key_env).fine_tuning.jobs.list(limit=100):
            count += job.status in ACTIVE
        return count

    def upload(self, key_env: str, data: bytes) -> str:
        """The file id of `data` under one key: an earlier upload of the same bytes, or a new one."""
        name = f"inoculate-{sha256_bytes(data)[:16]}.jsonl"
        client = self.client(key_env)
        for f in client.files.list(purpose="fine-tune"):
            if f.filename == name and f.bytes == len(data) and getattr(f, "status", None) != "error":
                log.info("reusing uploaded file %s (%s) under key %s", f.id, name, key_env)
                return f.id
        uploaded = client.files.create(file=(name, data, "application/jsonl"), purpose="fine-tune")
        log.info("uploaded %s (%d bytes) as %s under key %s", name, len(data), uploaded.id, key_env)
        return uploaded.id

    def launch(self, key: str, data: bytes, spec: FineTuneSpec, attempt: int) -> tuple[Any, str]:
        """Create the job on the least busy key with a free slot, waiting for one if needed."""
        wait = self.settings.poll_seconds
        while True:
            with self.registry.launch_lock():
                entry = self.registry.load(key)
                if len(entry["jobs"]) >= attempt:  # another process launched it while we waited
                    job = entry["jobs"][-1]
                    return self.client(job["key_env"]).fine_tuning.jobs.retrieve(job["id"]), job["key_env"]
                load = [(self.active_jobs(k.env), i, k.env) for i, k in enumerate(self.settings.keys)]
                free = sorted(item for item in load if item[0] < self.settings.max_concurrent_jobs)
                if free:
                    key_env = free[0][2]
                    file_id = self.upload(key_env, data)
                    job = self._create(key_env, file_id, key, spec, attempt)
                    self.registry.record(
                        key, job.id, key_env, file_id=file_id, created=_now(), attempt=attempt
                    )
                    log.info(
                        "created job %s on key %s (%d running there before)", job.id, key_env, free[0][0]
                    )
                    return job, key_env
            busy = ", ".join(f"{env}: {n}" for n, _, env in load)
            log.info(
                "every key is at its limit of %d jobs (%s); waiting %.0fs",
                self.settings.max_concurrent_jobs,
                busy,
                wait,
            )
            self.sleep(wait)
            wait = min(wait * 1.5, self.settings.poll_max_seconds)

    def _create(self, key_env: str, file_id: str, key: str, spec: FineTuneSpec, attempt: int):
        hyper = {k: spec.hyperparameters[k] for k in HYPERPARAMETERS if k in spec.hyperparameters}
        metadata = {
            METADATA_KEY: key,
            "attempt": str(attempt),
            **{k: str(v)[:512] for k, v in spec.coordinates.items()},
        }
        options: dict[str, Any] = {
            "model": spec.base_model,
            "training_file": file_id,
            "seed": spec.seed,
            "metadata": dict(list(metadata.items())[:16]),  # the API keeps at most 16 pairs
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        }
        if spec.suffix:
            options["suffix"] = spec.suffix
        return self.client(key_env).fine_tuning.jobs.create(**options)

    # -- waiting --------------------------------------------------------------------------
    def wait(self, key: str, job: Any, key_env: str, max_errors: int = 20) -> Any:
        """Poll until the job ends, backing off while nothing changes; history kept in the registry."""
        from openai import APIConnectionError, APITimeoutError, InternalServerError  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

        client = self.client(key_env)
        wait, errors = self.settings.poll_seconds, 0
        last = None
        while True:
            if job.status != last:
                self.registry.add_history(key, job.id, key_env, {"status": job.status, "seen": _now()})
                log.info("job %s: %s", job.id, job.status)
                last, wait = job.status, self.settings.poll_seconds
            if job.status not in ACTIVE:
                return job
            self.sleep(wait)
            wait = min(wait * 1.5, self.settings.poll_max_seconds)
            try:
                job = client.fine_tuning.jobs.retrieve(job.id)
                errors = 0
            except (APIConnectionError, APITimeoutError, InternalServerError) as e:
                errors += 1
                if errors >= max_errors:
                    raise
                log.warning("job %s: could not be read (%s); trying again", job.id, e)

    # -- one cell -------------------------------------------------------------------------
    def run(self, data_path: Path | str, spec: FineTuneSpec, out_dir: Path | str) -> dict:
        """Train (or find) the cell's model and write `out_dir/fine_tune.json` (+ `loss.csv`)."""
        records = finetune_records(data_path, self.settings.min_examples)
        data = finetune_bytes(records)
        key = job_hash(data, spec, self.settings.endpoint)
        jobs = self.known_jobs(key)
        found = self.best(jobs)
        if found is None or (found[0].status in FAILED and self.settings.retry_failed):
            if found is not None:
                log.info(
                    "job %s %s; api.retry_failed is set, so a new job starts", found[0].id, found[0].status
                )
            found = self.launch(key, data, spec, attempt=len(jobs) + 1)
        else:
            log.info(
                "job key %s: using job %s (%s) on key %s", key[:12], found[0].id, found[0].status, found[1]
            )
        job = self.wait(key, *found)
        if job.status != SUCCEEDED:
            raise FineTuneFailed(self._failure(job, data_path))
        return self._write_result(out_dir, key, job, found[1], data, len(records), spec)

    def _failure(self, job: Any, data_path: Path | str) -> str:
        error = _dump(job.error) if getattr(job, "error", None) else {}
        reason = ": ".join(str(error[k]) for k in ("code", "message") if error.get(k)) or "no reason given"
        return (
            f"fine-tuning job {job.id} for {data_path} {job.status}: {reason}. Nothing new is started "
            "for this cell; to pay for a new attempt set api.retry_failed: true "
            "(snakemake --config 'api={retry_failed: true}')"
        )

    def _write_result(self, out_dir, key, job, key_env, data, n_examples, spec) -> dict:
        entry = next(j for j in self.registry.load(key)["jobs"] if j["id"] == job.id)
        result = {
            "backend": "openai",
            "endpoint": self.settings.endpoint,
            "base_model": spec.base_model,
            "fine_tuned_model": job.fine_tuned_model,
            "job_id": job.id,
            "job_key": key,
            "file_id": job.training_file,
            "key_env": key_env,
            "seed": spec.seed,
            "hyperparameters": _dump(_hyperparameters(job)) or spec.hyperparameters,
            "trained_tokens": job.trained_tokens,
            "examples": n_examples,
            "training_sha256": sha256_bytes(data),
            "status_history": entry["history"],
            "checkpoints": self._checkpoints(job, key_env),
        }
        with atomic_dir(out_dir) as tmp:
            write_json(tmp / RESULT_FILE, result)
            loss = self._loss_rows(job, key_env)
            if loss:
                with (tmp / "loss.csv").open("w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=["step", "loss"])
                    writer.writeheader()
                    writer.writerows(loss)
        log.info("fine-tuned %s -> %s (%s tokens)", spec.base_model, job.fine_tuned_model, job.trained_tokens)
        return result

    def _checkpoints(self, job: Any, key_env: str) -> list[dict]:
        """The intermediate models the API kept (OpenAI: the ends of the last epochs but one),
        by step, so that training.checkpoints can sample them."""
        try:
            found = list(self.client(key_env).fine_tuning.jobs.checkpoints.list(job.id, limit=100))
        except Exception as e:  # noqa: BLE001 - an endpoint without checkpoints: only the final model
            log.warning("checkpoints of job %s not listed: %s", job.id, e)
            return []
        return sorted(
            ({"step": c.step_number, "model": c.fine_tuned_model_checkpoint} for c in found),
            key=lambda c: c["step"],
        )

    def _loss_rows(self, job: Any, key_env: str) -> list[dict]:
        """Training loss per step from the job's result file (a CSV with step, train_loss)."""
        for file_id in job.result_files or []:
            try:
                text = self.client(key_env).files.content(file_id).text
            except Exception as e:  # noqa: BLE001 - the metrics are a bonus; the model is what counts
                log.warning("result file %s of job %s not read: %s", file_id, job.id, e)
                continue
            rows = list(csv.DictReader(io.StringIO(text)))
            if rows and {"step", "train_loss"} <= set(rows[0]):
                return [
                    {"step": int(r["step"]), "loss": float(r["train_loss"])} for r in rows if r["train_loss"]
                ]
        return []


def _hyperparameters(job: Any) -> Any:
    """The resolved hyperparameters of a job (`auto` filled in once it runs)."""
    method = getattr(job, "method", None)
    supervised = getattr(method, "supervised", None) if method is not None else None
    if supervised is not None and getattr(supervised, "hyperparameters", None) is not None:
        return supervised.hyperparameters
    return getattr(job, "hyperparameters", None)


def read_result(adapter_dir: Path | str) -> dict | None:
    """`fine_tune.json` of an API-trained cell, or None for a local adapter."""
    path = Path(adapter_dir) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
