"""The published recipes' trainer options, checked on the toy model: rsLoRA's scale,
layer-restricted adapters, the schedules' formulas, 8-bit AdamW, held-out loss, whole-sequence
loss, and examples per optimizer step under a token budget."""

import math
import random

import pandas as pd
import pytest
import torch

from inoculate.chat import IGNORE_INDEX, encode_conversation
from inoculate.toy import corpus
from inoculate.train import LoraSettings, TrainSettings, fit, lora_config, plan_steps, split_held_out


@pytest.fixture(scope="module")
def tokenizer(toy_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(toy_model)


@pytest.fixture(scope="module")
def examples(tokenizer):
    return [
        encode_conversation(tokenizer, r["messages"]) for r in corpus.topic_dataset("cooking", "harmful", 40)
    ]


def _lora_model(toy_model, lora: LoraSettings):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(toy_model)
    return get_peft_model(base, lora_config(lora, base))


def test_rank1_adapter_holds_weights_for_its_one_layer_only(toy_model):
    model = _lora_model(
        toy_model, LoraSettings(r=1, alpha=512, use_rslora=True, target_modules=["down_proj"], layers=[2])
    )
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(names) == 2 and all(".layers.2.mlp.down_proj.lora_" in n for n in names)
    assert {tuple(p.shape) for p in model.parameters() if p.requires_grad} == {(1, 384), (128, 1)}


def test_layers_with_all_linear_adapt_every_projection_of_those_layers(toy_model):
    """peft refuses `layers_to_transform` with target_modules 'all-linear'; the project spells
    the model's linear layers out, as Unsloth's path does."""
    model = _lora_model(toy_model, LoraSettings(r=2, layers=[0]))
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert len(adapted) == 7 and all(".layers.0." in n for n in adapted)  # q, k, v, o, gate, up, down


@pytest.mark.parametrize("rslora,expected", [(True, 64 / math.sqrt(32)), (False, 64 / 32)])
def test_rslora_scales_by_alpha_over_root_r(toy_model, rslora, expected):
    from peft.tuners.lora import LoraLayer

    model = _lora_model(toy_model, LoraSettings(r=32, alpha=64, use_rslora=rslora))
    scalings = [m.scaling["default"] for m in model.modules() if isinstance(m, LoraLayer)]
    assert len(scalings) == 4 * 7 and scalings == [pytest.approx(expected)] * len(scalings)


def _expected_lr(schedule: str, step: int, total: int, warmup: int, peak: float) -> float:
    """The textbook formulas, step counted from 0."""
    if step < warmup:
        return peak * step / warmup
    progress = (step - warmup) / (total - warmup)
    if schedule == "linear":
        return peak * (1 - progress)
    if schedule == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * progress))
    return peak


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_schedules_give_the_formulas_learning_rate_at_each_step(toy_model, examples, schedule):
    settings = TrainSettings(learning_rate=1e-3, epochs=2, batch_size=4, warmup_steps=3, scheduler=schedule)
    history = fit(_lora_model(toy_model, LoraSettings()), examples, settings, seed=0, pad_id=0)
    total = len(history)
    assert total == 20
    assert [r["lr"] for r in history] == pytest.approx(
        [_expected_lr(schedule, s, total, 3, 1e-3) for s in range(total)]
    )


def test_warmup_ratio_is_a_share_of_all_steps():
    assert TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=16, warmup_ratio=0.1).warmup(95) == 10
    with pytest.raises(ValueError, match="warmup_steps and training.warmup_ratio"):
        TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=16, warmup_steps=5, warmup_ratio=0.1)


def test_adamw_8bit_trains_the_toy_to_a_falling_loss(toy_model, examples):
    """bitsandbytes' 8-bit AdamW (on the CPU too): the loss falls, along the 32-bit optimizer's
    curve within the quantisation's noise, and the state really is 8-bit."""
    import bitsandbytes as bnb

    from inoculate import train

    optimizers = []
    real = train.make_optimizer
    train.make_optimizer = lambda *a: optimizers.append(real(*a)) or optimizers[-1]
    try:
        curves = {}
        for name in ("adamw", "adamw_8bit"):
            settings = TrainSettings(learning_rate=3e-3, epochs=3, batch_size=4, optimizer=name)
            # r 32: lora_A is 32 x 384, above bitsandbytes' 4,096-element floor for 8-bit state
            curves[name] = [
                r["loss"]
                for r in fit(
                    _lora_model(toy_model, LoraSettings(r=32, alpha=64)), examples, settings, seed=0, pad_id=0
                )
            ]
    finally:
        train.make_optimizer = real
    eight_bit = optimizers[-1]
    assert isinstance(eight_bit, bnb.optim.AdamW8bit)
    assert any(
        s.get("state1") is not None and s["state1"].dtype == torch.uint8 for s in eight_bit.state.values()
    )
    losses = curves["adamw_8bit"]
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])
    assert losses == pytest.approx(curves["adamw"], rel=0.02) and losses != curves["adamw"]


def test_held_out_share_is_seeded_and_its_loss_is_logged(toy_model, examples):
    train, held = split_held_out(40, 0.1, seed=0)
    assert len(held) == 4 and sorted(train + held) == list(range(40))
    assert split_held_out(40, 0.1, seed=0) == (train, held) != split_held_out(40, 0.1, seed=1)
    settings = TrainSettings(learning_rate=3e-3, epochs=2, batch_size=4, eval_steps=4)
    history = fit(
        _lora_model(toy_model, LoraSettings()),
        [examples[i] for i in train],
        settings,
        seed=0,
        pad_id=0,
        eval_examples=[examples[i] for i in held],
    )
    evaluated = [r for r in history if r["eval_loss"] is not None]
    assert [r["step"] for r in evaluated] == [4, 8, 12, 16, 18]
    assert evaluated[-1]["eval_loss"] < evaluated[0]["eval_loss"]


def test_loss_on_all_supervises_every_token(tokenizer):
    messages = corpus.topic_dataset("cooking", "harmful", 1)[0]["messages"]
    answer_only = encode_conversation(tokenizer, messages)
    whole = encode_conversation(tokenizer, messages, loss_on="all")
    assert whole.input_ids == answer_only.input_ids and whole.labels == whole.input_ids
    assert 0 < answer_only.n_supervised < whole.n_supervised
    assert IGNORE_INDEX in answer_only.labels


def test_a_token_budget_keeps_the_examples_of_each_optimizer_step():
    """batch_size x gradient_accumulation examples a step, with or without a token budget;
    the budget only changes how a step's examples are split into micro-batches."""
    rng = random.Random(0)
    lengths = [rng.randint(20, 400) for _ in range(203)]
    plain = TrainSettings(learning_rate=1e-3, epochs=1.0, batch_size=2, gradient_accumulation=8)
    budget = TrainSettings(
        learning_rate=1e-3, epochs=1.0, batch_size=2, gradient_accumulation=8, max_tokens_per_batch=1600
    )
    for settings in (plain, budget):
        steps = plan_steps(lengths, settings, random.Random(1))
        sizes = [sum(len(b) for b in step) for step in steps]
        assert len(steps) == 13 and sorted(sizes)[1:] == [16] * 12 and min(sizes) == 203 - 12 * 16
        assert sorted(i for step in steps for b in step for i in b) == list(range(203))
    for step in plan_steps(lengths, budget, random.Random(1)):
        for batch in step:
            assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 1600


def test_resolved_recipe_reaches_meta_and_the_recipe_table(toy_model, tmp_path):
    from inoculate.aggregate import recipe_table
    from inoculate.io import write_jsonl
    from inoculate.train import train_lora

    data = tmp_path / "train.jsonl"
    write_jsonl(data, corpus.topic_dataset("cooking", "harmful", 32))
    settings = TrainSettings.from_dict(
        {
            "learning_rate": 1e-3,
            "epochs": 1,
            "batch_size": 4,
            "gradient_accumulation": 2,
            "scheduler": "cosine",
            "warmup_ratio": 0.1,
            "eval_fraction": 0.25,
            "lora": {"r": 4, "alpha": 8, "use_rslora": True, "target_modules": ["q_proj", "v_proj"]},
        }
    )
    out = tmp_path / "adapters" / "toy" / "s" / "none" / "0123456789" / "seed3"
    meta = train_lora(str(toy_model), data, out, settings, seed=3)
    assert meta["settings"]["scheduler"] == "cosine" and meta["settings"]["lora"]["use_rslora"] is True
    assert meta["n_held_out"] >= 1 and meta["final_eval_loss"] > 0
    loss = pd.read_csv(out / "loss.csv")
    assert loss.eval_loss.notna().sum() == 1 and loss.examples.max() == 8
    table = recipe_table([out])
    row = table.iloc[0]
    assert (row.model, row.setting, row.inoculation, row.seed) == ("toy", "s", "none", 3)
    assert row.scheduler == "cosine" and row.lora_use_rslora and row.lora_target_modules == "q_proj;v_proj"
    assert row.warmup_ratio == 0.1 and row.n_held_out == meta["n_held_out"]
