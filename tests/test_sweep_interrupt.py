"""Ctrl+C on a real Ray Tune run: Tune ends the run and returns normally, without an error for
the trial it stopped, so the sweep must tell an interrupted run from a finished one
(sweep/stage.py unfinished) and stop instead of going on to the next look of sweep.decide. A Tuner of two trivial trials runs in a process
of its own, on a local Ray of its own (as `labelwise sweep` starts it), and gets a SIGINT while
its first trial sleeps. (That a finished run has nothing unfinished, every end-to-end sweep
test shows: it would stop with exit 130.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_process import cli_env

pytestmark = [pytest.mark.ray]

SCRIPT = r"""
import json, sys, time
from pathlib import Path

from ray import tune

from labelwise.contracts import TRIAL_RESULT, TRIALS
from labelwise.ray_start import RayConfig, init_ray
from labelwise.sweep.stage import unfinished

started, sweep_dir = Path(sys.argv[1]), Path(sys.argv[2])
init_ray(RayConfig(num_cpus=2))


def trainable(config):  # a sweep trial's ending: trial_result.json, as sweep/trial.py writes it
    name = config["trial"]["name"]
    if name.startswith("slow"):
        started.touch()
        time.sleep(300)
    (sweep_dir / TRIALS / name).mkdir(parents=True)
    (sweep_dir / TRIALS / name / TRIAL_RESULT).write_text(json.dumps({"trial": name, "status": "ok"}))
    tune.report({"x": 1})


def run(names, run_name):
    grid = tune.Tuner(trainable, param_space={"trial": tune.grid_search([{"name": n} for n in names])},
                      tune_config=tune.TuneConfig(max_concurrent_trials=1),
                      run_config=tune.RunConfig(name=run_name, storage_path=str(sweep_dir / "tune"), verbose=0)).fit()
    errors = {r.config["trial"]["name"]: str(r.error) for r in grid if r.error is not None}
    return {"unfinished": unfinished(sweep_dir, names, errors), "errors": errors}


print(json.dumps({"interrupted": run(["slow-c", "fast-d"], "interrupted")}), flush=True)
"""


def test_a_sigint_stopped_tune_run_is_told_from_a_finished_one(tmp_path):
    started = tmp_path / "slow_trial_started"
    with open(tmp_path / "tune.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(started), str(tmp_path / "sweep")],
                                stdout=subprocess.PIPE, stderr=log, env=cli_env(), text=True)
        try:
            deadline = time.monotonic() + 240
            while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert started.exists(), (tmp_path / "tune.log").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGINT)  # what Ctrl+C or `kill -INT` sends
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "tune.log").read_text()[-3000:]
    got = {k: v for line in out.splitlines() if line.startswith("{") for k, v in json.loads(line).items()}
    assert got["interrupted"] == {"unfinished": ["slow-c", "fast-d"], "errors": {}}  # stopped, and never started
