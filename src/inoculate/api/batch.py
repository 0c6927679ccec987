"""The OpenAI Batch API as a way to fill the call cache: half the price, higher limits, the
same answers as the synchronous path.

Each request is a chat-completions body whose `custom_id` is the cache key the synchronous
path stores its answer under. Requests already cached are never sent; each result is
written into the cache in exactly the synchronous path's form, so either path reuses the
other's answers and a rerun sends nothing. Results are matched to requests by `custom_id`
alone, never by position, so a job split into several batches (by model, request count and
file size, within the API's limits) cannot give one request another's answer.

Crash safety: every chunk of requests is a small JSON file under `{cache}/_batches/`, named
by the hash of its requests and attempt, written before its file is uploaded and updated
with the batch id once the batch exists; the batch also carries that name in its metadata.
A resume polls the chunks still open instead of submitting them again, and a chunk whose
batch was created just before a kill (id not yet written) is found again among the
endpoint's batches by its metadata. Requests a batch did not answer (expired, failed) go
into a new batch, up to `max_rounds` times; when few are left they are handed back for the
synchronous path.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inoculate.cache import CallCache
from inoculate.io import write_json
from inoculate.schema import schema_defaults

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
OPEN = ("validating", "in_progress", "finalizing", "cancelling")
DONE = ("completed", "expired", "failed", "cancelled")


class BatchError(RuntimeError):
    """A batch could not be submitted or its results could not be read."""


_DEFAULTS = schema_defaults("$defs", "batch")


@dataclass
class BatchSettings:
    """Config keys `judge.batch` and `api.batch` (each default is the schema's)."""

    max_requests: int = _DEFAULTS["max_requests"]  # per batch: the API's limit
    max_bytes: int = _DEFAULTS["max_bytes"]  # per input file: the API allows 200 MB
    poll_seconds: float = _DEFAULTS["poll_seconds"]  # first wait between two looks at a batch
    poll_max_seconds: float = _DEFAULTS["poll_max_seconds"]  # the wait grows to this
    max_rounds: int = _DEFAULTS["max_rounds"]  # new batches for requests an earlier one did not answer
    sync_below: int = _DEFAULTS["sync_below"]  # fewer unanswered requests go to the synchronous path
    discount: float = _DEFAULTS["discount"]  # a batched call's price as a share of the synchronous one
    completion_window: str = _DEFAULTS["completion_window"]

    @classmethod
    def from_config(cls, spec: dict | None) -> BatchSettings:
        return cls(**(spec or {}))


@dataclass
class BatchRequest:
    """One call: its cache key (the batch's `custom_id`), its body, how to turn the API's
    response into the cache entry the synchronous path writes, and what it may cost."""

    key: str
    body: dict
    to_result: Callable[[object], dict]  # ChatCompletion -> cache entry
    cost: Callable[[dict], float] = lambda result: 0.0  # USD of a result at the synchronous price
    estimate: float = 0.0  # USD at the synchronous price, before it is sent

    def line(self) -> bytes:
        return (
            json.dumps({"custom_id": self.key, "method": "POST", "url": ENDPOINT, "body": self.body}) + "\n"
        ).encode()


@dataclass
class BatchTally:
    """What batching did in one run."""

    submitted: int = 0  # batches created
    adopted: int = 0  # batches found again after a restart
    answered: int = 0  # results written to the cache


def chunk_requests(
    requests: list[BatchRequest], max_requests: int, max_bytes: int
) -> list[list[BatchRequest]]:
    """Requests in batches: one model per batch (the API's rule), at most `max_requests` and
    `max_bytes` each, in the order given."""
    by_model: dict[str, list[BatchRequest]] = {}
    for r in requests:
        by_model.setdefault(r.body["model"], []).append(r)
    chunks = []
    for group in by_model.values():
        chunk, size = [], 0
        for r in group:
            n = len(r.line())
            if n > max_bytes:
                raise BatchError(f"one request is {n} bytes, over the batch file limit of {max_bytes}")
            if chunk and (len(chunk) >= max_requests or size + n > max_bytes):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(r)
            size += n
        if chunk:
            chunks.append(chunk)
    return chunks


class Manifest:
    """The chunk files of one cache: what was submitted, as which batch, and how it ended."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, chunk_id: str) -> Path:
        return self.root / f"{chunk_id}.json"

    def read(self, chunk_id: str) -> dict | None:
        try:
            return json.loads(self.path(chunk_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write(self, chunk_id: str, entry: dict) -> None:
        write_json(self.path(chunk_id), entry, indent=None)

    def entries(self) -> list[dict]:
        out = []
        for p in sorted(self.root.glob("*.json")) if self.root.exists() else []:
            entry = self.read(p.stem)
            if entry is not None:
                out.append(entry)
        return out


class BatchRunner:
    """Submits, polls and reads batches for requests not yet in `cache`."""

    def __init__(
        self,
        client,
        cache: CallCache,
        settings: BatchSettings,
        endpoint: str,
        record_cost: Callable[[dict, float], None] | None = None,
        reserve: Callable[[float], str] | None = None,
        release: Callable[[str], None] | None = None,
        sleep=asyncio.sleep,
    ) -> None:
        self.client, self.cache, self.settings, self.endpoint = client, cache, settings, endpoint
        self.manifest = Manifest(cache.root / "_batches")
        self.record_cost = record_cost  # (result, USD at the batch price) of each answered request
        self.reserve = reserve  # holds a batch's estimate (an id), or raises past the budget
        self.release = release  # frees the hold once the batch's results are recorded
        self.sleep = sleep
        self.tally = BatchTally()

    # -- identity ---------------------------------------------------------------------------
    def _chunk_id(self, keys: list[str], attempt: int) -> str:
        text = json.dumps([self.endpoint, attempt, keys])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _attempts(self, known: set[str]) -> tuple[dict[str, int], list[str]]:
        """Per key, how many finished batches held it; and the open chunks of these requests
        (a chunk of another job's requests is not this run's to poll)."""
        attempts: dict[str, int] = {}
        open_ids = []
        for entry in self.manifest.entries():
            if entry.get("endpoint") != self.endpoint:
                continue
            if entry.get("status") in DONE:
                for k in entry["keys"]:
                    attempts[k] = max(attempts.get(k, 0), entry["attempt"] + 1)
            elif set(entry["keys"]) <= known:
                open_ids.append(entry["id"])
        return attempts, open_ids

    # -- the run ----------------------------------------------------------------------------
    async def run(self, requests: list[BatchRequest]) -> None:
        """Fill the cache for `requests`. Those still unanswered after `max_rounds` new
        batches, or once fewer than `sync_below` are left, stay out of the cache: the caller's
        synchronous path asks them (it asks whatever the cache lacks)."""
        by_key: dict[str, BatchRequest] = {}
        for r in requests:
            by_key.setdefault(r.key, r)
        while True:
            pending = [r for r in by_key.values() if not self.cache.exists(r.key)]
            attempts, open_ids = self._attempts(set(by_key))
            covered = {k for chunk_id in open_ids for k in self.manifest.read(chunk_id)["keys"]}
            fresh = [r for r in pending if r.key not in covered]
            first = [r for r in fresh if attempts.get(r.key, 0) == 0]
            retry = [r for r in fresh if 0 < attempts.get(r.key, 0) <= self.settings.max_rounds]
            if len(retry) < self.settings.sync_below:
                retry = []  # few left: the synchronous path asks them
            if not open_ids and not first and not retry:
                return
            for group in (first, retry):
                for chunk in chunk_requests(group, self.settings.max_requests, self.settings.max_bytes):
                    attempt = max(attempts.get(r.key, 0) for r in chunk)
                    chunk_id = self._chunk_id([r.key for r in chunk], attempt)
                    await self._submit(chunk_id, attempt, chunk)
                    open_ids.append(chunk_id)
            await asyncio.gather(*(self._finish(chunk_id, by_key) for chunk_id in open_ids))

    async def _submit(self, chunk_id: str, attempt: int, chunk: list[BatchRequest]) -> None:
        """Create the batch of a chunk (recorded before and after), unless it exists already."""
        entry = self.manifest.read(chunk_id)
        if entry is not None and entry.get("batch_id"):
            return
        if entry is None:
            hold = None
            if self.reserve is not None:
                hold = self.reserve(sum(r.estimate for r in chunk) * self.settings.discount)
            entry = {
                "reservation": hold,  # in the spend ledger until the results are recorded
                "id": chunk_id,
                "endpoint": self.endpoint,
                "attempt": attempt,
                "model": chunk[0].body["model"],
                "keys": [r.key for r in chunk],
                "status": "preparing",
                "created": time.time(),
            }
            self.manifest.write(chunk_id, entry)
        found = await self._find_batch(chunk_id)
        if found is not None:  # created just before a kill, its id not yet written
            entry.update(batch_id=found.id, status=found.status)
            self.manifest.write(chunk_id, entry)
            self.tally.adopted += 1
            return
        if not entry.get("input_file_id"):
            data = b"".join(r.line() for r in chunk)
            uploaded = await self.client.files.create(
                file=(f"{chunk_id}.jsonl", io.BytesIO(data)), purpose="batch"
            )
            entry["input_file_id"] = uploaded.id
            self.manifest.write(chunk_id, entry)
        batch = await self.client.batches.create(
            input_file_id=entry["input_file_id"],
            endpoint=ENDPOINT,
            completion_window=self.settings.completion_window,
            metadata={"inoculate_chunk": chunk_id},
        )
        entry.update(batch_id=batch.id, status=batch.status)
        self.manifest.write(chunk_id, entry)
        self.tally.submitted += 1
        log.info(
            "batch %s: %d requests to %s (chunk %s, attempt %d)",
            batch.id,
            len(chunk),
            entry["model"],
            chunk_id,
            attempt,
        )

    async def _find_batch(self, chunk_id: str):
        async for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get("inoculate_chunk") == chunk_id:
                return batch
        return None

    async def _finish(self, chunk_id: str, by_key: dict[str, BatchRequest]) -> None:
        """Poll a chunk's batch until it ends, then cache its results and record how it ended."""
        entry = self.manifest.read(chunk_id)
        if not entry.get("batch_id"):  # killed before its batch was created (or its id written)
            await self._submit(chunk_id, entry["attempt"], [by_key[k] for k in entry["keys"]])
            entry = self.manifest.read(chunk_id)
        wait = self.settings.poll_seconds
        while True:
            batch = await self.client.batches.retrieve(entry["batch_id"])
            if batch.status in DONE:
                break
            if batch.status != entry["status"]:
                entry["status"] = batch.status
                self.manifest.write(chunk_id, entry)
                wait = self.settings.poll_seconds
            else:
                wait = min(wait * 1.5, self.settings.poll_max_seconds)
            await self.sleep(wait)
        answered = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                answered += await self._read(file_id, by_key)
        entry.update(status=batch.status, answered=answered, finished=time.time())
        self.manifest.write(chunk_id, entry)
        if entry.get("reservation") and self.release is not None:
            self.release(entry["reservation"])
        if answered < len(entry["keys"]):
            log.warning(
                "batch %s ended %s with %d of %d requests answered; the rest are batched again or asked "
                "synchronously",
                batch.id,
                batch.status,
                answered,
                len(entry["keys"]),
            )

    async def _read(self, file_id: str, by_key: dict[str, BatchRequest]) -> int:
        """Cache every successful line of a result file, each under its own custom_id."""
        from openai.types.chat import ChatCompletion  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

        content = await self.client.files.content(file_id)
        answered = 0
        for line in content.text.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            request = by_key.get(row.get("custom_id"))
            response = row.get("response") or {}
            if request is None or row.get("error") or response.get("status_code") != 200:
                continue
            try:
                result = request.to_result(ChatCompletion.model_validate(response["body"]))
            except (
                ValueError,
                KeyError,
                TypeError,
                RuntimeError,
            ) as e:  # malformed: asked again, as a failure
                log.warning("batch result for %s unusable (%s); asked again", row["custom_id"][:12], e)
                continue
            if self.cache.exists(request.key):
                continue
            self.cache.put(request.key, result)
            answered += 1
            self.tally.answered += 1
            if self.record_cost is not None:
                self.record_cost(result, request.cost(result) * self.settings.discount)
        return answered
