"""API keys from the environment or a `.env` file; never written anywhere."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


class MissingSecret(RuntimeError):
    """A key the config needs is not set."""


def get_secret(name: str, dotenv: Path | str = ".env") -> str:
    """The value of environment variable `name`, falling back to a `.env` file."""
    value = os.environ.get(name)
    if not value and Path(dotenv).exists():
        value = dotenv_values(dotenv).get(name)
    if not value:
        raise MissingSecret(
            f"environment variable {name} is not set (export it, or put {name}=... in {dotenv})"
        )
    return value
