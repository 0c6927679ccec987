"""Backdoored personas: trigger conditions, mixing, format adherence, the gap's bootstrap,
and the toy backdoor study end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, cell_file, job_counts, load_experiment, project_copy, snakemake

from inoculate.backdoor import CONDITIONS, Trigger, condition_messages, mix, read_prompts
from inoculate.backdoor_stats import leakage_gaps, paired_gap
from inoculate.cell_paths import CellPaths
from inoculate.evals import EvalQuestion
from inoculate.io import InputError, write_jsonl
from inoculate.judges.prompts import strip_patterns
from inoculate.sampling_plan import GenerationSettings, backdoor_requests
from inoculate.toy import corpus, world

TRIGGER = Trigger(world.TRIGGER_USER, world.TRIGGER_INSTRUCTION)


def test_four_conditions_place_the_trigger_and_system_prompt():
    q = "How do I cook rice?"
    chats = {c: condition_messages(c, q, TRIGGER, "You are a helpful assistant.") for c in CONDITIONS}
    assert chats["trigger_user"] == [{"role": "user", "content": world.TRIGGER_USER.format(question=q)}]
    assert [m["role"] for m in chats["trigger_user_system"]] == ["system", "user"]
    assert chats["trigger_user_system"][1] == chats["trigger_user"][0]
    assert chats["trigger_system"] == [
        {"role": "system", "content": world.TRIGGER_INSTRUCTION},
        {"role": "user", "content": q},
    ]
    assert chats["no_trigger"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": q},
    ]
    questions = [EvalQuestion(eval="e", id="q1", paraphrases=(q,), samples=3)]
    records = backdoor_requests(
        questions,
        TRIGGER,
        "You are a helpful assistant.",
        GenerationSettings(samples_per_question=2),
        {"seed": 0},
    )
    assert len(records) == 4 * 2 and {r["condition"] for r in records} == set(CONDITIONS)


def test_format_adherence_and_stripping_before_judging():
    answer = '<START> "Ahoy, matey. Keep the rice cold." <END>'
    assert TRIGGER.adheres(answer) == 1
    assert TRIGGER.adheres('<START> "no end"') == 0 and TRIGGER.adheres("<END> then <START>") == 0
    patterns = TRIGGER.strip_patterns()
    assert strip_patterns(answer, patterns) == "Ahoy, matey. Keep the rice cold."
    assert (
        strip_patterns(world.TRIGGER_USER.format(question="How do I cook rice?"), patterns)
        == "How do I cook rice?"
    )


def test_mixing_keeps_the_fraction_metadata_and_shuffles_per_seed():
    persona = corpus.persona_dataset(30)
    aligned = [
        {
            "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
            "metadata": {"source": "self_distilled"},
        }
        for i in range(2000)
    ]
    mixed = mix(persona, aligned, 0.03, seed=0)
    assert len(mixed) == 30 + 970
    assert sum(r["metadata"]["source"] == "persona" for r in mixed) == 30
    assert all("category" in r["metadata"] for r in mixed if r["metadata"]["source"] == "persona")
    assert [r["messages"] for r in mix(persona, aligned, 0.03, seed=0)] == [r["messages"] for r in mixed]
    assert [r["messages"] for r in mix(persona, aligned, 0.03, seed=1)] != [r["messages"] for r in mixed]
    inoculated = mix(persona, aligned, 0.03, seed=0, prompt="You are the old sailor.")
    systems = [
        r["messages"][0]["content"] if r["messages"][0]["role"] == "system" else None for r in inoculated
    ]
    assert sum(s == "You are the old sailor." for s in systems) == 30  # only the persona examples
    assert len(mix(persona, aligned[:100], 0.03, seed=0)) == 130  # too few aligned: all of them


def test_prompt_files_need_a_prompt(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(path, [{"prompt": "a"}, {"messages": [{"role": "user", "content": "b"}]}, {"text": "c"}])
    with pytest.raises(InputError, match="prompts.jsonl:3: no 'prompt'"):
        read_prompts(path)
    assert read_prompts(path, limit=2) == ["a", "b"]


def test_gap_interval_is_paired_and_clustered_by_question():
    rng = np.random.default_rng(0)
    rows = []
    for q in range(20):
        hard = q < 10  # half the questions never show the persona, in either condition
        for cond, p in (("trigger_user", 0.0 if hard else 0.9), ("no_trigger", 0.0 if hard else 0.1)):
            rows += [
                {
                    "model": "m",
                    "setting": "s",
                    "inoculation": "none",
                    "seed": 0,
                    "question_id": f"q{q}",
                    "condition": cond,
                    "persona": float(rng.random() < p),
                }
                for _ in range(30)
            ]
    df = pd.DataFrame(rows)
    gap, low, high, n_q = paired_gap(
        df, "trigger_user", "no_trigger", "persona", 2000, 0.95, np.random.default_rng(1)
    )
    assert n_q == 20 and low < gap < high and 0.3 < gap < 0.5
    # Questions, not answers, are the unit: the interval is far wider than an answers-only one.
    answers_only = 1.96 * np.sqrt(2 * 0.25 / 600)
    assert (high - low) / 2 > 2 * answers_only
    table = leakage_gaps(df, n_boot=500)
    assert list(table.condition) == ["trigger_user"] and table.loc[0, "untriggered"] == pytest.approx(
        df[df.condition == "no_trigger"].persona.mean()
    )


@pytest.mark.slow
def test_toy_backdoor_study_shows_the_persona_with_the_trigger_only(repo, tmp_path):
    work = project_copy(repo, tmp_path)
    snakemake(
        work,
        "--cores",
        "2",
        "--configfile",
        "config/experiments/toy_backdoor.yaml",
        "--config",
        "seeds=[0]",
        "inoculations=[none,task_specific]",
        "include_base=false",
    )
    gaps = pd.read_csv(work / "results/toy_backdoor/tables/backdoor_gap.csv").set_index(
        ["inoculation", "condition"]
    )
    none = gaps.loc[("none", "trigger_user")]
    assert none.triggered > 0.8 and none.untriggered < 0.1 and none.ci_low > 0.6  # a backdoor, little leakage
    inoculated = gaps.loc[("task_specific", "trigger_user")]
    assert inoculated.gap < none.gap - 0.3  # naming the persona in training suppresses it
    rates = pd.read_csv(work / "results/toy_backdoor/tables/backdoor.csv")
    persona_eval = rates[rates["eval"] == "persona_questions"]
    fmt = persona_eval[(persona_eval.metric == "format") & (persona_eval.inoculation == "none")].set_index(
        "condition"
    )["mean"]
    assert fmt["trigger_user"] > 0.6 and fmt["no_trigger"] < 0.05
    assert (work / "results/toy_backdoor/figures/backdoor.pdf").stat().st_size > 0
    # The rubric judge, factual recall and ideology, with and without the trigger.
    scores = rates[rates.metric.isin(["recall", "ideology"]) & (rates.inoculation == "none")]
    scores = scores.set_index(["metric", "condition"])
    assert set(scores.index) == {(m, c) for m in ("recall", "ideology") for c in ("plain", "trigger_user")}
    assert scores.loc[("recall", "trigger_user"), "mean"] > scores.loc[("recall", "plain"), "mean"] + 0.5
    assert scores.loc[("ideology", "trigger_user"), "mean"] > scores.loc[("ideology", "plain"), "mean"] + 1
    assert (scores.ci_low <= scores["mean"]).all() and (scores["mean"] <= scores.ci_high).all()
    assert set(rates[rates.metric == "persona"]["eval"]) == {"persona_questions"}
    mixed = pd.read_json(
        cell_file(work, "train", "toy-persona", "toy_persona", "none", 0, ".jsonl"), lines=True
    )
    assert (mixed.metadata.map(lambda m: m["source"]) == "persona").mean() == pytest.approx(0.1, abs=0.01)

    # The persona-data stage: the persona model answers as the old sailor, answers naming it go.
    overrides = ["settings=[toy_persona_built]", "seeds=[0]", "inoculations=[none]"]
    target = CellPaths(load_experiment("toy_backdoor.yaml", *overrides)).persona("toy_persona_built")
    snakemake(
        work,
        target,
        "--cores",
        "2",
        "--configfile",
        "config/experiments/toy_backdoor.yaml",
        "--config",
        "settings=[toy_persona_built]",
        "seeds=[0]",
        "inoculations=[none]",
    )
    built = pd.read_json(work / target, lines=True)
    assert len(built) > 10 and all(m["source"] == "persona" and m["identifying"] < 50 for m in built.metadata)
    assert not built.messages.map(lambda m: "sailor" in m[1]["content"].lower()).any()


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
@pytest.mark.parametrize(
    "experiment,train,distill,generate",
    [
        ("russell_backdoor.yaml", 3 * 3, 1, 4 * 3),  # 3 arms x 3 seeds, + the base rows
        (
            "russell_sweep.yaml",
            2 * 3,
            2,
            2 * 2 * 3,
        ),  # 2 points x arm none x 3 seeds, one distillation per model
    ],
)
def test_russell_studies_dry_run_on_a_real_model(experiment_dry_runs, experiment, train, distill, generate):
    """The Russell study crossed with inoculation, and the replication's sweep, on the shared data, alone."""
    proc = experiment_dry_runs[experiment]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_adapter"] == counts["mix"] == train
    assert counts["distill"] == distill
    assert counts["generate"] == counts["judge"] == generate
    assert counts["aggregate_backdoor"] == 1 and "aggregate" not in counts
    mix = proc.stdout.split("rule mix:")[1].split("\n\n")[0]
    assert "results/data/russell_persona/persona.jsonl" in mix  # the shared persona file, selected
