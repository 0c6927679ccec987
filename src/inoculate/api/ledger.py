"""What paid API calls cost, kept so that a budget holds across every run of a study.

Each process appends one line per paid call to a file of its own under the ledger folder
(`{job}.{random}.jsonl`), never rewritten and never shared: concurrent jobs on one machine or
on a cluster's NFS never interleave their writes, and a rerun adds to what earlier runs spent
instead of overwriting it. The study's spend is the sum over every file; a line cut short by
a killed job is skipped when summing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

from inoculate.io import as_umask_allows


class SpendLedger:
    def __init__(self, root: Path | str, job: str = "job") -> None:
        self.root = Path(root)
        self.job = job
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", job).strip("._") or "job"
        self.path = self.root / f"{safe}.{uuid.uuid4().hex[:12]}.jsonl"
        self._handle = None

    def record(self, tokens_in: int, tokens_out: int, cost_usd: float, model: str = "") -> None:
        """Append one paid call (flushed at once, so a killed job's spend is still counted)."""
        if self._handle is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
            as_umask_allows(self.path)
        line = {
            "job": self.job,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost_usd,
            "time": time.time(),
        }
        self._handle.write(json.dumps(line) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def total(self, exclude_own: bool = True) -> float:
        """USD of every call recorded under the ledger folder (this process's own file left out
        with `exclude_own`, as the caller counts its own calls live)."""
        return sum(entry["cost_usd"] for entry in self.entries(exclude_own))

    def entries(self, exclude_own: bool = False) -> list[dict]:
        out = []
        for path in sorted(self.root.rglob("*.jsonl")) if self.root.exists() else []:
            if exclude_own and path == self.path:
                continue
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the last line of a job killed while writing it
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("cost_usd"), int | float):
                    out.append(entry)
        return out
