"""API keys and passwords: read from the environment or a `.env` file, never written anywhere,
and redacted from every message that reaches a log or the screen.

Every value read through `get_secret` (and every environment variable whose name says it holds
a key, token, secret or password) is remembered; `redact` replaces each with `[REDACTED]`.
`RedactingFormatter` applies it to log records (tracebacks included) and `RedactingStream` to
text written to stderr (progress bars, warnings), so that an error that echoes a key (a 401
whose message repeats it) leaves it nowhere on screen or disk.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TextIO

from dotenv import dotenv_values

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)
_known: set[str] = set()


class MissingSecret(RuntimeError):
    """A key the config needs is not set."""


def remember(value: str | None) -> None:
    """Redact `value` from now on wherever this process logs or prints."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _known.add(value)


def remember_environment() -> None:
    """Every environment variable whose name says it holds a secret."""
    for name, value in os.environ.items():
        if SECRET_NAME.search(name):
            remember(value)


def redact(text: str) -> str:
    """`text` with every remembered secret replaced (longest first, so a key that contains
    another is masked whole)."""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def get_secret(name: str, dotenv: Path | str = ".env") -> str:
    """The value of environment variable `name`, falling back to a `.env` file."""
    value = os.environ.get(name)
    if not value and Path(dotenv).exists():
        value = dotenv_values(dotenv).get(name)
    if not value:
        raise MissingSecret(
            f"environment variable {name} is not set (export it, or put {name}=... in {dotenv})"
        )
    remember(value)
    return value


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, arguments, traceback) passes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingStream:
    """A text stream that redacts what is written to it (stderr of a job: tqdm, warnings)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def redacting_handler(stream: TextIO, fmt: str) -> logging.Handler:
    """A stream handler whose every line is redacted (environment secrets remembered first)."""
    remember_environment()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(fmt))
    return handler
