"""Autoscaling and node loss on one machine: Ray's own autoscaler with its fake multi-node
provider (cluster/local_autoscaling.py) grows and shrinks a real cluster under a labelwise
sweep, and nodes are killed under a running sweep and a running scoring.

The head holds no work (CPU 0, as cluster/aws.yaml's head); the worker types start at zero:
``cpu`` (2 CPUs, up to 2 nodes) and ``gpu`` (1 CPU, 1 declared GPU, 1 node). Every node the
autoscaler launches is a real raylet on this machine; idle nodes go after 6 s.

To fit CI's budget, one sweep run (2 trials at once, tiny random-weight model) serves both
the autoscaling test and the node-loss test: the node of a training worker is killed (its
raylet, by pid) once training has started; the sweep must still finish with every trial ok
and the same metrics, to 4 decimals, as the same sweep on a static local Ray (run in a
process of its own at the same time). Node counts are polled from ``ray.nodes()`` by a
process of their own for the whole module and printed at the end (``-s`` shows them).

Only the processes this module started are stopped (by process group and descent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cli_process import cli_command, cli_env

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cluster"))
from local_autoscaling import LocalAutoscalingCluster  # noqa: E402

sys.path.remove(str(REPO / "cluster"))

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.autoscaling]

WORKER_TYPES = {
    "cpu": {"resources": {"CPU": 2}, "min_workers": 0, "max_workers": 2},
    "gpu": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0, "max_workers": 1},
}
IDLE_TIMEOUT_MIN = 0.1  # 6 s
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

POLLER = r"""
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
with open(sys.argv[2], "a") as out:
    while True:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        kinds = {"head": 0, "cpu": 0, "gpu": 0}
        for n in nodes:
            r = n["Resources"]
            kinds["gpu" if r.get("GPU") else "cpu" if r.get("CPU") else "head"] += 1
        out.write(json.dumps({"t": time.time(), **kinds}) + "\n")
        out.flush()
        time.sleep(0.5)
"""


def sweep_config(path: Path, run_dir: Path, model_dir: Path, **sweep) -> Path:
    """The tiny sweep: 2 trials (random, WTD at k=6), 1 epoch of 6 steps, CPU; a checkpoint
    after every step."""
    data = {
        "run_dir": str(run_dir),
        "seed": 0,
        "ray": {"num_cpus": 2},
        "model": {"name": str(model_dir), "device": "cpu"},
        "pool": {"source": "builtin:skills", "max_tasks": 3, "max_per_task": 8,
                 "test_fraction": 0.25, "test_max_per_task": 2},
        "score": {"max_new_tokens": 4, "batch_size": 1, "embeddings": False, "use_ray": False},
        "train": {"epochs": 1, "batch_size": 1, "max_length": 64, "checkpoint_every": 1},
        "evaluate": {"benchmarks": ["heldout"], "heldout": {"max_new_tokens": 4}},
        "sweep": {"strategies": ["random", "weighted_task_diversity"], "budgets": [6], "seeds": [0],
                  "bases": [2], "full_pool": False, "report": False, **sweep},
    }
    path.write_text(yaml.safe_dump(data))
    return path


class Timeline:
    """Node counts over time, from the poller's lines."""

    def __init__(self, path: Path, t0: float):
        self.path, self.t0 = path, t0

    def rows(self, since: float = 0, until: float = float("inf")) -> list[dict]:
        out = []
        text = self.path.read_text() if self.path.exists() else ""
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line being written
            if since <= row["t"] <= until:
                out.append(row)
        return out

    def changes(self) -> list[str]:
        """``+12.5s cpu=1 gpu=0`` at every change of the counts."""
        out, last = [], None
        for row in self.rows():
            now = (row["cpu"], row["gpu"])
            if now != last:
                out.append(f"+{row['t'] - self.t0:.1f}s cpu={row['cpu']} gpu={row['gpu']}")
                last = now
        return out

    def wait_for(self, pred, timeout_s: float) -> dict | None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            rows = self.rows()
            if rows and pred(rows[-1]):
                return rows[-1]
            time.sleep(0.5)
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalAutoscalingCluster(worker_types=WORKER_TYPES, idle_timeout_minutes=IDLE_TIMEOUT_MIN, env=ENV)
    t0 = time.time()
    c.start()  # stops what it started when it fails
    timeline_path = tmp_path_factory.mktemp("autoscaling") / "nodes.jsonl"
    c.timeline = Timeline(timeline_path, t0)
    poller = None
    try:
        with open(timeline_path.with_suffix(".log"), "w") as poller_log:
            poller = subprocess.Popen([sys.executable, "-c", POLLER, c.address, str(timeline_path)],
                                      env=c.node_env(), stdout=poller_log, stderr=subprocess.STDOUT)
        assert c.timeline.wait_for(lambda r: True, 60), timeline_path.with_suffix(".log").read_text()[-3000:]
        yield c
    finally:
        try:
            if poller is not None:
                poller.kill()
                poller.wait(timeout=30)
            (timeline_path.parent / "monitor.log").write_text(c.monitor_log())
            print("\nnode counts over time (worker nodes by type; the head is always there):")
            print("\n".join(c.timeline.changes()))
        finally:  # whatever failed above, the cluster is stopped
            c.stop()
        assert not c._our_pids(), "processes of the test cluster survived stop()"


@pytest.fixture(scope="module")
def static_reference(tiny_model_dir, tmp_path_factory):
    """The same sweep on a static local Ray of 2 CPUs, in a process of its own (it runs while
    the autoscaling cluster does its part); yields a function that waits for results.csv."""
    base = tmp_path_factory.mktemp("static")
    config = sweep_config(base / "sweep.yaml", base / "sweep", tiny_model_dir)
    log = open(base / "sweep.log", "w")
    proc = subprocess.Popen(cli_command("sweep", str(config)), stdout=log, stderr=subprocess.STDOUT,
                            env=cli_env(**ENV), start_new_session=True)

    def wait(timeout_s: float = 420) -> Path:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        assert proc.returncode == 0, (base / "sweep.log").read_text()[-4000:]
        return base / "sweep"

    try:
        yield wait
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        log.close()


# ------------------------------------------------------------------ process helpers
def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def ray_workers(cluster, title: str) -> dict[int, int]:
    """{pid: pid of its raylet} of this cluster's worker processes whose title holds ``title``
    (Ray names them ray::<Class>.<method>); the raylet is the worker's parent."""
    raylets = cluster.raylet_pids()
    out = {}
    for pid in cluster._our_pids():
        if title in _cmdline(pid) and _ppid(pid) in raylets:
            out[pid] = _ppid(pid)
    return out


def kill_raylet(cluster, raylet_pid: int) -> None:
    cluster.kill_node(cluster.raylet_pids()[raylet_pid])


# ------------------------------------------------------------------ the sweep
@pytest.fixture(scope="module")
def sweep_run(cluster, tiny_model_dir, tmp_path_factory, static_reference):
    """`labelwise sweep` against the autoscaling cluster (2 trials at once); once a training
    worker runs, the node it runs on is killed. Returns what the tests check."""
    base = tmp_path_factory.mktemp("as-sweep")
    run_dir = base / "sweep"
    config = sweep_config(base / "sweep.yaml", run_dir, tiny_model_dir, max_concurrent_trials=2)
    env = {**cluster.node_env(), **ENV}
    log_path = base / "sweep.log"
    before = cluster.timeline.wait_for(lambda r: r["cpu"] == 0 and r["gpu"] == 0, 60)
    assert before is not None, "worker nodes up before the sweep started"
    start = time.time()
    killed = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cli_command("sweep", str(config)), stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            deadline = time.time() + 400
            while proc.poll() is None and time.time() < deadline:
                if killed is None:
                    # a trial has written its first training checkpoint: it is training now
                    checkpoints = sorted(run_dir.glob("trials/*/ray/*/checkpoint_step*"))
                    trainers = ray_workers(cluster, "RayTrainWorker")
                    if checkpoints and trainers:
                        raylets = sorted(set(trainers.values()))
                        killed = {
                            "t": time.time(),
                            "nodes": len(raylets),
                            "trial_processes_on_them": sum(r in raylets for r in ray_workers(cluster, "ImplicitFunc").values()),
                            "checkpoints": [str(p.relative_to(run_dir)) for p in checkpoints],
                        }
                        for raylet in raylets:  # every node a training worker runs on
                            kill_raylet(cluster, raylet)
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    end = time.time()
    assert proc.returncode == 0, log_path.read_text()[-5000:]
    return {
        "run_dir": run_dir,
        "log": log_path.read_text(),
        "start": start,
        "end": end,
        "killed": killed,
        "reference": static_reference(),
    }


def _metrics(results):
    import pandas as pd

    df = pd.read_csv(results).set_index("trial").sort_index()
    cols = [c for c in df.columns if c.startswith(("heldout.", "task:")) and pd.api.types.is_numeric_dtype(df[c])]
    return df, cols


def test_sweep_grows_the_cluster(cluster, sweep_run):
    import pandas as pd

    timeline = cluster.timeline
    during = timeline.rows(sweep_run["start"], sweep_run["end"])
    assert during and during[0]["cpu"] == 0, "the sweep did not start on a cluster without workers"
    assert max(r["cpu"] for r in during) >= 2, f"fewer than 2 CPU workers were launched: {timeline.changes()}"
    monitor = cluster.monitor_log()
    assert "Adding" in monitor and "of type cpu" in monitor, monitor[-3000:]

    df, cols = _metrics(sweep_run["run_dir"] / "results.csv")
    ref, ref_cols = _metrics(sweep_run["reference"] / "results.csv")
    assert len(df) == 2 and set(df["status"]) == {"ok"}, df[["status", "error"]]
    assert cols == ref_cols and "heldout.nll_macro" in cols
    pd.testing.assert_frame_equal(df[cols].round(4), ref[cols].round(4), check_exact=False, atol=1e-4, rtol=0)


def test_a_trial_survives_losing_its_node(cluster, sweep_run):
    killed = sweep_run["killed"]
    assert killed is not None, "no training worker was seen: nothing was killed"
    run_dir = sweep_run["run_dir"]
    # every trial folder holds one finished set: no staging left, one adapter, labels once
    for trial in sorted((run_dir / "trials").iterdir()):
        assert not (trial / ".staging").exists() or not any((trial / ".staging").iterdir()), trial
        assert (trial / "trial_result.json").exists()
        assert (trial / "adapter" / "adapter_config.json").exists()
        labeled = [json.loads(line) for line in (trial / "labeled.jsonl").read_text().splitlines()]
        assert len(labeled) == 6 and len({r["id"] for r in labeled}) == 6
        summary = json.loads((trial / "train_summary.json").read_text())
        assert summary["steps"] == 6, summary
    # The trial that was training lost its worker. Ray Train 2.60 sees that in one of two
    # ways, depending on when it looks: a worker-group failure, which it recovers itself
    # from the last checkpoint (train.max_failures), or an unreachable worker, a
    # ControllerError that fails the attempt; then Tune runs the trial again
    # (sweep.max_failures), and it goes on from what its folder holds (the committed
    # selection and labels, training from its last checkpoint, or from the start when it
    # had none). Both were seen; either way the metrics are the static run's.
    log = sweep_run["log"]
    trained = {p.split("/")[1] for p in killed["checkpoints"]}
    starts = {t.name: log.count(f"[sweep] trial {t.name} started") for t in (run_dir / "trials").iterdir()}
    resumed = {}
    for name in trained:
        summary = json.loads((run_dir / "trials" / name / "train_summary.json").read_text())
        resumed[name] = summary["resumed_from_steps"]
        by_tune, by_train = starts[name] >= 2, bool(resumed[name]) or "[FailurePolicy] RETRY" in log
        assert by_tune or by_train, (starts, resumed, log[-4000:])
    print(f"\nkilled: {killed}; trial starts: {starts}; training resumed from steps: {resumed}")


# ------------------------------------------------------------------ scoring
SLOW_SCORE = r"""
import os, sys, time
from pathlib import Path

import labelwise.scoring.stage as stage
from labelwise.scoring.scorer import Scorer


class SlowScorer(Scorer):  # defined here, so Ray ships it by value to the actors
    def __call__(self, batch):
        time.sleep(1.0)  # one planned batch a second: the node is killed part way
        out = Scorer.__call__(self, batch)
        folder = Path(os.environ["LABELWISE_TEST_PROGRESS"])
        (folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        return out


score_on_ray = stage.score_on_ray
stage.score_on_ray = lambda *a, **k: score_on_ray(*a, scorer_cls=SlowScorer, **k)
from labelwise.cli import main

sys.exit(main(["score", sys.argv[1]]))
"""


def test_scoring_survives_losing_its_actor_node(cluster, sweep_run, tiny_model_dir, tmp_path):
    """`labelwise score` on Ray Data against the autoscaling cluster (one actor, each batch
    slowed to 1 s); after 3 batches the actor's node is killed. Ray restarts the actor on a
    new node (score.max_restarts) and retries its batches (score.max_task_retries);
    scores.parquet is complete and equal to the uninterrupted scores."""
    import shutil

    import pandas as pd

    reference = sweep_run["reference"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy2(reference / "pool.parquet", run_dir / "pool.parquet")
    config = sweep_config(tmp_path / "score.yaml", run_dir, tiny_model_dir)
    data = yaml.safe_load(config.read_text())
    data["score"].update(use_ray=True, max_actors=1)
    config.write_text(yaml.safe_dump(data))
    progress = tmp_path / "progress"
    progress.mkdir()
    env = {**cluster.node_env(), **ENV, "LABELWISE_TEST_PROGRESS": str(progress)}
    log_path = tmp_path / "score.log"
    killed = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SLOW_SCORE, str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.time() + 300
            while proc.poll() is None and time.time() < deadline:
                done = list(progress.iterdir())
                if killed is None and len(done) >= 3:
                    actors = ray_workers(cluster, "MapWorker")
                    assert actors, "batches were scored but no scoring actor was found"
                    pid, raylet = next(iter(actors.items()))
                    kill_raylet(cluster, raylet)
                    killed = {"t": time.time(), "batches_done": len(done), "actor": pid}
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    assert proc.returncode == 0, log_path.read_text()[-5000:]
    assert killed is not None, "the scoring ended before 3 batches were seen"
    pool = pd.read_parquet(run_dir / "pool.parquet")
    got = pd.read_parquet(run_dir / "scores.parquet")
    want = pd.read_parquet(reference / "scores.parquet")
    assert got["id"].tolist() == pool["id"].tolist() == want["id"].tolist()
    assert got["error"].isna().all()
    summary = json.loads((run_dir / "score_summary.json").read_text())
    assert summary["run"]["executor"]["where"] == "ray data"
    for col in got.columns:
        if pd.api.types.is_float_dtype(want[col]):
            assert (got[col] - want[col]).abs().max() < 1e-4, col
        elif col != "error":
            assert got[col].tolist() == want[col].tolist(), col
    batches_run = len(list(progress.iterdir()))
    print(f"\nscoring: node killed after {killed['batches_done']} of {len(pool)} batches; "
          f"{batches_run} batch calls in all")


# ------------------------------------------------------------------ GPU planning
GPU_PROBE = r"""
import json, ray
from labelwise.ray_start import RayConfig, init_ray
from labelwise.actor_pool import plan_actors

init_ray(RayConfig())  # joins RAY_ADDRESS: a cluster that can grow
gpus_before = ray.cluster_resources().get("GPU", 0)
plan = plan_actors("cuda", max_actors=1)


class Where:
    def __call__(self, batch):
        n = len(batch["x"])
        batch["node"] = [ray.get_runtime_context().get_node_id()] * n
        batch["gpu_ids"] = [json.dumps(ray.get_gpu_ids())] * n
        return batch


ds = ray.data.from_items([{"x": i} for i in range(2)])
rows = plan.map_batches(ds, Where, max_restarts=0, max_task_retries=0, batch_size=1).take_all()
gpu_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
print("PROBE " + json.dumps({"gpus_before": gpus_before, "plan": [plan.device, plan.num_gpus, plan.max_actors],
                             "nodes": sorted({r["node"] for r in rows}), "gpu_ids": sorted({r["gpu_ids"] for r in rows}),
                             "gpu_nodes": gpu_nodes}))
"""


def test_gpu_actors_are_planned_before_a_gpu_node_exists(cluster, sweep_run):
    """model.device: cuda on a cluster without GPUs yet: plan_actors plans GPU actors
    (can_grow), and the autoscaler starts a node of the GPU type for them."""
    assert cluster.timeline.wait_for(lambda r: r["gpu"] == 0, 60) is not None
    r = subprocess.run([sys.executable, "-c", GPU_PROBE], env={**cluster.node_env(), **ENV},
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    probe = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert probe["gpus_before"] == 0
    assert probe["plan"] == ["cuda", 1.0, 1]
    assert probe["gpu_ids"] == ["[0]"] and set(probe["nodes"]) <= set(probe["gpu_nodes"]), probe
    assert "of type gpu" in cluster.monitor_log()


def test_idle_workers_go_away(cluster, sweep_run):
    """Once the work is done, every worker node is stopped by the autoscaler (idle timeout
    6 s; Ray Train's own resource request of a failed attempt can hold a node up to 180 s)."""
    t = time.time()
    gone = cluster.timeline.wait_for(lambda r: r["cpu"] == 0 and r["gpu"] == 0, 240)
    assert gone is not None, f"worker nodes still up: {cluster.timeline.changes()}\n{cluster.monitor_log()[-3000:]}"
    print(f"\nall workers gone {gone['t'] - t:.1f}s after the last test's work")
    assert "Removing" in cluster.monitor_log() and "(idle)" in cluster.monitor_log()
