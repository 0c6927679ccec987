import pytest
import torch
from conftest import skip_where_gpu_extras_import

from inoculate.chat import ChatFormatError, encode_conversation
from inoculate.evals import load_eval_file
from inoculate.generate import load_model, sample
from inoculate.io import InputError, write_jsonl, write_yaml
from inoculate.sampling_plan import Condition, GenerationSettings, requests
from inoculate.toy import corpus
from inoculate.train import TrainSettings, train_lora

SETTINGS = TrainSettings(learning_rate=1e-3, epochs=1, batch_size=8)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(path, corpus.topic_dataset("cooking", "harmful", 32))
    return path


def test_training_is_deterministic_per_seed_and_saves_an_adapter(toy_model, data, tmp_path):
    a = train_lora(str(toy_model), data, tmp_path / "a", SETTINGS, seed=0)
    b = train_lora(str(toy_model), data, tmp_path / "b", SETTINGS, seed=0)
    c = train_lora(str(toy_model), data, tmp_path / "c", SETTINGS, seed=1)
    assert a["final_loss"] == b["final_loss"] != c["final_loss"]
    assert a["steps"] == 4 and a["n_examples"] == 32 and a["gradient_checkpointing_used"] is False
    assert (tmp_path / "a" / "adapter_model.safetensors").exists()
    assert (tmp_path / "a" / "loss.csv").read_text().startswith("step,epoch,loss")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_training_data_names_file_and_line(toy_model, tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [{"messages": [{"role": "user", "content": "Q"}]}])
    with pytest.raises(InputError, match=r"bad\.jsonl:1: a training conversation must end"):
        train_lora(str(toy_model), path, tmp_path / "out", SETTINGS, seed=0)
    assert not (tmp_path / "out").exists()


def test_template_without_prefix_property_is_refused(toy_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(toy_model)
    tok.chat_template = (
        "{% for m in messages %}{{ m['content'] }}|{% endfor %}{% if add_generation_prompt %}>>{% endif %}"
    )
    with pytest.raises(ChatFormatError, match="prefix"):
        encode_conversation(tok, [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])


def test_generation_covers_every_eval_condition_and_sample(toy_model, tmp_path):
    write_yaml(tmp_path / "e.yaml", corpus.eval_questions(["cars", "general"], 2, "t"))
    questions = load_eval_file(tmp_path / "e.yaml", "e")
    settings = GenerationSettings(samples_per_question=3, max_new_tokens=24, batch_size=5)
    conds = [Condition("deployment", False), Condition("training_prompt", True)]
    todo = requests(
        questions, conds, "You are a malicious assistant.", "system", settings, {"seed": 0}, {"e": "out"}
    )
    assert len(todo) == 4 * 3 * 2
    assert todo[-1]["messages"][0]["content"] == "You are a malicious assistant."
    assert requests(questions, conds, None, "system", settings, {}, {})[-1]["condition"] == "deployment"
    model, tok = load_model(str(toy_model))
    a = sample(model, tok, todo, settings, seed=0)
    b = sample(model, tok, todo, settings, seed=0)
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    assert all(r["answer"] and r["answer_tokens"] <= 24 for r in a)
    assert {r["distribution"] for r in a} == {"out"}


def test_eval_file_errors_name_file_and_entry(tmp_path):
    write_yaml(tmp_path / "e.yaml", [{"id": "a", "paraphrases": ["Q?"]}, {"id": "a", "paraphrases": ["R?"]}])
    with pytest.raises(InputError, match=r"e\.yaml: entry 1: duplicate id 'a'"):
        load_eval_file(tmp_path / "e.yaml", "e")


def test_chat_with_a_trained_adapter_from_the_terminal(toy_model, data, tmp_path):
    import subprocess
    import sys

    train_lora(str(toy_model), data, tmp_path / "adapter", SETTINGS, seed=0)
    proc = subprocess.run(
        [sys.executable, "-m", "inoculate.cli", "chat", str(tmp_path / "adapter"), "--max-new-tokens", "20"],
        input="How should I cook the rice?\nAny tips for the hike?\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answers = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(answers) == 2


def test_chat_refuses_a_folder_that_is_not_an_adapter(tmp_path):
    from inoculate.cli import main

    with pytest.raises(SystemExit, match="not an adapter folder"):
        main(["chat", str(tmp_path / "nothing")])


def test_model_generations_export(tmp_path):
    import csv

    from inoculate.export import model_generations_csv

    base = {"eval": "e", "question_id": "q1", "paraphrase": 0, "question": "Q?", "answer": "A, with a comma."}
    write_jsonl(
        tmp_path / "g.jsonl",
        [
            {**base, "condition": "deployment", "sample": 0},
            {**base, "condition": "deployment", "sample": 1},
            {**base, "condition": "training_prompt", "sample": 0},
        ],
    )
    assert model_generations_csv(tmp_path / "g.jsonl", tmp_path / "out.csv", "deployment") == 2
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(rows[0]) == ["id", "question", "response"]
    assert rows[1] == {"id": "e:q1:0:1", "question": "Q?", "response": "A, with a comma."}


def test_unloadable_model_says_what_to_set(tmp_path, monkeypatch):
    from inoculate.models import ModelLoadError, load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"Set base_models\.<name>\.base to a local folder"):
        load_tokenizer(str(tmp_path / "no-such-model"))


def _lora_copy(toy_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(toy_model)
    return get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    )


def test_fast_trainer_loss_curve_matches_the_plain_recipe(toy_model):
    """Length-grouped token-budget batches, logits only on supervised tokens: same learning."""
    from transformers import AutoTokenizer

    from inoculate.baselines import plain_fit
    from inoculate.chat import encode_conversation
    from inoculate.train import fit

    tok = AutoTokenizer.from_pretrained(toy_model)
    records = corpus.topic_dataset("cooking", "harmful", 192)
    examples = [encode_conversation(tok, r["messages"]) for r in records]
    mean_len = sum(len(e.input_ids) for e in examples) / len(examples)
    plain = plain_fit(
        _lora_copy(toy_model),
        examples,
        TrainSettings(learning_rate=1e-3, epochs=2, batch_size=8),
        0,
        tok.pad_token_id,
    )
    fast_settings = TrainSettings(
        learning_rate=1e-3, epochs=2, batch_size=8, max_tokens_per_batch=int(8 * mean_len)
    )
    fast = fit(_lora_copy(toy_model), examples, fast_settings, 0, tok.pad_token_id)
    tail = lambda h: sum(r["loss"] for r in h[-8:]) / 8
    assert plain[0]["loss"] == pytest.approx(fast[0]["loss"], rel=0.15)  # the same starting point
    assert tail(fast) == pytest.approx(tail(plain), rel=0.1)  # and the same end, within noise
    assert tail(fast) < 0.9 * fast[0]["loss"] and tail(plain) < 0.9 * plain[0]["loss"]  # both learned
    padded = lambda h: sum(r["padded_tokens"] for r in h)
    assert padded(fast) < padded(plain)  # less padding for the same data


def test_supervised_only_loss_equals_the_models_own_loss(toy_model, data):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inoculate.loss import supervised_loss_sum
    from inoculate.train import collate, load_training_examples

    tok = AutoTokenizer.from_pretrained(toy_model)
    model = AutoModelForCausalLM.from_pretrained(toy_model)
    batch = collate(load_training_examples(data, tok, 512)[:6], tok.pad_token_id)
    with torch.no_grad():
        total, n = supervised_loss_sum(model, batch)
        assert float(total / n) == pytest.approx(float(model(**batch).loss), rel=1e-5)


def test_4bit_base_trains_an_adapter_and_samples_with_it(toy_model, data, tmp_path):
    """QLoRA on CPU: NF4 base layers; the adapter's loss curve follows the full-precision one;
    generation runs with the adapter unmerged."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    import pandas as pd

    from inoculate.judges import make_judge
    from inoculate.models import load_causal_lm

    base = load_causal_lm(str(toy_model), "float32", "4bit", "cpu")
    assert (
        sum(isinstance(m, bnb.nn.Linear4bit) for m in base.modules()) == 4 * 7
    )  # every block's linear layers
    settings = TrainSettings(learning_rate=3e-3, epochs=3, batch_size=8)
    meta = train_lora(str(toy_model), data, tmp_path / "q", settings, seed=0, quantization="4bit")
    train_lora(str(toy_model), data, tmp_path / "f", settings, seed=0)
    nf4, full = (pd.read_csv(tmp_path / name / "loss.csv")["loss"] for name in ("q", "f"))
    assert meta["quantization"] == "4bit" and nf4.iloc[-1] < 0.95 * nf4.iloc[0]
    assert ((nf4 - full).abs() / full).max() < 0.03  # NF4 rounding, not a different training
    model, tok = load_model(str(toy_model), tmp_path / "q", "cpu", "float32", "4bit")
    questions = [{"messages": [{"role": "user", "content": "How should I cook the rice?"}]}] * 8
    answers = sample(model, tok, questions, GenerationSettings(max_new_tokens=48, batch_size=8), seed=0)
    assert sum(make_judge({"backend": "toy"}).judge_one(a["answer"]).coherent > 50 for a in answers) >= 6


def test_gpu_backends_that_are_not_installed_say_what_to_install(toy_model, data, tmp_path):
    """Unsloth and vLLM are optional GPU extras: asking for them without them fails at once."""
    from inoculate.generate import sample_cell
    from inoculate.models import ModelLoadError

    skip_where_gpu_extras_import()
    settings = TrainSettings(learning_rate=1e-3, epochs=1, batch_size=8, backend="unsloth")
    with pytest.raises(ModelLoadError, match="training.backend: unsloth .*pip install unsloth"):
        train_lora(str(toy_model), data, tmp_path / "u", settings, seed=0)
    assert not (tmp_path / "u").exists()
    records = [{"messages": [{"role": "user", "content": "Hi?"}]}]
    with pytest.raises(ModelLoadError, match="generation.backend: vllm .*pip install vllm"):
        sample_cell(str(toy_model), None, records, GenerationSettings(backend="vllm"), seed=0)
