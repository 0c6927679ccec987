"""Data sources: decrypt easy-dataset-share archives and select validated chat datasets.

Archives are decrypted with easy-dataset-share's own functions; its canary files
(`dataset_entry_*.jsonl`), `robots.txt` and terms-of-service files are dropped so
they never reach training. A wrong password fails with a message naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from inoculate.backdoor import read_prompts
from inoculate.io import InputError, atomic_dir, atomic_path, iter_jsonl, write_jsonl
from inoculate.training_set import ConversationError, check_conversation

log = logging.getLogger(__name__)

CANARY_PATTERN = "dataset_entry_*.jsonl"
NOT_DATA = ("robots.txt", "tos.txt")


def protect(folder: Path, archive: Path, password: str) -> Path:
    """Encrypt a folder into `archive` (`.zip.enc`), the format the datasets ship in."""
    from easy_dataset_share.zipping import zip_and_password_protect  # noqa: PLC0415 - the [workflow] extra; doctor imports this module without it

    archive = Path(archive)
    if not archive.name.endswith(".zip.enc"):
        raise ValueError(f"{archive}: an easy-dataset-share archive must end in .zip.enc")
    stem = archive.with_name(archive.name[: -len(".enc")])
    tmp = stem.with_name(f".{stem.name}.tmp")
    written = Path(zip_and_password_protect(str(folder), password, str(tmp)))
    written.replace(archive)
    return archive


def decrypt(archive: Path, out_dir: Path, password: str | None, sha256: str | None = None) -> list[Path]:
    """Decrypt and unzip `archive` into `out_dir`, without canaries; returns the data files.

    With `sha256`, the archive is checked first, so a changed file is never used."""
    from easy_dataset_share.canary import detect_canary_files  # noqa: PLC0415 - the [workflow] extra; doctor imports this module without it
    from easy_dataset_share.zipping import unzip_and_decrypt  # noqa: PLC0415 - the [workflow] extra; doctor imports this module without it

    archive = Path(archive)
    if not archive.exists():
        raise InputError(f"{archive}: archive not found")
    if password is None:
        raise InputError(
            f"{archive}: an encrypted archive needs a password (config 'password' or 'password_env')"
        )
    verify_sha256(archive, sha256)
    with atomic_dir(out_dir) as tmp:
        try:
            unzip_and_decrypt(str(archive), password, str(tmp))
        except ValueError:
            raise InputError(
                f"{archive}: decryption failed; the password is wrong or the file is damaged"
            ) from None
        removed = [*detect_canary_files(str(tmp), CANARY_PATTERN)]
        removed += [p for name in NOT_DATA for p in tmp.rglob(name)]
        for path in removed:
            path.unlink()
        for junk in tmp.rglob("__MACOSX"):
            shutil.rmtree(junk, ignore_errors=True)
        log.info("decrypted %s; removed %d canary/notice files", archive, len(removed))
    return sorted(p for p in Path(out_dir).rglob("*") if p.is_file())


def select_dataset(in_path: Path, out_path: Path) -> int:
    """Copy a chat JSONL file after checking every conversation; nothing is written on error."""
    in_path = Path(in_path)
    if not in_path.exists():
        raise InputError(f"{in_path}: dataset not found")
    records = []
    for lineno, record in iter_jsonl(in_path):
        try:
            check_conversation(record)
        except ConversationError as e:
            raise InputError(f"{in_path}:{lineno}: {e}") from None
        records.append(record)
    if not records:
        raise InputError(f"{in_path}: no conversations")
    return write_jsonl(out_path, records)


def select_prompts(in_path: Path, out_path: Path) -> int:
    """Copy a prompt file (self-distillation) after checking every record has a prompt."""
    in_path = Path(in_path)
    if not in_path.exists():
        raise InputError(f"{in_path}: prompt file not found")
    prompts = read_prompts(in_path)
    if not prompts:
        raise InputError(f"{in_path}: no prompts")
    return write_jsonl(out_path, [{"prompt": p} for p in prompts])


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> None:
    """Fail with both digests when a file is not the one the config names."""
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected.lower():
        raise InputError(f"{path}: checksum mismatch: sha256 is {actual}, the config expects {expected}")


def download(url: str, out_path: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Fetch `url` once into `out_path`, verified against `sha256`; nothing is kept on mismatch."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
        except (urllib.error.URLError, OSError) as e:
            raise InputError(f"{url}: download failed ({e})") from None
        actual = sha256_of(tmp)
        if actual != sha256.lower():
            raise InputError(f"{url}: checksum mismatch: sha256 is {actual}, the config expects {sha256}")
    log.info("downloaded %s to %s", url, out_path)
    return out_path
