"""Multi-round runs end to end: a real 2-round `labelwise run` on a tiny random-weight model
and a real local Ray (round 2 rescored on Ray Data with round 1's adapter), then a copy of
it whose round 2 is killed mid-round (SIGKILL at a write point of its select stage) and
rerun: it finishes with the same files as the uninterrupted run (same seeds, same results).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli_process import cli_command, cli_env

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def rounds_yaml(tmp_path: Path, model_dir: Path, run: Path, **rounds) -> Path:
    data = {
        "run_dir": str(run),
        "seed": 0,
        "ray": {"num_cpus": 2},
        "model": {"name": str(model_dir)},
        "pool": {"source": "builtin:skills", "max_tasks": 3, "max_per_task": 8,
                 "test_fraction": 0.25, "test_max_per_task": 2},
        "score": {"max_new_tokens": 4, "batch_size": 8, "embeddings": False, "use_ray": True, "max_actors": 1},
        "select": {"strategy": "weighted_task_diversity", "budget": 8, "params": {"base": 1}},
        "train": {"epochs": 1, "batch_size": 4, "max_length": 64, "lr": 0.05},
        "evaluate": {"benchmarks": ["heldout"], "heldout": {"max_new_tokens": 4}, "use_ray": False},
        "rounds": {"count": 2, "budgets": [4, 4], **rounds},
    }
    path = tmp_path / f"{run.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory, tiny_model_dir, local_ray):
    from labelwise.job import load_job
    from labelwise.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("rounds")
    config = rounds_yaml(tmp, tiny_model_dir, tmp / "run")
    out = io.StringIO()
    summary = run_pipeline(load_job(config), out=out)
    return tmp / "run", config, summary, out.getvalue()


def copy_run(run: Path, config: Path, tmp_path: Path, name: str, **rounds) -> tuple[Path, Path]:
    """A copy of the finished run (without its Ray folder) and its config pointing at the copy,
    with ``rounds`` keys changed."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("ray"))
    cfg = yaml.safe_load(config.read_text())
    cfg["run_dir"] = str(copy)
    cfg["rounds"].update(rounds)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return copy, path


def ids(path: Path) -> list[str]:
    return pd.read_parquet(path, columns=["id"])["id"].astype(str).tolist()


def test_two_rounds_select_from_the_remainder_and_rescore_with_the_adapter(two_rounds):
    run, _, summary, text = two_rounds
    assert summary["status"] == "done", text
    r1, r2 = run / "rounds" / "r1", run / "rounds" / "r2"
    for r in (r1, r2):
        for name in ("pool.parquet", "test.parquet", "scores.parquet", "selection.parquet", "allocation.csv",
                     "to_annotate.jsonl", "labeled.jsonl", "adapter", "metrics.json", ".manifests/select.json"):
            assert (r / name).exists(), f"{r / name} is missing"
    pool = ids(run / "pool.parquet")
    first, second = ids(r1 / "selection.parquet"), ids(r2 / "selection.parquet")
    assert len(first) == len(second) == 4
    assert not set(first) & set(second)  # no prompt selected twice
    assert sorted(ids(r2 / "pool.parquet")) == sorted(set(pool) - set(first))  # round 2 sees only the remainder
    assert sorted(ids(r2 / "scores.parquet")) == sorted(ids(r2 / "pool.parquet"))
    alloc = pd.read_csv(r2 / "allocation.csv")
    assert alloc["pool_size"].sum() == len(pool) - 4  # allocation sees the current pool sizes

    # round 2's confidences come from base + round 1's adapter, on Ray Data
    base = pd.read_parquet(run / "scores.parquet").set_index("id")
    adapted = pd.read_parquet(r2 / "scores.parquet").set_index("id")
    common = adapted.index
    assert (base.loc[common, "logconf"] - adapted.loc[common, "logconf"]).abs().max() > 1e-4
    score_summary = json.loads((r2 / "score_summary.json").read_text())
    assert score_summary["settings"]["adapter"].startswith("folder:")
    assert score_summary["run"]["executor"]["where"] == "ray data"
    assert "adapter" not in json.loads((run / "score_summary.json").read_text())["settings"]

    # retrain (the default): round 2 trains from the base model on both rounds' labels
    trained = [json.loads(line)["id"] for line in (r2 / "train_data.jsonl").read_text().splitlines()]
    assert trained == first + [row for row in second] or sorted(trained) == sorted(first + second)
    assert json.loads((r2 / "train_summary.json").read_text())["init_adapter"] is None

    curve = pd.read_csv(run / "rounds" / "curve.csv")
    assert curve["round"].tolist() == [0, 1, 2] and curve["labels"].tolist() == [0, 4, 8]
    assert curve["heldout.nll_macro"].notna().all()
    assert set(pd.read_csv(run / "rounds" / "allocation.csv")["round"]) == {1, 2}
    report = (run / "report.md").read_text()
    assert "## Rounds" in report and "### Per-round allocation" in report
    assert [s["stage"] for s in summary["stages"]][-6:] == [
        "r2/round", "r2/score", "r2/select", "r2/annotate", "r2/train", "r2/evaluate"]


def test_round_killed_mid_round_then_rerun_gives_the_same_outputs(two_rounds, tmp_path):
    """Round 2 of a copy of the run is done again, killed (SIGKILL) inside its first stage
    (the remainder staged, not committed), then rerun: every round-2 file equals the
    uninterrupted run's (rescoring, selection, training and evaluation with the same seeds)."""
    from labelwise.job import load_job
    from labelwise.pipeline import run_pipeline

    run, config, _, _ = two_rounds
    copy, config2 = copy_run(run, config, tmp_path, "copy.yaml")
    shutil.rmtree(copy / "rounds" / "r2")
    killed = subprocess.run(cli_command("run", str(config2)),
                            env=cli_env(LABELWISE_FAULT="round:2:kill"),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert list((copy / "rounds" / "r2" / ".staging" / "round").iterdir())  # killed mid-stage
    assert not (copy / "rounds" / "r2" / "pool.parquet").exists()

    summary = run_pipeline(load_job(config2), out=io.StringIO())
    status = {s["stage"]: s["status"] for s in summary["stages"]}
    assert summary["status"] == "done"
    assert all(status[s] == "kept" for s in ("pool", "score", "evaluate-base", "r1/select", "r1/train", "r1/evaluate"))
    assert all(status[f"r2/{s}"] == "ran" for s in ("round", "score", "select", "annotate", "train", "evaluate"))
    a, b = run / "rounds" / "r2", copy / "rounds" / "r2"
    for name in ("pool.parquet", "selection.parquet", "allocation.csv", "to_annotate.jsonl", "labeled.jsonl",
                 "train_data.jsonl", "adapter/adapter_model.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = pd.read_parquet(a / "scores.parquet"), pd.read_parquet(b / "scores.parquet")
    pd.testing.assert_frame_equal(sa, sb)
    ma, mb = (json.loads((x / "metrics.json").read_text())["adapted"]["heldout"] for x in (a, b))
    assert ma["nll_macro"] == mb["nll_macro"]


def test_continue_reruns_only_round_2_training_warm_started_on_ray_train(two_rounds, tmp_path):
    """A copy of the finished run switched to `training: continue` and rerun: the rounds'
    selections are kept, and round 2 trains again on Ray Train from round 1's adapter, on
    round 2's labels only, into a different adapter."""
    from labelwise.job import load_job
    from labelwise.pipeline import run_pipeline

    run, config, _, _ = two_rounds
    copy, config2 = copy_run(run, config, tmp_path, "continue.yaml", training="continue")
    summary = run_pipeline(load_job(config2), out=io.StringIO())
    status = {s["stage"]: s["status"] for s in summary["stages"]}
    assert summary["status"] == "done"
    assert all(status[f"r{r}/{s}"] == "kept" for r in (1, 2) for s in ("select", "annotate"))
    assert status["r2/train"] == "ran" and status["r2/evaluate"] == "ran"
    r1, r2 = copy / "rounds" / "r1", copy / "rounds" / "r2"
    trained = [json.loads(line)["id"] for line in (r2 / "train_data.jsonl").read_text().splitlines()]
    assert sorted(trained) == sorted(ids(r2 / "selection.parquet"))  # round 2's labels only
    init = json.loads((r2 / "train_summary.json").read_text())["init_adapter"]
    assert init is not None and Path(init).resolve() == (r1 / "adapter").resolve()
    weights = "adapter/adapter_model.safetensors"
    assert (r2 / weights).read_bytes() != (run / "rounds" / "r2" / weights).read_bytes()
    assert (r2 / weights).read_bytes() != (r1 / weights).read_bytes()
