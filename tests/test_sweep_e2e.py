"""A tiny sweep end to end on a real local Ray: killed after its first trial, then resumed.

Tiny random-weight model, a generated pool of 3 small tasks, 1 epoch; 2 trials (weighted
task diversity, full pool). The first run is a `labelwise sweep` process killed as soon as
one trial has finished; the rerun (in this process, on the session's local Ray) keeps that
trial as it is and runs the other, then writes results.csv and the report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli_process import kill_when

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def tiny_sweep_yaml(tmp_path: Path, model_dir: Path) -> Path:
    data = {
        "run_dir": str(tmp_path / "sweep"),
        "seed": 0,
        "ray": {"num_cpus": 2},
        "model": {"name": str(model_dir)},
        "pool": {"source": "builtin:skills", "max_tasks": 3, "max_per_task": 8,
                 "test_fraction": 0.25, "test_max_per_task": 2},
        "score": {"max_new_tokens": 4, "batch_size": 8, "embeddings": False, "use_ray": False},
        "train": {"epochs": 1, "batch_size": 4, "max_length": 64},
        "evaluate": {"benchmarks": ["heldout"], "heldout": {"max_new_tokens": 4}},
        "sweep": {"strategies": ["weighted_task_diversity"], "budgets": [6], "seeds": [0],
                  "bases": [2], "full_pool": True},
    }
    path = tmp_path / "tiny_sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def results_in(sweep: Path) -> list[Path]:
    return sorted(sweep.glob("trials/*/trial_result.json"))


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


def test_tiny_decided_sweep_adds_seeds_only_while_undecided_and_goes_on_with_a_larger_max_seeds(
        tmp_path, tiny_model_dir, local_ray):
    """sweep.decide through the real Tune path: look 1 (2 seeds) runs both selectors; a rerun
    with max_seeds raised to the next look runs seed 2 only for the comparison still undecided,
    keeps the trials done, and the comparison's path gains that look."""
    from labelwise.contracts import SWEEP_DECISIONS
    from labelwise.job import load_job
    from labelwise.sweep.stage import run_sweep

    config = tiny_sweep_yaml(tmp_path, tiny_model_dir)
    sweep = tmp_path / "sweep"
    data = yaml.safe_load(config.read_text())
    # delta 1e-6: never equivalent; OBF's level at 2 seeds (1 degree of freedom) stops only on two
    # nearly equal differences, so look 1 leaves the comparison undecided
    data["sweep"].update({"strategies": ["random", "task_diversity"], "seeds": [0, 1, 2], "full_pool": False,
                          "decide": {"delta": 1e-6, "references": ["random"], "looks": [2, 3], "max_seeds": 2}})
    config.write_text(yaml.safe_dump(data))
    run_sweep(load_job(config))
    first = {p: (p.read_text(), p.stat().st_mtime_ns) for p in results_in(sweep)}
    assert sorted(p.parent.name for p in first) == [
        "random-k6-s0", "random-k6-s1", "task_diversity-k6-s0", "task_diversity-k6-s1"]
    (c,) = json.loads((sweep / SWEEP_DECISIONS).read_text())["comparisons"]
    assert (c["selector"], c["reference"], c["budget"], c["verdict"], c["seeds"]) == ("task_diversity", "random", 6, "undecided", 2)
    assert c["seeds_used"] == [0, 1] and len(c["path"]) == 1 and c["next_look"] is None  # max_seeds reached

    data["sweep"]["decide"]["max_seeds"] = 3
    config.write_text(yaml.safe_dump(data))
    df = pd.read_csv(run_sweep(load_job(config)))
    for p, (text, mtime) in first.items():  # kept, not rerun
        assert p.read_text() == text and p.stat().st_mtime_ns == mtime
    assert sorted(df["trial"]) == sorted([p.parent.name for p in first] + ["random-k6-s2", "task_diversity-k6-s2"])
    assert set(df["status"]) == {"ok"}
    (c,) = json.loads((sweep / SWEEP_DECISIONS).read_text())["comparisons"]
    assert c["seeds"] == 3 and c["seeds_used"] == [0, 1, 2] and len(c["path"]) == 2
    assert c["verdict"] in ("better", "worse", "undecided") and c["reason"]
    diff = df.set_index("trial")["heldout.nll_macro"]
    path_mean = c["path"][-1]["mean"]
    assert path_mean == pytest.approx(sum(diff[f"task_diversity-k6-s{s}"] - diff[f"random-k6-s{s}"] for s in range(3)) / 3)
    assert "Decisions with sequential seeds" in (sweep / "report.md").read_text()
