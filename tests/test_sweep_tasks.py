"""jobs/sweep_tasks.yaml, the selection benchmark sweep: its pool as the issue asks for it, and
a smoke run of the sweep itself (tiny random-weight model, 2 selectors x 2 seeds) on a real
local Ray, down to the report's paired statistics."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow]

JOB = Path(__file__).resolve().parents[1] / "jobs" / "sweep_tasks.yaml"


def test_sweep_tasks_pool_is_many_unequal_real_tasks(tmp_path):
    from labelwise.job import load_job
    from labelwise.pool.stage import build_pool, read_pool
    from labelwise.sweep.plan import plan_trials

    job = load_job(JOB, [f"run_dir={tmp_path / 'sweep'}"])
    trials = plan_trials(job.sweep)
    # random, TD, LC, k-center + WTD with 5 signals = 9 selectors x 2 budgets x 3 seeds
    assert len(trials) == 54 and {t["seed"] for t in trials} == {0, 1, 2}
    pool = read_pool(build_pool(job, log=lambda *a: None).parent)
    sizes = pool.groupby("task").size()
    assert len(sizes) >= 20 and sizes.max() >= 20 * sizes.min()
    assert (sizes <= 5).sum() >= 3  # tasks no larger than the paper's base
    assert set(pool["source"]) == {"flan_v2_cot", "sni", "niv2"}  # the packaged pool only: no download, no ../shared
    lengths = pool.groupby("task")["response"].apply(lambda r: r.str.len().median())
    assert lengths.max() > 20 * lengths.min()  # one-letter answers beside worked solutions
    budgets = sorted(job.sweep.budgets)
    assert 0.08 <= budgets[0] / len(pool) <= 0.12 and 0.16 <= budgets[1] / len(pool) <= 0.24


@pytest.mark.ray
def test_sweep_tasks_smoke_run_reports_paired_statistics(tmp_path, tiny_model_dir, local_ray):
    from labelwise.job import load_job
    from labelwise.sweep.stage import run_sweep

    sweep = tmp_path / "sweep"
    job = load_job(JOB, [
        f"run_dir={sweep}", f"model.name={tiny_model_dir}", "score.max_new_tokens=4", "score.use_ray=false",
        "score.embeddings=false", "train.epochs=1", "train.max_length=64", "evaluate.heldout.max_new_tokens=4",
        "sweep.strategies=[random, weighted_task_diversity]", "sweep.confidences=[length_calibrated]",
        "sweep.budgets=[40]", "sweep.seeds=[0, 1]",
    ])
    df = pd.read_csv(run_sweep(job, out=io.StringIO()))
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    assert set(df["selector"]) == {"random", "weighted_task_diversity (base=1, confidence=length_calibrated)"}
    per_task = [c for c in df.columns if c.startswith("task:") and c.endswith(":heldout.nll")]
    assert len(per_task) >= 15 and df[per_task].notna().any().all()
    assert (df[[c for c in df.columns if c.endswith(":selected")]].sum(axis=1) == 40).all()
    md = (sweep / "report.md").read_text()
    assert "Did it beat random? Paired differences (heldout.nll_macro)" in md
    assert "| weighted_task_diversity (base=1, confidence=length_calibrated) | 40 | random | 2 |" in md
    assert "Per task: weighted_task_diversity (base=1, confidence=length_calibrated) vs random" in md


def test_sweep_tasks_takes_thtb_and_hardness_with_a_judge_endpoint(tmp_path):
    """The job header's command for THTB on the benchmark sweep: an endpoint judge set from the
    command line, thtb and WTD with within_task hardness beside random, whose trials keep their
    names (and so their results) from the plain sweep."""
    from labelwise.job import load_job
    from labelwise.selection import needs_judgments
    from labelwise.sweep.plan import plan_trials
    from labelwise.sweep.stage import validate_trials

    job = load_job(JOB, [
        f"run_dir={tmp_path / 'sweep'}", "sweep.budgets=[40]",
        "sweep.strategies=[random, thtb, weighted_task_diversity]", "sweep.confidences=[length_calibrated]",
        "sweep.within_tasks=[hardness]", "judge.kind=openai", "judge.model=Qwen/Qwen3-32B",
        "judge.base_url=http://127.0.0.1:9/v1",
    ])
    trials = plan_trials(job.sweep)
    names = sorted(t["name"] for t in trials)
    assert len(names) == 9 and {"random-k40-s0", "random-k40-s1", "random-k40-s2"} < set(names)
    assert sum(n.startswith("thtb-") for n in names) == 3
    assert sum("in_hardness" in n for n in names) == 3
    jobs = validate_trials(job, trials)
    assert [needs_judgments(t.select) for t in jobs].count(True) == 6
    assert job.judge.kind == "openai" and job.judge.base_url == "http://127.0.0.1:9/v1"
