"""Rounds without a model: the config, the remainder invariant (hypothesis), the round
stage, and the stop-and-continue workflow of real annotators on real run-folder files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from labelwise import contracts, runio, textio
from labelwise.config import ConfigError, build


def job_of(run: Path | str, **data):
    from labelwise.job import JobConfig

    return build(JobConfig, {"run_dir": str(run), **data}, "test.yaml")


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("rounds, select, message", [
    ({"count": 3, "budgets": [60, 60]}, {}, "rounds.budgets: lists 2 budget(s) for count: 3"),
    ({"count": 2, "budgets": [60, 0]}, {"budget": 60}, "rounds.budgets[1]: must be a positive"),
    ({"count": 3, "budgets": [60, 60, 60]}, {"budget": 100}, "rounds.budgets: sum to 180 but select.budget"),
    ({"count": 0}, {}, "rounds.count: must be a positive"),
    ({"count": 2, "training": "finetune"}, {}, "rounds.training: expected one of 'retrain', 'continue'"),
    ({"count": 5}, {"budget": 4}, "rounds.count: 5 rounds cannot split select.budget 4"),
    ({"count": 2, "budget": [1]}, {}, "rounds.budget: unknown key"),
])
def test_rounds_config_errors_name_the_key(rounds, select, message):
    with pytest.raises(ConfigError) as e:
        job_of("runs/x", rounds=rounds, select=select)
    assert f"test.yaml: {message}" in str(e.value)


def test_rounds_config_budgets_default_split_and_answers_file_refused():
    job = job_of("runs/x", rounds={"count": 3}, select={"budget": 10})
    assert job.rounds.per_round(10) == [4, 3, 3] and job.rounds.training == "retrain"
    with pytest.raises(ConfigError, match="annotate.answers: one answers file cannot serve every round"):
        job_of("runs/x", rounds={"count": 2}, annotate={"answers": "a.jsonl"})


def test_without_rounds_the_run_is_the_one_batch_pipeline():
    from labelwise import stages
    from labelwise.pipeline import plan_steps

    job = job_of("runs/x")
    assert job.rounds is None
    steps = plan_steps(job)
    assert [s.name for s in steps] == [s.stage for s in steps] == [n for n in stages.NAMES if n != "judge"]  # judge: when wanted
    assert {s.folder for s in steps} == {Path("runs/x")}


def test_round_job_is_a_one_batch_job_in_the_round_folder():
    from labelwise.pipeline import plan_steps
    from labelwise.rounds.layout import round_job

    job = job_of("runs/x", rounds={"count": 2, "budgets": [3, 5]}, select={"budget": 8, "seed": 7})
    r2 = round_job(job, 2)
    assert (r2.run_dir, r2.select.budget, r2.select.seed, r2.rounds) == ("runs/x/rounds/r2", 5, 8, None)
    assert [s.name for s in plan_steps(job)] == [
        "pool", "score", "evaluate-base",
        "r1/round", "r1/select", "r1/annotate", "r1/train", "r1/evaluate",
        "r2/round", "r2/score", "r2/select", "r2/annotate", "r2/train", "r2/evaluate"]
    with pytest.raises(ValueError, match="--until takes pool or score"):
        plan_steps(job, until="select")


def test_run_until_a_round_stage_is_a_usage_error(tmp_path, capsys):
    from labelwise import cli

    config = tmp_path / "job.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\nselect: {{budget: 10}}\nrounds: {{count: 2}}\n")
    assert cli.main(["run", str(config), "--until", "train"]) == 2
    assert "--until train: with a rounds: section, --until takes pool or score" in capsys.readouterr().err


# ------------------------------------------------------------------ the remainder invariant


def score_frame(sizes: list[int], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([
        {"id": f"t{t}-{i}", "task": f"task{t}", "logconf": float(-rng.gamma(2.0, 1.0 + t)), "n_tokens": 4,
         "mean_logprob": -0.5, "mean_entropy": float(rng.random()), "mean_margin": 0.5, "min_margin": 0.1,
         "eos": True, "error": None}
        for t, n in enumerate(sizes) for i in range(n)
    ])


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5),
    fractions=st.lists(st.floats(0.05, 0.5), min_size=1, max_size=4),
    strategy=st.sampled_from(["random", "task_diversity", "weighted_task_diversity", "least_confidence"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_no_prompt_is_selected_twice_across_rounds(sizes, fractions, strategy, seed):
    """Every round selects exactly its budget from what no earlier round selected."""
    from labelwise.rounds.remainder import remainder
    from labelwise.selection.run import run_selection
    from labelwise.selection.table import from_frame

    pool = score_frame(sizes, seed % 1000)
    budgets = [max(1, int(f * len(pool))) for f in fractions]
    chosen: list[list[str]] = []
    for r, budget in enumerate(budgets):
        left = remainder(pool, chosen)
        assert len(left) == len(pool) - sum(len(c) for c in chosen)
        if budget > len(left) or left["task"].nunique() < 2:  # TD and WTD need two tasks to spread over
            break
        params = {"base": 1} if strategy == "weighted_task_diversity" else {}
        sel = run_selection(from_frame(left), strategy, params, budget, (seed + r) % 2**32)
        assert len(sel.ids) == budget
        assert set(sel.ids) <= set(left["id"])
        assert int(sel.allocation["pool_size"].sum()) == len(left)  # allocation sees the remainder
        chosen.append(list(sel.ids))
    everything = [i for c in chosen for i in c]
    assert len(everything) == len(set(everything))


def test_remainder_refuses_a_prompt_selected_twice_or_unknown():
    from labelwise.rounds.remainder import remainder

    pool = score_frame([3, 3], 0)
    with pytest.raises(ValueError, match="round 2 selected 1 prompt\\(s\\) a round had already selected"):
        remainder(pool, [["t0-0", "t0-1"], ["t0-1"]])
    with pytest.raises(ValueError, match="round 1 selected 1 id\\(s\\) that are not in the pool"):
        remainder(pool, [["nope"]])


# ------------------------------------------------------------------ the round stage and real annotators


def write_run(run: Path) -> pd.DataFrame:
    scores = score_frame([4, 6, 10], 1)
    pool = scores[["id", "task"]].assign(prompt=lambda d: "prompt " + d["id"], response=lambda d: "gold " + d["id"],
                                         source="s")
    run.mkdir(parents=True)
    runio.write_parquet(run / contracts.POOL, pool)
    runio.write_parquet(run / contracts.TEST, pool.head(3))
    runio.write_parquet(run / contracts.SCORES, scores)
    return pool


def test_round_stage_rejects_budgets_larger_than_the_pool(tmp_path):
    from labelwise.rounds.stage import prepare

    write_run(tmp_path / "run")
    job = job_of(tmp_path / "run", rounds={"count": 2, "budgets": [15, 15]}, select={"budget": 30})
    with pytest.raises(ValueError, match="rounds.budgets: the rounds select 30 prompts in all but the pool .* has 20"):
        prepare(job, 1, log=lambda *a: None)


def test_real_annotators_stop_the_round_and_importing_answers_continues(tmp_path, capsys, monkeypatch):
    """The printed commands are run as printed: export, fill in, import; then the round goes on."""
    import shlex

    from labelwise import cli
    from labelwise.rounds.layout import round_job
    from labelwise.rounds.run import AwaitingAnswers, annotate_round
    from labelwise.rounds.stage import prepare
    from labelwise.selection.stage import select

    run = tmp_path / "run"
    write_run(run)
    config = tmp_path / "job.yaml"
    config.write_text(f"run_dir: {run}\nselect: {{strategy: task_diversity, budget: 10}}\n"
                      "annotate: {simulate: false}\nrounds: {count: 2, budgets: [4, 6]}\n")
    from labelwise.job import load_job

    job = load_job(config)
    quiet = lambda *a: None  # noqa: E731
    prepare(job, 1, log=quiet)
    r1 = round_job(job, 1)
    select(r1, log=quiet)
    command = f"labelwise annotate {config}"
    with pytest.raises(AwaitingAnswers) as waiting:
        annotate_round(job, r1, 1, command)
    message = str(waiting.value)
    assert f"{run}/rounds/r1/to_annotate.jsonl" in message
    lines = [line.strip() for line in message.splitlines() if line.strip().startswith("labelwise annotate")]
    assert lines == [f"{command} --round 1 --export answers_r1.jsonl", f"{command} --round 1 --answers answers_r1.jsonl"]

    def run_printed(line: str) -> int:
        return cli.main(shlex.split(line)[1:])

    monkeypatch.chdir(tmp_path)
    assert run_printed(lines[0]) == 0
    exported = textio.read_jsonl(tmp_path / "answers_r1.jsonl")
    assert len(exported) == 4 and all(row["response"] == "" for row in exported)
    runio.write_jsonl(tmp_path / "answers_r1.jsonl", [{**row, "response": f"answer {row['id']}"} for row in exported[:3]])
    assert run_printed(lines[1]) == 1  # one prompt without an answer: nothing imported
    with pytest.raises(AwaitingAnswers):
        annotate_round(job, r1, 1, command)
    runio.write_jsonl(tmp_path / "answers_r1.jsonl", [{**row, "response": f"answer {row['id']}"} for row in exported])
    assert run_printed(lines[1]) == 0
    labeled = annotate_round(job, r1, 1, command)  # answered: the round goes on
    assert sorted(r["id"] for r in contracts.read_labeled(labeled)) == sorted(r["id"] for r in exported)
    assert all(r["response"].startswith("answer ") for r in contracts.read_labeled(labeled))

    # round 2 starts from the remainder; --round defaults to the latest exported round
    prepare(job, 2, log=quiet)
    left = pd.read_parquet(run / "rounds" / "r2" / contracts.POOL)
    assert len(left) == 16 and not set(left["id"]) & {r["id"] for r in exported}
    assert cli.main(["annotate", str(config), "--round", "3", "--simulate"]) == 2
    assert "the job has rounds 1 to 2" in capsys.readouterr().err


# ------------------------------------------------------------------ training: continue


def test_continue_warm_starts_from_the_previous_adapter(tmp_path, tiny_model_dir):
    """The worker's warm start loads a saved adapter's LoRA weights into a fresh LoRA model,
    and the adapter it starts from is an input of the training and part of its run name."""
    import torch
    from peft import get_peft_model_state_dict

    from labelwise.models import ModelConfig, load_model
    from labelwise.training import loop, stage
    from labelwise.training.config import TrainConfig
    from labelwise.training.worker import _load_weights

    cfg = TrainConfig()
    model, _ = load_model(ModelConfig(name=str(tiny_model_dir)), device="cpu")
    previous = loop.attach_lora(model, cfg, seed=1)
    with torch.no_grad():
        for name, p in previous.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # lora_B starts at zero: make round 1's adapter differ from any fresh one
    previous.save_pretrained(tmp_path / "r1_adapter")
    fresh, _ = load_model(ModelConfig(name=str(tiny_model_dir)), device="cpu")
    fresh = loop.attach_lora(fresh, cfg, seed=2)
    want = get_peft_model_state_dict(previous)
    assert any(not torch.equal(v, get_peft_model_state_dict(fresh)[k]) for k, v in want.items())
    _load_weights(tmp_path / "r1_adapter", fresh)
    got = get_peft_model_state_dict(fresh)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)

    job = job_of(tmp_path / "run", model={"name": str(tiny_model_dir)})
    labeled = tmp_path / "labeled.jsonl"
    runio.write_jsonl(labeled, [{"id": "a", "task": "t", "prompt": "p", "response": "r"}])
    assert stage.run_name(job, labeled) != stage.run_name(job, labeled, tmp_path / "r1_adapter")
    found = stage.inputs(job, {"r2/labeled.jsonl": labeled}, tmp_path / "r1_adapter")
    assert found["init_adapter"] == tmp_path / "r1_adapter" and found["r2/labeled.jsonl"] == labeled
    assert contracts.LABELED not in found and contracts.TRAIN_DATA in stage.outputs({"x": labeled})


def test_run_stops_for_answers_and_the_rerun_continues_after_the_import(tmp_path, monkeypatch):
    """`labelwise run` with real annotators: status "waiting for answers to round 1" and the
    commands to run; after the import the rerun goes past annotation to round 1's training.
    (The run's own pool, scores and base evaluation are written beforehand, and training is
    where this test stops: the rest is tests/test_rounds_e2e.py.)"""
    import io

    import labelwise.ray_start
    import labelwise.rounds.run
    from labelwise import cli, pipeline
    from labelwise.job import load_job

    run = tmp_path / "run"
    write_run(run)
    config = tmp_path / "job.yaml"
    config.write_text(f"run_dir: {run}\nselect: {{strategy: random, budget: 6}}\n"
                      "annotate: {simulate: false}\nrounds: {count: 2}\n")
    monkeypatch.setattr(labelwise.ray_start, "init_ray", lambda cfg: None)
    monkeypatch.setattr(pipeline, "stage_call", lambda name, job: None)  # pool, score, evaluate-base: on disk

    class Trained(Exception):
        pass

    def train_round(job, rjob, r):
        raise Trained(r)

    monkeypatch.setattr(labelwise.rounds.run, "train_round", train_round)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    summary = pipeline.run_pipeline(load_job(config), out=out, annotate_command=f"labelwise annotate {config}")
    assert summary["status"] == "waiting for answers to round 1"
    assert [s["stage"] for s in summary["stages"]][-1] == "r1/annotate" and summary["stages"][-1]["status"] == "waiting"
    assert json.loads((run / "summary.json").read_text())["status"] == "waiting for answers to round 1"
    assert f"labelwise annotate {config} --round 1 --answers answers_r1.jsonl" in out.getvalue()
    assert not (run / "report.md").exists()

    assert cli.main(["annotate", str(config), "--round", "1", "--export", "answers_r1.jsonl"]) == 0
    rows = textio.read_jsonl(tmp_path / "answers_r1.jsonl")
    runio.write_jsonl(tmp_path / "answers_r1.jsonl", [{**r, "response": "yes"} for r in rows])
    assert cli.main(["annotate", str(config), "--answers", "answers_r1.jsonl"]) == 0  # --round: the latest exported
    with pytest.raises(Trained):
        pipeline.run_pipeline(load_job(config), out=io.StringIO())
    stored = json.loads((run / "summary.json").read_text())
    assert {s["stage"]: s["status"] for s in stored["stages"]}["r1/annotate"] == "kept"
    assert stored["status"] == "failed at r1/train"


@pytest.mark.parametrize("training", ["retrain", "continue"])
def test_each_round_trains_on_the_labels_its_mode_names(tmp_path, monkeypatch, training):
    import labelwise.training.stage
    from labelwise.rounds.layout import round_job
    from labelwise.rounds.run import train_round

    seen = {}
    monkeypatch.setattr(labelwise.training.stage, "train",
                        lambda rjob, labeled, init_adapter=None: seen.setdefault(Path(rjob.run_dir).name, (labeled, init_adapter)))
    job = job_of(tmp_path / "run", rounds={"count": 3, "training": training}, select={"budget": 9})
    for r in (1, 2, 3):
        train_round(job, round_job(job, r), r)
    rounds = tmp_path / "run" / "rounds"
    assert seen["r1"] == ({"rounds/r1/labeled.jsonl": rounds / "r1" / "labeled.jsonl"}, None)
    if training == "retrain":  # from the base model on every label so far
        assert seen["r3"] == ({f"rounds/r{i}/labeled.jsonl": rounds / f"r{i}" / "labeled.jsonl" for i in (1, 2, 3)}, None)
    else:  # from the previous round's adapter on the new labels
        assert seen["r3"] == ({"rounds/r3/labeled.jsonl": rounds / "r3" / "labeled.jsonl"}, rounds / "r2" / "adapter")


def test_rounds_refuse_a_selector_that_reads_judgments():
    """Round folders do not carry judgments.parquet yet: refused at load, not at round 2's select."""
    from labelwise import config as cfg
    from labelwise.job import JobConfig

    with pytest.raises(cfg.ConfigError, match="select: thtb with these params reads judgments.parquet"):
        cfg.build(JobConfig, {"run_dir": "/tmp/x", "select": {"strategy": "thtb", "budget": 10},
                              "rounds": {"count": 2}}, "job")
