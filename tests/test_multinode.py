"""A real multi-node Ray on this machine: a head (2 CPUs, job server) and a second node with
1 CPU and 1 declared GPU, started with `ray start` as separate processes
(cluster/local_cluster.py). Work is submitted the way users submit it, with
`ray job submit` / jobs/submit_job.sh, and the outputs are checked in the run folders.
Only the processes the fixture started are stopped (by process group and descent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cluster"))
from local_cluster import LocalCluster, NodeSpec  # noqa: E402

sys.path.remove(str(REPO / "cluster"))

pytestmark = [pytest.mark.slow, pytest.mark.ray]

RUNTIME_ENV = {
    "py_modules": ["platform/labelwise"],
    "excludes": [".venv", "runs", ".git", "**/__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"],
    "env_vars": {"HF_HUB_OFFLINE": "1"},
}


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster(
        head_cpus=2,
        workers=[NodeSpec(num_cpus=1, num_gpus=1)],
        env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"},
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()
        assert not c._our_pids(), "processes of the test cluster survived stop()"


def wait_for_job(cluster: LocalCluster, job_id: str, timeout_s: float) -> tuple[str, str]:
    """Poll the job server until the job ends; return (status, logs). Runs in a subprocess so
    this test process's own Ray state (other tests' local Ray) is left alone."""
    code = (
        "import sys, time\n"
        "from ray.job_submission import JobSubmissionClient, JobStatus\n"
        "client = JobSubmissionClient()\n"
        f"deadline = time.time() + {timeout_s}\n"
        f"job = {job_id!r}\n"
        "while time.time() < deadline:\n"
        "    status = client.get_job_status(job)\n"
        "    if status.is_terminal(): break\n"
        "    time.sleep(1)\n"
        "else:\n"
        "    client.stop_job(job); status = 'TIMEOUT'\n"
        "print(str(getattr(status, 'value', status)))\n"
        "print(client.get_job_logs(job)[-6000:])\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=cluster.client_env(), capture_output=True, text=True, timeout=timeout_s + 60
    )
    if r.returncode != 0:
        raise AssertionError(f"could not follow job {job_id}: {r.stderr[-3000:]}")
    status, _, logs = r.stdout.partition("\n")
    return status.strip(), logs


def submit_with_wrapper(cluster: LocalCluster, job_id: str, *labelwise_args: str) -> None:
    """Submit through jobs/submit_job.sh, the command users run (--no-wait, then we poll)."""
    r = subprocess.run(
        [str(REPO / "jobs" / "submit_job.sh"), "--no-wait", "--job-id", job_id, *labelwise_args],
        env={**cluster.client_env(), "PYTHON": sys.executable, "RAY": str(Path(sys.executable).parent / "ray")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"submit failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


# The worker node's GPU is declared, not real. The run keeps model.device: auto, so scoring
# takes the GPU path (actors placed with num_gpus=1 on the GPU node, loading the model on the
# device they really have: the CPU); training has 1 GPU for 2 workers and trains on CPU. The
# sweep runs with model.device=cpu (its one-worker trials would otherwise ask for the GPU
# and NCCL, which this machine cannot give).


PROBE = r"""
import json, ray, labelwise
ray.init()
@ray.remote(num_gpus=1)
def on_gpu():
    import labelwise
    return ray.get_runtime_context().get_node_id(), ray.get_gpu_ids(), labelwise.__file__
node, gpus, where = ray.get(on_gpu.remote())
nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
print("PROBE " + json.dumps({
    "nodes": len(nodes), "gpu_node_gpus": nodes[node]["Resources"].get("GPU", 0), "gpu_ids": gpus,
    "driver_labelwise": labelwise.__file__, "worker_labelwise": where,
    "cluster": ray.cluster_resources(),
}))
"""


def test_a_gpu_task_runs_on_the_gpu_node_with_the_submitted_code(cluster):
    job_id = "probe-gpu"
    r = subprocess.run(
        [
            "ray", "job", "submit", "--no-wait", "--submission-id", job_id,
            "--working-dir", ".", "--runtime-env-json", json.dumps(RUNTIME_ENV),
            "--", "python", "-c", PROBE,
        ],
        cwd=REPO, env=cluster.client_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    status, logs = wait_for_job(cluster, job_id, timeout_s=60)
    assert status == "SUCCEEDED", logs
    probe = json.loads(next(line for line in logs.splitlines() if line.startswith("PROBE "))[6:])
    assert probe["nodes"] == 2
    assert probe["cluster"]["CPU"] == 3 and probe["cluster"]["GPU"] == 1
    assert probe["gpu_node_gpus"] == 1 and probe["gpu_ids"] == [0]
    # py_modules: the submitted checkout is what the driver and the workers import.
    for key in ("driver_labelwise", "worker_labelwise"):
        assert "runtime_resources/py_modules_files" in probe[key], probe[key]


def test_labelwise_run_as_a_submitted_job(cluster, tiny_model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("multinode-run")
    run_dir = base / "run"
    submit_with_wrapper(
        cluster, "labelwise-run-tiny", "run", "jobs/cluster_tiny.yaml",
        "--set", f"run_dir={run_dir}", "--set", f"ray.storage={base / 'ray_results'}",
        "--set", f"model.name={tiny_model_dir}", "--no-report",
    )  # fmt: skip
    status, logs = wait_for_job(cluster, "labelwise-run-tiny", timeout_s=300)
    assert status == "SUCCEEDED", logs

    import pandas as pd

    pool = pd.read_parquet(run_dir / "pool.parquet")
    scores = pd.read_parquet(run_dir / "scores.parquet")
    assert set(scores["id"]) == set(pool["id"]) and scores["error"].isna().all()
    executor = json.loads((run_dir / "score_summary.json").read_text())["run"]["executor"]
    assert executor["where"] == "ray data"
    assert executor["actors"]["device"] == "cuda" and executor["actors"]["num_gpus"] == 1  # the GPU path
    selection = pd.read_parquet(run_dir / "selection.parquet")
    assert len(selection) == 12 and selection["id"].is_unique and set(selection["id"]) <= set(pool["id"])
    labeled = [json.loads(line) for line in (run_dir / "labeled.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in labeled) == sorted(selection["id"])
    assert (run_dir / "adapter" / "adapter_config.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"base", "adapted"} <= set(metrics) and "heldout" in metrics["adapted"]


def test_labelwise_sweep_as_a_submitted_job(cluster, tiny_model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("multinode-sweep")
    run_dir = base / "sweep"
    submit_with_wrapper(
        cluster, "labelwise-sweep-tiny", "sweep", "jobs/cluster_sweep_tiny.yaml",
        "--set", f"run_dir={run_dir}", "--set", f"ray.storage={base / 'ray_results'}",
        "--set", f"model.name={tiny_model_dir}", "--set", "model.device=cpu",
        "--set", "sweep.report=false",
    )  # fmt: skip
    status, logs = wait_for_job(cluster, "labelwise-sweep-tiny", timeout_s=360)
    assert status == "SUCCEEDED", logs

    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    assert len(results) == 2, results  # random and WTD at budget 8
    assert set(results["strategy"]) == {"random", "weighted_task_diversity"}
    trials = sorted(p for p in (run_dir / "trials").iterdir() if p.is_dir())
    assert len(trials) == 2, [p.name for p in trials]
    for trial in trials:
        assert (trial / "trial_result.json").exists()
        assert len(pd.read_parquet(trial / "selection.parquet")) == 8
        assert "adapted" in json.loads((trial / "metrics.json").read_text())
