"""Sampling eval answers from an API chat model (fine-tuned or not), like local generation.

Takes the same records as `inoculate.generate.sample` and fills in the same
fields. The samples of one prompt are drawn `n` at a time (fewer calls and
input tokens); every call is cached by content hash, so a rerun makes no call
and a failed job resumes from its last completed call. Retries (429 with
Retry-After, 5xx, timeouts) are the `openai` client's. With `api.mode: batch`
the calls go through the Batch API first (`inoculate.api.batch`), into the
same cache.
"""

from __future__ import annotations

import asyncio
import logging

from inoculate.api.batch import BatchRequest, BatchRunner, BatchSettings
from inoculate.api.settings import ApiKey, ApiSettings, make_async_client
from inoculate.api.usage import CallTally, response_tokens
from inoculate.cache import CallCache, cache_key
from inoculate.sampling_plan import Call, GenerationSettings, answer_fields, plan_calls, record_settings

log = logging.getLogger(__name__)


class SamplingError(RuntimeError):
    """Some calls failed after their retries; the completed ones are cached."""


class ApiSampler:
    def __init__(
        self, settings: ApiSettings, model: str, key: ApiKey, generation: GenerationSettings, client=None
    ):
        self.settings, self.model, self.key, self.generation = settings, model, key, generation
        self.cache = CallCache(settings.cache_dir)
        self._client = client
        self.tally = CallTally()
        self.batch_tally = None

    def _params(self, call: Call) -> dict:
        g = record_settings(self.generation, {"sampling": call.sampling})
        params = {
            "temperature": g.temperature,
            "top_p": g.top_p,
            "max_tokens": g.max_new_tokens,
            "n": call.n,
            "seed": call.seed,
        }
        if g.max_new_tokens is None:  # the provider's default length, as Tan et al. sample
            params.pop("max_tokens")
        return params

    def _key(self, call: Call) -> str:
        return cache_key(
            {
                "backend": "openai-chat",
                "endpoint": self.settings.endpoint,
                "model": self.model,
                "messages": call.messages,
                "params": self._params(call),
            }
        )

    def _result(self, call: Call, response) -> dict:
        """The cache entry of a call's response (synchronous or batched)."""
        choices = sorted(response.choices, key=lambda c: c.index)
        if len(choices) != call.n:
            raise SamplingError(f"{self.model} returned {len(choices)} choices for n={call.n}")
        return {
            "model": self.model,
            "answers": [c.message.content or "" for c in choices],
            "finish_reasons": [c.finish_reason for c in choices],
            **response_tokens(response),
        }

    async def _one(self, client, call: Call, semaphore: asyncio.Semaphore) -> dict:
        key = self._key(call)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        async with semaphore:
            response = await client.chat.completions.create(
                model=self.model, messages=call.messages, **self._params(call)
            )
        result = self._result(call, response)
        self.cache.put(key, result)
        self.tally.add(result)
        return result

    async def _batch(self, calls: list[Call]) -> None:
        """Ask the Batch API what the cache lacks; the rest is asked synchronously after."""
        requests = [
            BatchRequest(
                self._key(c),
                {"model": self.model, "messages": c.messages, **self._params(c)},
                to_result=lambda response, c=c: self._result(c, response),
            )
            for c in calls
            if not self.cache.exists(self._key(c))
        ]
        if not requests:
            return
        client = self._client or make_async_client(self.settings, self.key)
        runner = BatchRunner(
            client,
            self.cache,
            BatchSettings.from_config(self.settings.batch),
            self.settings.endpoint,
            record_cost=lambda result, usd: self.tally.add(result),
        )
        self.batch_tally = runner.tally
        try:
            await runner.run(requests)
        finally:
            if self._client is None:
                await client.close()

    async def _all(self, calls: list[Call]) -> list[dict | BaseException]:
        client = self._client or make_async_client(self.settings, self.key)
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        try:
            return await asyncio.gather(
                *(self._one(client, c, semaphore) for c in calls), return_exceptions=True
            )
        finally:
            if self._client is None:
                await client.close()

    def sample(self, records: list[dict], seed: int) -> list[dict]:
        """Fill in `answer` (and `finish_reason`) of every record; cached and deterministic for a seed."""
        calls = plan_calls(records, seed, self.settings.samples_per_call)
        if self.settings.mode == "batch":
            asyncio.run(self._batch(calls))
        results = asyncio.run(self._all(calls))
        failures = [r for r in results if isinstance(r, BaseException)]
        log.info(
            "sampled %s: %d calls made, %d cached, %d failed; tokens in %d out %d",
            self.model,
            self.tally.calls,
            self.cache.hits,
            len(failures),
            self.tally.tokens_in,
            self.tally.tokens_out,
        )
        if failures:
            raise SamplingError(
                f"{len(failures)} of {len(calls)} calls to {self.model} failed after {self.settings.max_retries} "
                f"retries ({type(failures[0]).__name__}: {failures[0]}); the {len(calls) - len(failures)} completed "
                "calls are cached, so a rerun resumes from here"
            )
        out = [dict(r) for r in records]
        for call, result in zip(calls, results):
            for i, answer, finish in zip(call.records, result["answers"], result["finish_reasons"]):
                out[i].update(**answer_fields(answer), answer_tokens=None, finish_reason=finish)
        return out

    @property
    def calls(self) -> int:
        return self.tally.calls

    def usage(self) -> dict:
        t = self.tally
        return {
            "calls": t.calls,
            "cache_hits": self.cache.hits,
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "batches": self.batch_tally.submitted if self.batch_tally else 0,
        }
