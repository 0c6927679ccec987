"""Calls made and tokens used through an OpenAI-compatible endpoint (judges, sampling)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def response_tokens(response: Any) -> dict[str, int]:
    """Prompt and completion tokens of a chat-completions response (0 where not reported)."""
    usage = response.usage
    return {
        "tokens_in": getattr(usage, "prompt_tokens", 0) or 0,
        "tokens_out": getattr(usage, "completion_tokens", 0) or 0,
    }


@dataclass
class CallTally:
    """Completed calls and their tokens; cache hits are not calls."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, result: dict) -> None:
        self.calls += 1
        self.tokens_in += result["tokens_in"]
        self.tokens_out += result["tokens_out"]
