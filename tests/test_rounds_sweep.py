"""Rounds as a sweep dimension: the plan, the trial configs, and the report's learning curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from labelwise import config
from labelwise.sweep import plan


def sweep_job(sweep: dict, **extra):
    from labelwise.job import JobConfig

    return config.build(JobConfig, {"run_dir": "runs/x", "sweep": sweep, **extra}, "test.yaml")


def test_rounds_dimension_plans_one_batch_and_rounds_at_equal_budget(tmp_path):
    from labelwise.job import JobConfig

    job = sweep_job({"strategies": ["random", "task_diversity"], "budgets": [12], "seeds": [0, 1],
                     "rounds": [1, 3], "full_pool": False})
    trials = plan.plan_trials(job.sweep)
    assert [t["name"] for t in trials[:4]] == ["random-k12-s0-r1", "random-k12-s0-r3", "task_diversity-k12-s0-r1",
                                               "task_diversity-k12-s0-r3"]
    data = config.to_dict(job)
    one, three = (plan.build_trial_job(JobConfig, data, t, str(tmp_path / t["name"]), 100, 1, "sweep") for t in trials[:2])
    assert one.rounds is None and one.select.budget == 12
    assert three.rounds.count == 3 and three.rounds.per_round(three.select.budget) == [4, 4, 4]
    assert three.annotate.simulate is True and three.score.use_ray is False  # CPU trial: rescoring in the trial

    from labelwise.sweep.trial import selector_of

    assert selector_of(trials[0]) == "random" and selector_of(trials[1]) == "random ×3 rounds"


def test_sweeps_without_rounds_plan_the_same_trials_as_before():
    job = sweep_job({"strategies": ["random"], "budgets": [10], "seeds": [0]})
    assert plan.plan_trials(job.sweep) == [
        {"name": "random-k10-s0", "strategy": "random", "budget": 10, "base": None, "confidence": None, "within_task": None, "seed": 0,
         "grid": {}},
        {"name": "full-kall-s0", "strategy": "full", "budget": None, "base": None, "confidence": None, "within_task": None, "seed": 0,
         "grid": {}},
    ]


@pytest.mark.parametrize("sweep, message", [
    ({"rounds": [0, 2]}, "sweep.rounds: every number of rounds must be >= 1"),
    ({"rounds": [2, 2]}, "sweep.rounds: lists a number of rounds twice"),
    ({"rounds": [1, 5], "budgets": [4]}, "sweep.rounds: 5 rounds cannot split the budget 4"),
])
def test_sweep_rounds_errors_name_the_key(sweep, message):
    with pytest.raises(config.ConfigError, match=message):
        sweep_job(sweep)


def test_a_sweep_refuses_a_top_level_rounds_section():
    from labelwise.sweep.stage import validate_trials

    job = sweep_job({"budgets": [10]}, rounds={"count": 2}, select={"budget": 10})
    with pytest.raises(config.ConfigError, match="rounds: a sweep takes rounds as a dimension, sweep.rounds"):
        validate_trials(job, plan.plan_trials(job.sweep))


def results(tmp_path: Path) -> pd.DataFrame:
    """Two seeds of random one batch (k = 6, 12) and in 3 rounds of 4 (k = 12), with the rounds' files."""
    rows = []
    for seed in (0, 1):
        for budget, value in ((6, 2.0), (12, 1.6)):
            rows.append({"trial": f"random-k{budget}-s{seed}-r1", "strategy": "random", "selector": "random",
                         "budget": budget, "seed": seed, "rounds": 1, "status": "ok",
                         "heldout.nll_macro": value + seed / 10, "base_model.heldout.nll_macro": 3.0,
                         "run_dir": f"trials/random-k{budget}-s{seed}-r1"})
        name = f"random-k12-s{seed}-r3"
        rows.append({"trial": name, "strategy": "random", "selector": "random ×3 rounds", "budget": 12, "seed": seed,
                     "rounds": 3, "status": "ok", "heldout.nll_macro": 1.4 + seed / 10,
                     "base_model.heldout.nll_macro": 3.0, "run_dir": f"trials/{name}",
                     **{f"round:{r}:labels": 4 * r for r in (1, 2, 3)},
                     **{f"round:{r}:heldout.nll_macro": v + seed / 10 for r, v in ((1, 2.4), (2, 1.9), (3, 1.4))}})
        folder = tmp_path / "trials" / name / "rounds"
        folder.mkdir(parents=True)
        pd.DataFrame({"round": [1, 1, 2, 2, 3, 3], "task": ["a", "b"] * 3, "pool_size": 10,
                      "selected": [2, 2, 1, 3, 4, 0]}).to_csv(folder / "allocation.csv", index=False)
    return pd.DataFrame(rows)


def test_report_draws_learning_curves_and_per_round_allocation(tmp_path):
    from labelwise.report import rounds_report, sweep_report

    df = results(tmp_path)
    found = rounds_report.curves(sweep_report.with_selector(df), "heldout.nll_macro")
    assert found == {"random": {
        "one batch": [(0, 3.0), (6, pytest.approx(2.05)), (12, pytest.approx(1.65))],
        "×3 rounds (k=12)": [(0, 3.0), (4.0, pytest.approx(2.45)), (8.0, pytest.approx(1.95)), (12.0, pytest.approx(1.45))],
    }}
    text, files = sweep_report.build(df, tmp_path).markdown("report_files")
    assert "## Rounds: learning curves (heldout.nll_macro)" in text
    assert "### Per-round allocation: random ×3 rounds (k=12)" in text
    assert "| b | 2 | 3 | 0 |" in text
    assert any(name.endswith("rounds_heldout_nll_macro.png") for name in files)
    assert "round:1:heldout.nll_macro" not in sweep_report.metric_columns(df)


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_rounds_smoke_runs_rounds_trials_under_tune(tmp_path, tiny_model_dir, local_ray):
    """jobs/sweep_rounds.yaml on a tiny model and a real local Ray: a 3-round trial runs as a
    Tune trial (three selections from the remainder, rescoring with the adapter), next to one
    batch of the same total, down to the report's learning curves."""
    import io

    from labelwise.job import load_job
    from labelwise.sweep.stage import run_sweep

    job_file = Path(__file__).resolve().parents[1] / "jobs" / "sweep_rounds.yaml"
    sweep = tmp_path / "sweep"
    job = load_job(job_file, [
        f"run_dir={sweep}", f"model.name={tiny_model_dir}", "score.max_new_tokens=4", "score.use_ray=false",
        "train.epochs=1", "train.max_length=64", "evaluate.heldout.max_new_tokens=4",
        "sweep.strategies=[weighted_task_diversity]", "sweep.seeds=[0]",
    ])
    df = pd.read_csv(run_sweep(job, out=io.StringIO()))
    assert len(df) == 2 and set(df["status"]) == {"ok"}, df[["trial", "status", "error"]]
    three = df[df["trial"].str.contains("r3")].iloc[0]
    rounds = sweep / three["run_dir"] / "rounds"
    chosen = [pd.read_parquet(rounds / f"r{r}" / "selection.parquet")["id"].astype(str) for r in (1, 2, 3)]
    assert [len(c) for c in chosen] == [15, 15, 15]
    assert len(set().union(*map(set, chosen))) == 45  # no prompt chosen twice
    first = pd.read_parquet(rounds / "r1" / "scores.parquet").set_index("id")
    second = pd.read_parquet(rounds / "r2" / "scores.parquet").set_index("id")
    assert not set(second.index) & set(chosen[0])  # round 2 scored only the remainder
    shared = second.index.intersection(first.index)
    assert len(shared) == len(second) and (first.loc[shared, "logconf"] != second["logconf"]).any()
    curve = pd.read_csv(rounds / "curve.csv")
    rows = curve[curve["round"] > 0]  # the base model's row lives in the sweep, not the trial
    assert rows["labels"].tolist() == [15, 30, 45] and rows["heldout.nll_macro"].notna().all()
    md = (sweep / "report.md").read_text()
    assert "## Rounds: learning curves (heldout.nll_macro)" in md
    assert "### Per-round allocation: weighted_task_diversity (base=1) ×3 rounds (k=45)" in md
