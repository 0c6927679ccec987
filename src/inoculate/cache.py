"""A persistent cache of API and model calls (judges, API sampling): one small JSON file per call, keyed by a content hash.

One file per key, written to a temporary name and renamed into place, is safe
with many parallel jobs and on a cluster's shared filesystem (no SQLite on NFS,
no locks): two jobs that make the same call write the same content, and a
reader sees either no file or a whole one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from inoculate.io import write_json

log = logging.getLogger(__name__)


def cache_key(payload: dict) -> str:
    """SHA-256 of the canonical JSON of everything that determines a call's answer."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CallCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.misses += 1
            return None
        except json.JSONDecodeError:  # a foreign or damaged file: ask again
            self.misses += 1
            return None
        except OSError as e:  # e.g. another user's entry this one may not read: ask again, say so
            log.warning("cache entry %s cannot be read (%s); the call is made again", path, e)
            self.misses += 1
            return None
        self.hits += 1
        return value

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, value: Any, strict: bool = False) -> None:
        """Store a result; a cache this process may not write to (a shared read-only one) is
        reported and skipped. With `strict`, any other failure (a full disk) is raised: the
        caller paid for the result and must not go on paying for more it cannot keep."""
        path = self._path(key)
        try:
            write_json(path, value, indent=None)
        except OSError as e:
            if strict and e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            log.warning("cannot write cache entry %s (%s); the result is used but not cached", path, e)

    # -- calls in flight, shared across processes ------------------------------------------
    def _lock(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.lock"

    def claim(self, key: str, stale_after: float) -> bool:
        """Take the right to make the call of `key` (a lock file made with O_EXCL, atomic on one
        machine and on NFS v3+); False while another process holds a fresh claim. A claim older
        than `stale_after` seconds belongs to a process that died and is taken over."""

        lock = self._lock(key)
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~0o022))
                return True
            except FileExistsError:
                try:
                    if time.time() - lock.stat().st_mtime < stale_after:
                        return False
                    lock.unlink()  # stale: its owner died mid-call
                except FileNotFoundError:
                    continue  # released meanwhile: try again
            except OSError as e:  # a cache folder this process may not write: make the call itself
                log.warning("cannot claim %s (%s); the call is made without sharing", lock, e)
                return True
        return False

    def release(self, key: str) -> None:
        try:
            self._lock(key).unlink()
        except OSError:
            pass
