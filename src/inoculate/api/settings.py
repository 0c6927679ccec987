"""How a study reaches an OpenAI-compatible API: endpoint, keys, limits (config key `api`).

Keys are named by environment variable (or `.env` entry), never written: a job
records which variable it used, so that the same organisation/project later
samples the model it fine-tuned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from inoculate.schema import schema_defaults
from inoculate.secrets import get_secret


@dataclass(frozen=True)
class ApiKey:
    """One key, and the organisation/project it bills, by the variable that holds it."""

    env: str
    organization: str | None = None
    project: str | None = None

    @classmethod
    def from_config(cls, spec: str | dict) -> ApiKey:
        if isinstance(spec, str):
            return cls(spec)
        return cls(spec["env"], spec.get("organization"), spec.get("project"))


_DEFAULTS = schema_defaults("api")


@dataclass
class ApiSettings:
    """Config key `api` (what each key means and its default: the schema's descriptions)."""

    base_url: str | None = _DEFAULTS["base_url"]
    keys: list[ApiKey] = field(default_factory=lambda: [ApiKey.from_config(k) for k in _DEFAULTS["keys"]])
    max_concurrent_jobs: int = _DEFAULTS["max_concurrent_jobs"]  # running fine-tuning jobs per key
    poll_seconds: float = _DEFAULTS["poll_seconds"]  # first wait between two looks at a job
    poll_max_seconds: float = _DEFAULTS["poll_max_seconds"]  # the wait grows up to this
    retry_failed: bool = _DEFAULTS["retry_failed"]  # a failed cell starts a new job only when true
    min_examples: int = _DEFAULTS["min_examples"]  # the fine-tuning API refuses smaller files
    concurrency: int = _DEFAULTS["concurrency"]  # chat-completion calls in flight per sampling job
    samples_per_call: int = _DEFAULTS["samples_per_call"]  # samples of one prompt per call (`n`)
    max_retries: int = _DEFAULTS["max_retries"]  # per call: 429 (honouring Retry-After), 5xx, timeouts
    timeout: float = _DEFAULTS["timeout"]
    cache_dir: str = _DEFAULTS["cache_dir"]
    registry_dir: str = _DEFAULTS["registry_dir"]
    mode: str = _DEFAULTS["mode"]  # sync: calls one by one; batch: the Batch API first, the same cache
    batch: dict = field(default_factory=lambda: copy.deepcopy(_DEFAULTS["batch"]))  # api.batch.BatchSettings

    @classmethod
    def from_config(cls, api: dict[str, Any] | None) -> ApiSettings:
        api = dict(api or {})
        if "keys" in api:
            api["keys"] = [ApiKey.from_config(k) for k in api["keys"]]
        return cls(**api)

    def key(self, env: str) -> ApiKey:
        """The configured key held by variable `env` (a fine-tuned model's owner)."""
        for key in self.keys:
            if key.env == env:
                return key
        raise KeyError(
            f"api.keys: no key held by {env}, which trained this model; add it back to the config "
            f"(configured: {', '.join(k.env for k in self.keys)})"
        )

    @property
    def endpoint(self) -> str:
        return self.base_url or "https://api.openai.com/v1"


def client_options(settings: ApiSettings, key: ApiKey) -> dict[str, Any]:
    """Keyword arguments of `openai.OpenAI`/`AsyncOpenAI` for one key (the secret read here)."""
    return {
        "api_key": get_secret(key.env),
        "organization": key.organization,
        "project": key.project,
        "base_url": settings.base_url,
        "max_retries": settings.max_retries,
        "timeout": settings.timeout,
    }


def make_client(settings: ApiSettings, key: ApiKey):
    from openai import OpenAI  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

    return OpenAI(**client_options(settings, key))


def make_async_client(settings: ApiSettings, key: ApiKey):
    from openai import AsyncOpenAI  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

    return AsyncOpenAI(**client_options(settings, key))
