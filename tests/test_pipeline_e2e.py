"""labelwise run end to end on a real local Ray: killed during training, then resumed.

Tiny random-weight model and a generated pool; the first `labelwise run` process is killed
once the labels are written (training is under way); the rerun keeps pool, scores, selection
and labels as they are, trains, evaluates and writes summary.json and the report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cli_process import kill_when
from tiny_jobs import tiny_job, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def tiny_run_yaml(tmp_path: Path, model_dir: Path) -> Path:
    data = tiny_job(tmp_path / "run", model_dir)
    data["select"] = {"strategy": "weighted_task_diversity", "budget": 8, "params": {"base": 2}}
    data["train"]["epochs"] = 2
    return write_yaml(tmp_path / "tiny_run.yaml", data)


def test_run_killed_during_training_then_resumed(tmp_path, tiny_model_dir, local_ray):
    from labelwise import contracts
    from labelwise.job import load_job
    from labelwise.pipeline import run_pipeline

    config = tiny_run_yaml(tmp_path, tiny_model_dir)
    run = tmp_path / "run"
    kill_when(["run", str(config)], (run / contracts.LABELED).exists, tmp_path / "first_run.log", timeout_s=120)
    assert not (run / contracts.METRICS).exists() or "adapted" not in json.loads((run / contracts.METRICS).read_text())
    kept = [contracts.POOL, contracts.SCORES, contracts.SELECTION, contracts.LABELED]
    before = {n: (run / n).stat().st_mtime_ns for n in kept}
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["status"] == "running" and stopped["stages"][-1]["stage"] in ("annotate", "train")

    out = io.StringIO()
    summary = run_pipeline(load_job(config), out=out)

    assert {n: (run / n).stat().st_mtime_ns for n in kept} == before
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert [statuses[s] for s in ("pool", "score", "select")] == ["kept"] * 3
    assert statuses["train"] == "ran" and statuses["evaluate-adapted"] == "ran"
    assert summary["status"] == "done"
    assert set(summary["metrics"]) == {"base", "adapted"}
    assert (run / "adapter" / "adapter_config.json").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "done"
    text = out.getvalue()
    assert "results:" in text and "report.html" in text and "heldout." in text
    assert "loss.png" in (run / "report.md").read_text()
