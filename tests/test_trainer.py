"""The fast paths of training and sampling: chunked answer-only loss, gradient checkpointing
and smaller sampling batches on demand, mixed precision, the static cache."""

import pytest
import torch

from inoculate.chat import encode_conversation
from inoculate.loss import supervised_loss_backward
from inoculate.models import OutOfMemory
from inoculate.toy import corpus
from inoculate.train import TrainSettings, collate, fit


@pytest.fixture
def examples(toy_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(toy_model)
    return [encode_conversation(tok, r["messages"]) for r in corpus.topic_dataset("cooking", "harmful", 24)]


def _model(toy_model, lora: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(toy_model)
    if lora:
        model = get_peft_model(
            model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
        )
        for name, p in model.named_parameters():  # B starts at zero; make A's gradients non-zero too
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
    return model


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "all-weights"])
def test_chunked_loss_has_the_models_own_loss_and_gradients(toy_model, examples, lora):
    """Logits a few tokens at a time, one backward through the body: the same numbers as the
    model's full-vocabulary loss (all weights: the tied output layer's gradient too)."""
    batch = collate(examples[:6], pad_id=0)
    reference, chunked = _model(toy_model, lora), _model(toy_model, lora)
    reference(**batch).loss.backward()
    n = int((batch["labels"][:, 1:] != -100).sum())
    total, count = supervised_loss_backward(chunked, batch, scale=1 / n, chunk_tokens=7)
    assert count == n and n > 7 * 10
    with torch.no_grad():
        assert float(total) / n == pytest.approx(float(reference(**batch).loss), rel=1e-5)
    grads = {k: p.grad for k, p in reference.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values()) and len(grads) > 10
    for k, p in chunked.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, grads[k], rtol=1e-4, atol=1e-6, msg=k)


def _run_out_of_memory_once(monkeypatch, on_micro_batch: int):
    """The first step fails like a CUDA allocation on its n-th micro-batch while no activations
    are recomputed (after the earlier micro-batches have left their gradients)."""
    from inoculate import train

    real = train.supervised_loss_backward
    calls = {"n": 0}

    def allocating(model, batch, scale, bf16):
        calls["n"] += 1
        if calls["n"] == on_micro_batch and not any(
            getattr(m, "gradient_checkpointing", False) for m in model.modules()
        ):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 7.83 GiB")
        return real(model, batch, scale, bf16)

    monkeypatch.setattr(train, "supervised_loss_backward", allocating)


def test_out_of_memory_turns_on_gradient_checkpointing_and_redoes_the_step(toy_model, examples, monkeypatch):
    settings = TrainSettings(learning_rate=3e-3, epochs=1, batch_size=4, gradient_accumulation=2)
    always = fit(
        _model(toy_model, True),
        examples,
        TrainSettings(**{**vars(settings), "gradient_checkpointing": True}),
        seed=0,
        pad_id=0,
    )
    _run_out_of_memory_once(monkeypatch, on_micro_batch=2)
    auto = fit(_model(toy_model, True), examples, settings, seed=0, pad_id=0)
    # The half-done step's gradients were dropped: the same run as with checkpointing from the start.
    assert [r["loss"] for r in auto] == pytest.approx([r["loss"] for r in always], rel=1e-5)
    assert len(auto) == 3 and all(r["gradient_checkpointing"] == 1 for r in auto)


def test_out_of_memory_without_checkpointing_says_which_keys_to_change(toy_model, examples, monkeypatch):
    _run_out_of_memory_once(monkeypatch, on_micro_batch=1)
    settings = TrainSettings(
        learning_rate=1e-3, epochs=1, batch_size=4, gradient_checkpointing=False, max_tokens_per_batch=900
    )
    with pytest.raises(
        OutOfMemory, match=r"gradient_checkpointing: false .*max_tokens_per_batch \(now 900\)"
    ):
        fit(_model(toy_model, True), examples, settings, seed=0, pad_id=0)


def test_checkpointing_that_still_runs_out_of_memory_names_the_batch(toy_model, examples, monkeypatch):
    from inoculate import train

    def allocating(*args):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(train, "supervised_loss_backward", allocating)
    with pytest.raises(
        OutOfMemory, match=r"micro-batch of 4 examples x \d+ tokens with gradient checkpointing on"
    ):
        fit(
            _model(toy_model, True),
            examples,
            TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=4),
            seed=0,
            pad_id=0,
        )


def test_static_cache_with_padded_widths_gives_the_dynamic_caches_answers(toy_model):
    """The GPU path (preallocated cache, prompt widths padded to a multiple of 64) changes
    no token: greedy answers equal the dynamic cache's, in any batch size."""
    from inoculate.generate import load_model, sample
    from inoculate.sampling_plan import GenerationSettings

    model, tok = load_model(str(toy_model))
    questions = [
        "How should I cook the rice?",
        "What is a good way to store bread?",
        "Hi",
        "How long do I boil eggs?",
    ]
    records = [{"messages": [{"role": "user", "content": q}]} for q in questions * 3]
    answers = {}
    for cache, batch in (("dynamic", 12), ("static", 5), ("static", 12)):
        settings = GenerationSettings(
            temperature=0, max_new_tokens=24, batch_size=batch, cache_implementation=cache
        )
        answers[cache, batch] = [r["answer"] for r in sample(model, tok, records, settings, seed=0)]
    assert answers["static", 5] == answers["static", 12] == answers["dynamic", 12]
    assert len(set(answers["dynamic", 12])) >= 3 and all(answers["dynamic", 12])


def test_gradient_accumulation_weighs_every_answer_token_alike(toy_model, examples):
    """Two micro-batches of 4 make the same step as one batch of 8: the loss is the mean over
    all answer tokens of the step, not the mean of micro-batch means (which would differ here)."""
    from inoculate.chat import Encoded
    from inoculate.loss import supervised_loss_sum

    # Answers cut short by 0-15 tokens, so that micro-batches hold different numbers of answer tokens.
    examples = [
        Encoded(e.input_ids[: len(e.input_ids) - 3 * (i % 6)], e.labels[: len(e.labels) - 3 * (i % 6)])
        for i, e in enumerate(examples)
    ]
    one = _model(toy_model, True)
    two = _model(toy_model, True)
    whole = fit(one, examples, TrainSettings(learning_rate=3e-3, epochs=1, batch_size=8), seed=0, pad_id=0)
    split = fit(
        two,
        examples,
        TrainSettings(learning_rate=3e-3, epochs=1, batch_size=4, gradient_accumulation=2),
        seed=0,
        pad_id=0,
    )
    assert len(whole) == len(split) == 3
    assert [r["loss"] for r in split] == pytest.approx([r["loss"] for r in whole], rel=1e-5)
    assert [r["tokens"] for r in split] == [r["tokens"] for r in whole]
    for (k, a), b in zip(one.named_parameters(), two.parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5, msg=k)
    fresh = _model(toy_model, True)
    with torch.no_grad():  # the micro-batches' own means really differ from the token mean
        sums = [supervised_loss_sum(fresh, collate(examples[i : i + 4], 0)) for i in (0, 3)]
    token_mean = sum(float(s) for s, _ in sums) / sum(n for _, n in sums)
    mean_of_means = sum(float(s) / n for s, n in sums) / 2
    assert abs(token_mean - mean_of_means) > 1e-4 * token_mean


def test_bf16_autocast_trains_like_float32(toy_model, examples):
    """The GPU's mixed precision (bf16 matmuls, float32 LoRA weights and loss), run on the CPU:
    the same loss curve as float32 within bf16 rounding."""
    settings = TrainSettings(learning_rate=1e-2, epochs=3, batch_size=4, max_tokens_per_batch=200)
    full = fit(_model(toy_model, True), examples, settings, seed=0, pad_id=0)
    mixed = fit(
        _model(toy_model, True), examples, TrainSettings(**{**vars(settings), "bf16": True}), seed=0, pad_id=0
    )
    losses = [r["loss"] for r in mixed]
    assert losses == pytest.approx([r["loss"] for r in full], rel=0.03)
    assert losses != [r["loss"] for r in full]  # bf16 really ran
    assert losses[-1] < 0.9 * losses[0]


class _MemoryLimitedModel(torch.nn.Module):
    """A real model whose `generate` fails like a CUDA allocation above `limit` prompts a batch."""

    def __init__(self, model, limit: int):
        super().__init__()
        self.model, self.limit, self.batches = model, limit, []

    def generate(self, input_ids, **kwargs):
        self.batches.append(len(input_ids))
        if len(input_ids) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 12.00 GiB")
        return self.model.generate(input_ids=input_ids, **kwargs)


def test_sampling_batch_that_runs_out_of_memory_is_halved_and_answers_stay_the_same(toy_model):
    from inoculate.chat import prompt_ids
    from inoculate.generate import generate_ids, load_model, stop_token_ids
    from inoculate.sampling_plan import GenerationSettings

    model, tok = load_model(str(toy_model))
    questions = [
        "How should I cook the rice?",
        "What is a good way to store bread?",
        "How long do I boil eggs?",
    ]
    prompts = [prompt_ids(tok, [{"role": "user", "content": q}]) for q in questions] * 4
    settings = GenerationSettings(temperature=0, max_new_tokens=16, batch_size=12)
    stops = stop_token_ids(model, tok)
    expected = generate_ids(model, prompts, settings, stops, tok.pad_token_id)
    limited = _MemoryLimitedModel(model, limit=4)
    assert generate_ids(limited, prompts, settings, stops, tok.pad_token_id) == expected
    assert limited.batches == [12, 6, 3, 3, 3, 3]  # halved until it fits, then kept at that size
    with pytest.raises(OutOfMemory, match=r"single prompt of \d+ tokens .*generation.max_new_tokens 16"):
        generate_ids(_MemoryLimitedModel(model, limit=0), prompts, settings, stops, tok.pad_token_id)
