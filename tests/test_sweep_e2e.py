"""A tiny sweep end to end on a real local Ray: killed after its first trial, then resumed.

Tiny random-weight model, a generated pool of 3 small tasks, 1 epoch; 2 trials (weighted
task diversity, full pool). The first run is a `labelwise sweep` process killed as soon as
one trial has finished; the rerun (in this process, on the session's local Ray) keeps that
trial as it is and runs the other, then writes results.csv and the report.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from cli_process import kill_when
from tiny_jobs import results_in, tiny_sweep_yaml

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_tiny_sweep_killed_then_resumed(tmp_path, tiny_model_dir, local_ray):
    from labelwise.job import load_job
    from labelwise.sweep.stage import run_sweep

    config = tiny_sweep_yaml(tmp_path, tiny_model_dir)
    sweep = tmp_path / "sweep"
    kill_when(["sweep", str(config)], lambda: bool(results_in(sweep)), tmp_path / "first_run.log",
              timeout_s=300)  # a loaded 2-core machine needs more than 2 minutes
    first = results_in(sweep)
    assert len(first) < 2, "the first run should have been killed before the end"
    kept = {p: p.read_text() for p in first}
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    assert not (sweep / "results.csv").exists()

    job = load_job(config)
    path = run_sweep(job)

    for p, text in kept.items():  # finished trials are kept, not redone
        assert p.read_text() == text and p.stat().st_mtime_ns == mtimes[p]
    df = pd.read_csv(path)
    assert len(df) == 2 and set(df["status"]) == {"ok"}
    assert set(df["strategy"]) == {"weighted_task_diversity", "full"}
    assert df.loc[df.strategy == "weighted_task_diversity", "selector"].item() == "weighted_task_diversity (base=2)"
    pool_size = len(pd.read_parquet(sweep / "pool.parquet"))
    assert df.loc[df.strategy == "full", "budget"].item() == pool_size == df.loc[df.strategy == "full", "n_labeled"].item()
    assert (df.loc[df.strategy != "full", "n_labeled"] == 6).all()
    metric_cols = [c for c in df.columns if c.startswith("heldout.")]
    assert metric_cols and df[metric_cols].notna().all().all()
    assert any(c.startswith("base_model.heldout.") for c in df.columns)
    for run_dir in df["run_dir"]:
        trial = sweep / run_dir
        assert (trial / "adapter" / "adapter_config.json").exists()
        assert (trial / "pool.parquet").resolve() == (sweep / "pool.parquet").resolve()  # shared, not rebuilt
        labeled = [json.loads(l) for l in (trial / "labeled.jsonl").read_text().splitlines()]
        assert len({r["id"] for r in labeled}) == len(labeled)
    md = (sweep / "report.md").read_text()
    assert "| Strategy | k = 6 | Full (" in md and "**" in md
    assert "data:image/png;base64," in (sweep / "report.html").read_text()

    # a third run has nothing left to do
    t = time.monotonic()
    run_sweep(load_job(config))
    assert time.monotonic() - t < 60
    assert pd.read_csv(path)["trial"].tolist() == df["trial"].tolist()
