"""A local judge: any causal LM reads the exact probability of every answer 0..100
(or of YES and NO), or writes a rubric verdict greedily.

The judge prompt is rendered with the model's chat template; the probability
that the reply is the number `n` and nothing else is the product of the
probabilities of its tokens, as the model would write them after the prompt,
times the probability of ending the turn right after. Numbers of several tokens
are therefore exact too. The prompt is encoded once and its KV cache reused for
every continuation. Scores follow the API judge's rule (weighted mean over
0..100, no score below `min_mass`), so the two backends are interchangeable.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch

from inoculate.cache import CallCache, cache_key
from inoculate.chat import render as render_chat
from inoculate.chat import tokenize_text
from inoculate.generate import generate_ids, stop_token_ids
from inoculate.judges.base import Judge, JudgeError, JudgeItem, Judgment, label_for
from inoculate.judges.metrics import MetricSpec, VerdictError
from inoculate.judges.prompts import item_requests
from inoculate.model_client import claim_device
from inoculate.models import load_causal_lm, load_tokenizer
from inoculate.sampling_plan import GenerationSettings

log = logging.getLogger(__name__)
NUMBERS = range(101)
YES_NO = ("YES", "Yes", "yes", "NO", "No", "no")  # replies of a YES/NO judge, as written after the prompt


@dataclass
class HFJudgeSettings:
    """Config key `judge` with `backend: hf`; the defaults are the schema's, filled in by
    `inoculate.judges.make_judge`."""

    model: str
    device: str
    dtype: str
    metrics: list
    prompts: dict[str, str]
    min_mass: float
    strip: list[str]
    cache_dir: str
    batch_size: int  # continuations scored at once
    verbatim: bool = False  # the completion as the model gave it, surrounding whitespace included


class HFJudge(Judge):
    name = "hf"

    def __init__(self, settings: HFJudgeSettings, model=None, tokenizer=None) -> None:
        self.settings = settings
        self.default_metrics = tuple(MetricSpec.from_config(m) for m in settings.metrics)
        self.cache = CallCache(settings.cache_dir)
        self._model, self._tokenizer = model, tokenizer
        self.calls = 0

    def load(self):
        """The judge model and tokenizer, loaded on first use (a model server loads them once and
        hands them to each request's judge: `use_model`)."""
        if self._model is None:
            self._tokenizer = load_tokenizer(self.settings.model)
            self._model = load_causal_lm(self.settings.model, self.settings.dtype)
            self._model.to(claim_device(self.settings.device)).eval()
        return self._model, self._tokenizer

    def use_model(self, model, tokenizer) -> None:
        """Judge with an already loaded model (this judge's cache and counters stay its own)."""
        self._model, self._tokenizer = model, tokenizer

    def _stop_ids(self) -> list[int]:
        return stop_token_ids(self._model, self._tokenizer)

    @torch.inference_mode()
    def number_probabilities(self, prompt: str | list[dict]) -> dict[int, float]:
        """P(reply == str(n)) for n in 0..100, exactly, for one judge prompt."""
        probs = self.reply_probabilities(prompt, [str(n) for n in NUMBERS])
        return {int(k): v for k, v in probs.items()}

    @torch.inference_mode()
    def reply_probabilities(self, prompt: str | list[dict], replies: list[str]) -> dict[str, float]:
        """P(the judge's whole reply == r) for each r, exactly: the product of its tokens'
        probabilities, as the model would write them after the prompt, times ending the turn."""
        model, tok = self.load()
        device = next(model.parameters()).device
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        context_text = render_chat(tok, messages, add_generation_prompt=True)
        context = tokenize_text(tok, context_text)
        sequences = {}
        for reply in replies:
            full = tokenize_text(tok, context_text + reply)
            if full[: len(context)] != context:
                raise JudgeError(
                    f"{self.settings.model}: the reply {reply!r} does not tokenize as a continuation"
                )
            sequences[reply] = tuple(full[len(context) :])
        # Every prefix whose next-token distribution we need, the empty one included.
        prefixes = sorted({seq[:i] for seq in sequences.values() for i in range(len(seq) + 1)}, key=len)
        out = model(torch.tensor([context], device=device), use_cache=True)
        dists = {(): torch.log_softmax(out.logits[0, -1].float(), -1)}
        rest = [p for p in prefixes if p]
        for start in range(0, len(rest), self.settings.batch_size):
            chunk = rest[start : start + self.settings.batch_size]
            dists.update(self._continuations(model, out.past_key_values, context, chunk, device))
        stops = self._stop_ids()
        probs = {}
        for reply, seq in sequences.items():
            logp = sum(float(dists[seq[:i]][t]) for i, t in enumerate(seq))
            end = torch.logsumexp(dists[seq][stops], 0)
            probs[reply] = float(torch.exp(logp + end))
        return probs

    @torch.inference_mode()
    def write(self, messages: list[dict], max_tokens: int) -> str:
        """The judge's greedy reply (a rubric verdict)."""

        model, tok = self.load()
        context = tokenize_text(tok, render_chat(tok, messages, add_generation_prompt=True))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        settings = GenerationSettings(
            temperature=0, max_new_tokens=max_tokens, batch_size=1, cache_implementation=None
        )
        (ids,) = generate_ids(model, [context], settings, self._stop_ids(), pad)
        return tok.decode(ids, skip_special_tokens=True).strip()

    def _continuations(self, model, past, context, prefixes, device) -> dict[tuple, torch.Tensor]:
        """Next-token log-probabilities after context + each prefix, reusing the context's KV cache."""
        width = max(len(p) for p in prefixes)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(prefixes), width), pad, dtype=torch.long, device=device)
        for i, p in enumerate(prefixes):
            ids[i, : len(p)] = torch.tensor(p, device=device)
        try:
            cache = copy.deepcopy(past)
            cache.batch_repeat_interleave(len(prefixes))
            mask = torch.ones((len(prefixes), len(context) + width), dtype=torch.long, device=device)
            logits = model(input_ids=ids, past_key_values=cache, attention_mask=mask).logits
        except AttributeError:  # a cache without batch expansion: encode the context again
            full = torch.cat([torch.tensor([context] * len(prefixes), device=device), ids], dim=1)
            logits = model(input_ids=full).logits[:, len(context) :]
        # Right padding after the real tokens cannot change them (causal attention).
        return {p: torch.log_softmax(logits[i, len(p) - 1].float(), -1) for i, p in enumerate(prefixes)}

    def score(self, prompt: str) -> dict:
        """A 0-100 score of one user prompt (cached)."""
        return self.ask(MetricSpec("score"), [{"role": "user", "content": prompt}])

    def ask(self, metric: MetricSpec, messages: list[dict]) -> dict:
        """One metric's result for one judge conversation, cached by content."""
        s = self.settings
        if metric.kind == "score_0_100" and len(messages) == 1:  # the key caches had before metric kinds
            payload = {"backend": "hf-exact-numbers", "model": s.model, "prompt": messages[0]["content"]}
        else:
            payload = {
                "backend": f"hf-{metric.kind}",
                "model": s.model,
                "messages": messages,
                **({"max_tokens": metric.max_tokens} if metric.kind == "rubric" else {}),
            }
        key = cache_key(payload)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        result = {"model": s.model, "prompt": messages[-1]["content"]}
        if metric.kind == "rubric":
            result["content"] = self.write(messages, metric.max_tokens)
        elif metric.kind == "probability_yes":
            probs = self.reply_probabilities(messages, list(YES_NO))
            yes = sum(p for r, p in probs.items() if r.lower() == "yes")
            mass = sum(probs.values())
            result.update(
                score=yes / mass if mass >= s.min_mass and mass > 0 else None, mass=mass, replies=probs
            )
        else:
            probs = self.number_probabilities(messages)
            mass = sum(probs.values())
            score = sum(n * p for n, p in probs.items()) / mass if mass >= s.min_mass and mass > 0 else None
            result.update(
                score=score, mass=mass, top_numbers=dict(sorted(probs.items(), key=lambda kv: -kv[1])[:20])
            )
        self.cache.put(key, result)
        self.calls += 1
        return result

    def judge(self, items: list[JudgeItem]) -> list[Judgment]:
        s = self.settings
        out = []
        for item in items:
            scores, mass, status = {}, {}, {}
            for metric, messages in item_requests(
                item, self.metrics_of(item), s.prompts, s.strip, s.verbatim
            ):
                result = self.ask(metric, messages)
                if metric.kind == "rubric":
                    try:
                        scores.update(metric.parse_verdict(result["content"]))
                        status[metric.name] = "ok"
                    except VerdictError as e:
                        scores.update(metric.empty())
                        status[metric.name] = f"unparsed: {e}"
                else:
                    scores[metric.name], mass[metric.name] = result["score"], result["mass"]
            aligned, coherent = scores.get("aligned"), scores.get("coherent")
            detail = {"scores": scores, "mass": mass, **({"status": status} if status else {})}
            out.append(Judgment(aligned, coherent, label_for(aligned, coherent), detail))
        log.info("judge %s: %d prompts scored, %d cache hits", s.model, self.calls, self.cache.hits)
        return out

    def usage(self) -> dict:
        return {
            "calls": self.calls,
            "cache_hits": self.cache.hits,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
        }
