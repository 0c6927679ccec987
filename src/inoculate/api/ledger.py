"""What paid API calls cost, kept so that a budget is a ceiling across every job and run of a study.

Each process appends lines to a file of its own under the ledger folder
(`{job}.{random}.jsonl`), never rewritten and never shared, so concurrent writers never
interleave. A call is *reserved* before it is sent: under an exclusive lock on the folder
(`.lock`, `flock`; every process takes it before reserving), the study's spend (settled calls
plus open reservations, of every file) is read and the reservation is refused if it would pass
the budget, else appended. The reply *settles* it at the billed usage; a reservation never
settled (a job killed while its call was in flight, a reply without usage) counts at its
reserved cost. So with honest usage the spend stays within the budget, and with usage above
the estimate it passes it by at most what the calls then in flight were under-estimated by.
A line cut short by a killed job is skipped. Lines written before reservations existed (no
`kind`) count as settled calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from inoculate.io import as_umask_allows


class BudgetExceeded(RuntimeError):
    """A reservation that would take the study's spend past its budget; nothing was sent."""


class SpendLedger:
    def __init__(self, root: Path | str, job: str = "job") -> None:
        self.root = Path(root)
        self.job = job
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", job).strip("._") or "job"
        self.path = self.root / f"{safe}.{uuid.uuid4().hex[:12]}.jsonl"
        self._handle = None
        self._thread_lock = threading.Lock()
        self._offsets: dict[Path, int] = {}  # bytes of each file already read
        self._open: dict[str, float] = {}  # reservation id -> reserved USD, not yet settled
        self._closed: set[str] = set()  # reservations settled or released (in any file)
        self._settled = 0.0  # USD of settled calls (and legacy lines)
        self._calls: dict[str, dict] = {}  # every call read so far, by id (legacy lines by position)

    # -- writing ----------------------------------------------------------------------------
    def _write(self, line: dict) -> None:
        """Append one line, flushed at once (a killed job's spend is still counted)."""
        if self._handle is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
            as_umask_allows(self.path)
        self._handle.write(json.dumps(line) + "\n")
        self._handle.flush()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across threads of this process and across processes sharing the folder."""
        with self._thread_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def reserve(
        self, usd: float, budget: float | None = None, model: str = "", what: str = "the next call"
    ) -> str:
        """Hold `usd` for a call about to be sent; raise BudgetExceeded (holding nothing) when
        the study's spend plus it would pass `budget`. Returns the reservation's id."""
        if budget is None:  # nothing to check against: recorded, no lock needed
            rid = uuid.uuid4().hex
            with self._thread_lock:
                self._write({"kind": "reserve", "id": rid, "job": self.job, "model": model, "cost_usd": usd})
            return rid
        with self._locked():
            spent = self._refresh()
            if spent + usd > budget:
                raise BudgetExceeded(
                    f"judge budget of ${budget:.4f} reached: ${spent:.4f} spent or held by this study so far, "
                    f"and {what} estimated at ${usd:.4f} could pass it"
                )
            rid = uuid.uuid4().hex
            self._write({"kind": "reserve", "id": rid, "job": self.job, "model": model, "cost_usd": usd})
            return rid

    def settle(self, rid: str, tokens_in: int, tokens_out: int, cost_usd: float, model: str = "") -> None:
        """The billed cost of a reserved call (its reservation no longer counts)."""
        line = {
            "kind": "settle",
            "id": rid,
            "job": self.job,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost_usd,
            "time": time.time(),
        }
        with self._thread_lock:
            self._write(line)

    def release(self, rid: str) -> None:
        """A reserved call that was never billed (refused before it reached the model)."""
        with self._thread_lock:
            self._write({"kind": "release", "id": rid, "job": self.job})

    def record(self, tokens_in: int, tokens_out: int, cost_usd: float, model: str = "") -> None:
        """A paid call that was not reserved one by one (a batch's result, held as a whole)."""
        self.settle(uuid.uuid4().hex, tokens_in, tokens_out, cost_usd, model)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # -- reading ----------------------------------------------------------------------------
    def _refresh(self) -> float:
        """Read what every file added since the last read; the study's spend: settled plus held."""
        for path in sorted(self.root.glob("*.jsonl")) if self.root.exists() else []:
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self._offsets[path] = start + end
            for raw in data[:end].splitlines():
                self._apply(raw, f"{path.name}:{start}:{len(self._calls)}")
        return self._settled + sum(self._open.values())

    def _apply(self, raw: bytes, position: str) -> None:
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):  # the last line of a job killed mid-write
            return
        if not isinstance(entry, dict) or not isinstance(entry.get("cost_usd", 0), int | float):
            return
        kind, rid = entry.get("kind"), entry.get("id")
        if kind == "reserve":
            if rid in self._closed:  # its settlement was read first (another process's file)
                return
            self._open[rid] = float(entry["cost_usd"])
            self._calls[rid] = {**entry, "tokens_in": 0, "tokens_out": 0, "open": True}
        elif kind == "release":
            self._closed.add(rid)
            self._open.pop(rid, None)
            self._calls.pop(rid, None)
        elif kind == "settle" or (kind is None and "cost_usd" in entry):
            if rid is not None:
                self._closed.add(rid)
            self._open.pop(rid, None)
            self._settled += float(entry["cost_usd"])
            self._calls[rid or position] = entry

    def total(self) -> float:
        """USD of the study's calls: settled ones at their billed cost, open ones at their
        reservation."""
        return self._refresh()

    def entries(self) -> list[dict]:
        """One entry per call (tokens and USD); a reservation never settled has `open: true`
        and counts at its reserved cost."""
        self._refresh()
        return list(self._calls.values())
