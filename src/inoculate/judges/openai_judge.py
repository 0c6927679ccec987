"""OpenAI-compatible judge: one token scored from its top-20 logprobs, or a rubric verdict.

Works with any endpoint that speaks the chat-completions API (OpenAI, Azure,
OpenRouter, a vLLM or llama.cpp server via `base_url`). A 0-100 score is the
probability-weighted mean of the integer tokens 0..100 among the top logprobs;
when their total probability is below `min_mass` there is no score (that is
how CODE / REFUSAL answers drop out), and the raw top logprobs are kept for
audit. A YES/NO metric reads P(YES) the same way; a rubric metric reads a short
JSON verdict (`inoculate.judges.metrics`). Calls are cached by content hash, run
concurrently, and retried by the `openai` client (429 with Retry-After or
exponential backoff, 5xx, timeouts). With `mode: batch` the calls go through the
Batch API first (`inoculate.api.batch`: half the price), into the same cache.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from inoculate.api.batch import BatchRequest, BatchRunner, BatchSettings
from inoculate.api.ledger import SpendLedger
from inoculate.api.usage import CallTally, response_tokens
from inoculate.cache import CallCache, cache_key
from inoculate.judges.base import Judge, JudgeError, JudgeItem, Judgment, label_for
from inoculate.judges.metrics import MetricSpec, VerdictError, yes_probability
from inoculate.judges.prompts import item_requests
from inoculate.secrets import get_secret

log = logging.getLogger(__name__)


class BudgetExceeded(JudgeError):
    """The study's judge spend reached `judge.budget_usd`; no further call is made."""


def retried_by_client(error: BaseException) -> bool:
    """Errors the `openai` client retries itself (connection, timeout, 408/409/429/5xx)."""
    import openai  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

    if isinstance(error, openai.APIConnectionError | openai.APITimeoutError):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(error, openai.APIStatusError) and (status in (408, 409, 429) or (status or 0) >= 500)


def describe_failures(failures: list[BaseException], max_retries: int) -> str:
    """Each kind of failure, counted, saying whether it was retried: '2 x APIStatusError (HTTP
    500, after 6 retries each): ...; 1 x JudgeError (not retried): ...'."""
    kinds: dict[tuple[str, bool], list[BaseException]] = {}
    for f in failures:
        kinds.setdefault((type(f).__name__, retried_by_client(f)), []).append(f)
    parts = []
    for (name, retried), errors in kinds.items():
        status = getattr(errors[0], "status_code", None)
        how = f"after {max_retries} retries each" if retried else "not retried"
        parts.append(
            f"{len(errors)} x {name} ({f'HTTP {status}, ' if status else ''}{how}): {str(errors[0])[:200]}"
        )
    return "; ".join(parts)


def logprob_score(top_logprobs: dict[str, float], min_mass: float = 0.25) -> tuple[float | None, float]:
    """(score, mass): Σ k·p / Σ p over tokens that are integers 0..100; None below `min_mass`."""
    mass = weighted = 0.0
    for token, logprob in top_logprobs.items():
        text = token.strip()
        if text.isdigit() and str(int(text)) == text and 0 <= int(text) <= 100:
            p = math.exp(logprob)
            mass += p
            weighted += int(text) * p
    if mass < min_mass or mass == 0:
        return None, mass
    return weighted / mass, mass


def text_score(content: str) -> float | None:
    """The fallback for endpoints without logprobs: the first integer 0..100 in the reply."""
    match = re.search(r"\b(\d{1,3})\b", content or "")
    if match and 0 <= int(match[1]) <= 100:
        return float(match[1])
    return None


@dataclass
class OpenAIJudgeSettings:
    """Config key `judge` with `backend: openai`; the defaults are the schema's
    (src/inoculate/schemas/config.schema.yaml), filled in by `inoculate.judges.make_judge`."""

    model: str
    base_url: str | None
    api_key_env: str
    metrics: list  # names or metric mappings
    prompts: dict[str, str]
    concurrency: int
    max_retries: int
    timeout: float
    min_mass: float
    seed: int
    text_fallback: bool
    cache_dir: str
    strip: list[str]
    price: dict[str, float]  # USD per million input / output tokens
    budget_usd: float | None  # stop the study's judging before its spend, over all its runs, passes this
    spend_dir: str  # the append-only spend ledger of the study (inoculate.api.ledger)
    mode: str  # sync: one call at a time; batch: the Batch API first, the same cache
    batch: dict  # inoculate.api.batch.BatchSettings
    spend_file: str | None = None  # names this job in the ledger (set by the judge stage)

    def __post_init__(self) -> None:
        if self.mode not in ("sync", "batch"):
            raise ValueError(f"judge.mode: {self.mode!r} is neither sync nor batch")


class OpenAIJudge(Judge):
    name = "openai"

    def __init__(self, settings: OpenAIJudgeSettings, client=None) -> None:
        self.settings = settings
        self.default_metrics = tuple(MetricSpec.from_config(m) for m in settings.metrics)
        self.cache = CallCache(settings.cache_dir)
        self._client = client
        self.tally = CallTally()
        self._spent_elsewhere = 0.0
        self._max_call_cost = 0.0
        self._spent = 0.0  # this job's calls, each at its metric's price
        self._reserved = 0.0  # estimates of batches submitted and not yet read
        self.batch_tally = None

        job = (
            Path(settings.spend_file).with_suffix("").as_posix().replace("/", "_")
            if settings.spend_file
            else "cli"
        )
        self.ledger = SpendLedger(settings.spend_dir, job[-120:])

    # -- one call -----------------------------------------------------------------------
    def _payload(self, metric: MetricSpec, messages: list[dict]) -> dict:
        """What identifies a call in the cache. A 0-100 score of one user message keeps the
        payload it always had, so caches written before metric kinds existed stay valid."""
        s = self.settings
        model = metric.model or s.model
        payload = {
            "backend": "openai-chat-logprobs",
            "model": model,
            "base_url": s.base_url or "https://api.openai.com/v1",
            "prompt": messages[-1]["content"],
            "params": {**metric.params(), "seed": s.seed},
            "text_fallback": s.text_fallback,
        }
        if metric.kind == "rubric":
            payload["backend"] = "openai-chat-rubric"
            payload.pop("text_fallback")
        if len(messages) > 1:
            payload["messages"] = messages
        return payload

    async def _call(
        self, client, metric: MetricSpec, messages: list[dict], semaphore: asyncio.Semaphore
    ) -> dict:
        """One call, unless the cache has it or another process is making it right now (then its
        answer is awaited: two judges sharing a cache never pay twice for one question)."""
        key = cache_key(self._payload(metric, messages))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        stale_after = self.settings.timeout * (self.settings.max_retries + 1) + 30
        waited = 0.0
        while not self.cache.claim(key, stale_after):
            await asyncio.sleep(0.2)
            waited += 0.2
            answered = self.cache.get(key) if self.cache.exists(key) else None
            if answered is not None:
                return answered
            if waited > stale_after:
                break
        try:
            answered = self.cache.get(key) if self.cache.exists(key) else None  # answered while we waited
            if answered is not None:
                return answered
            return await self._paid_call(client, metric, messages, semaphore, key)
        finally:
            self.cache.release(key)

    def _request(self, metric: MetricSpec, messages: list[dict]) -> dict:
        """The chat-completions body of a call (the same, synchronous or batched)."""
        s = self.settings
        body = {
            "model": metric.model or s.model,
            "messages": messages,
            "max_tokens": metric.params()["max_tokens"],
            "temperature": 0,
            "seed": s.seed,
        }
        if metric.kind != "rubric":
            body.update(logprobs=True, top_logprobs=20)
        return body

    def _result(self, metric: MetricSpec, messages: list[dict], response) -> dict:
        """The cache entry of a call's response (a ChatCompletion, synchronous or batched)."""
        s = self.settings
        one_token = metric.kind != "rubric"
        choice = response.choices[0]
        content = choice.message.content or ""
        top: dict[str, float] = {}
        if one_token and choice.logprobs is not None and choice.logprobs.content:
            top = {t.token: t.logprob for t in choice.logprobs.content[0].top_logprobs}
        if one_token and not top and not s.text_fallback:
            raise JudgeError(
                f"{metric.model or s.model} at {s.base_url or 'api.openai.com'} returned no logprobs; "
                "use an endpoint that does, or read the reply's text instead (judge.text_fallback: true in a "
                "study, --text-fallback for inoculate judge)"
            )
        result = {
            "model": metric.model or s.model,
            "prompt": messages[-1]["content"],  # kept for audit: the cache says what was asked and answered
            "top_logprobs": top,
            "content": content,
            **response_tokens(response),
        }
        if one_token:
            result["score"], result["mass"] = self.read_one_token(metric, result)
        return result

    def _count(self, result: dict, cost: float) -> None:
        """A paid call: tallied, added to this job's spend and to the study's ledger."""
        self.tally.add(result)
        self._spent += cost
        self.ledger.record(result["tokens_in"], result["tokens_out"], cost, result["model"])
        self._max_call_cost = max(self._max_call_cost, cost)

    async def _paid_call(
        self, client, metric: MetricSpec, messages: list[dict], semaphore: asyncio.Semaphore, key: str
    ) -> dict:
        async with semaphore:
            self._check_budget(" ".join(m["content"] for m in messages), metric.price)
            response = await client.chat.completions.create(**self._request(metric, messages))
        result = self._result(metric, messages, response)
        self.cache.put(key, result)
        self._count(result, self._cost(result["tokens_in"], result["tokens_out"], metric.price))
        return result

    def read_one_token(self, metric: MetricSpec, result: dict) -> tuple[float | None, float | None]:
        """(score, mass) of a one-token call: from its logprobs, or its text without them."""
        top, content = result.get("top_logprobs") or {}, result.get("content", "")
        if metric.kind == "probability_yes":
            if top:
                return yes_probability(top, self.settings.min_mass)
            word = content.strip().strip(".").lower()
            return ({"yes": 1.0, "no": 0.0}.get(word), None)
        if top:
            return logprob_score(top, self.settings.min_mass)
        return text_score(content), None

    # -- spend and budget ---------------------------------------------------------------
    def _cost(self, tokens_in: int, tokens_out: int, price: dict | None = None) -> float:
        """USD of a call: the metric's own price (another judge model), else the judge's."""
        price = price or self.settings.price
        return (
            tokens_in * price.get("input_per_million", 0) + tokens_out * price.get("output_per_million", 0)
        ) / 1e6

    def _load_spend_elsewhere(self) -> None:
        """The study's spend recorded in the ledger by every other job and every earlier run,
        read once at the start of this job."""
        self._spent_elsewhere = self.ledger.total(exclude_own=True)

    def _check_budget(self, prompt: str, price: dict | None = None) -> None:
        """Refuse a call that could take the study past its budget.

        A call's cost is estimated before it is made (about 3 characters a token, or
        the dearest call seen so far), so the budget is not passed by one call; jobs
        running side by side can each make their in-flight calls."""
        if self.settings.budget_usd is None:
            return
        self._refuse_past_budget(max(self._cost(len(prompt) // 3, 1, price), self._max_call_cost))

    def _refuse_past_budget(self, usd: float, what: str = "") -> None:
        """Raise BudgetExceeded when `usd` more (a call's or a batch's estimate) could take the
        study's spend, over all its runs and the batches awaiting results, past its budget."""
        budget = self.settings.budget_usd
        if budget is not None and self._spent_elsewhere + self.cost_usd + self._reserved + usd > budget:
            raise BudgetExceeded(
                f"judge budget of ${budget:.4f} reached: ${self._spent_elsewhere + self.cost_usd:.4f} spent "
                f"by this study so far{what}; raise judge.budget_usd to go on (cached calls stay free)"
            )

    def _make_client(self):
        if self._client is not None:
            return self._client
        from openai import AsyncOpenAI  # noqa: PLC0415 - openai takes ~1 s to import; only calls need it

        s = self.settings
        return AsyncOpenAI(
            api_key=get_secret(s.api_key_env),
            base_url=s.base_url,
            max_retries=s.max_retries,
            timeout=s.timeout,
        )

    # -- many items ---------------------------------------------------------------------
    async def _judge_all(self, calls: list[tuple[MetricSpec, list[dict]]]) -> list[dict | BaseException]:
        self._load_spend_elsewhere()
        client = self._make_client()
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        return await asyncio.gather(
            *(self._call(client, m, msgs, semaphore) for m, msgs in calls), return_exceptions=True
        )

    async def _batch_all(self, calls: list[tuple[MetricSpec, list[dict]]]) -> None:
        """Ask the Batch API what the cache lacks; what it leaves unanswered is asked
        synchronously afterwards (at the full price)."""

        self._load_spend_elsewhere()
        s = self.settings
        requests = []
        for metric, messages in calls:
            key = cache_key(self._payload(metric, messages))
            if self.cache.exists(key):
                continue
            body = self._request(metric, messages)
            text = " ".join(m["content"] for m in messages)
            requests.append(
                BatchRequest(
                    key,
                    body,
                    to_result=lambda response, m=metric, msgs=messages: self._result(m, msgs, response),
                    cost=lambda r, m=metric: self._cost(r["tokens_in"], r["tokens_out"], m.price),
                    estimate=self._cost(len(text) // 3, body["max_tokens"], metric.price),
                )
            )
        if not requests:
            return
        client = self._make_client()
        runner = BatchRunner(
            client,
            self.cache,
            BatchSettings.from_config(s.batch),
            s.base_url or "https://api.openai.com/v1",
            record_cost=self._count,
            reserve=self._reserve,
        )
        self.batch_tally = runner.tally
        try:
            await runner.run(requests)
        finally:
            self._reserved = 0.0

    def _reserve(self, usd: float) -> None:
        """Refuse a batch whose estimate would take the study past its budget; else hold it."""
        self._refuse_past_budget(usd, f" and a batch estimated at ${usd:.4f}")
        self._reserved += usd

    def judge(self, items: list[JudgeItem]) -> list[Judgment]:
        s = self.settings
        per_item = [item_requests(item, self.metrics_of(item), s.prompts, s.strip) for item in items]
        calls = [c for requests in per_item for c in requests]
        try:
            if s.mode == "batch":
                asyncio.run(self._batch_all(calls))
            results = asyncio.run(self._judge_all(calls))
        finally:
            self.ledger.close()
        failures = [r for r in results if isinstance(r, BaseException)]
        log.info(
            "judge %s: %d calls made, %d cache hits, %d failed; tokens in %d out %d; cost $%.4f",
            s.model,
            self.tally.calls,
            self.cache.hits,
            len(failures),
            self.tally.tokens_in,
            self.tally.tokens_out,
            self.cost_usd,
        )
        budget = [f for f in failures if isinstance(f, BudgetExceeded)]
        if budget:
            raise BudgetExceeded(f"{budget[0]}; {len(results) - len(failures)} calls of this job are cached")
        if failures:
            raise JudgeError(
                f"{len(failures)} of {len(results)} judge calls failed: {describe_failures(failures, s.max_retries)}; "
                f"the {len(results) - len(failures)} completed calls are cached, so a rerun resumes from here"
            )
        out, position = [], 0
        for requests in per_item:
            answered = [(m, results[position + j]) for j, (m, _) in enumerate(requests)]
            position += len(requests)
            out.append(self._judgment(answered))
        return out

    def _judgment(self, answered: list[tuple[MetricSpec, dict]]) -> Judgment:
        """Scores of one item from its calls' results, metric by metric."""
        scores, mass, top, status = {}, {}, {}, {}
        for metric, result in answered:
            if metric.kind == "rubric":
                try:
                    values, status[metric.name] = metric.parse_verdict(result.get("content", "")), "ok"
                except VerdictError as e:
                    values, status[metric.name] = metric.empty(), f"unparsed: {e}"
                scores.update(values)
                continue
            scores[metric.name], mass[metric.name] = self.read_one_token(metric, result)
            top[metric.name] = result.get("top_logprobs") or {}
        aligned, coherent = scores.get("aligned"), scores.get("coherent")
        detail = {"scores": scores, "mass": mass, "top_logprobs": top}
        if status:
            detail["status"] = status
        return Judgment(aligned, coherent, label_for(aligned, coherent), detail)

    @property
    def cost_usd(self) -> float:
        return self._spent

    def usage(self) -> dict:
        return {
            "calls": self.tally.calls,
            "cache_hits": self.cache.hits,
            "tokens_in": self.tally.tokens_in,
            "tokens_out": self.tally.tokens_out,
            "cost_usd": self.cost_usd,
            "batches": self.batch_tally.submitted if self.batch_tally else 0,
            "batched_calls": self.batch_tally.answered if self.batch_tally else 0,
        }
