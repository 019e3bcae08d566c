"""Sweep planning, config checks and resources: plain functions, no Ray."""

from __future__ import annotations

import json

import pytest

from labelwise import config
from labelwise.config import ConfigError
from labelwise.job import JobConfig
from labelwise.sweep import plan
from labelwise.sweep.stage import concurrency, trial_cpus_needed, validate_trials


def job_with(sweep: dict, **extra) -> JobConfig:
    return config.build(JobConfig, {"run_dir": "runs/x", "sweep": sweep, **extra}, "test.yaml")


def test_plan_covers_the_grid_with_wtd_bases_and_a_full_pool_per_seed():
    job = job_with(
        {
            "strategies": ["random", "weighted_task_diversity", "least_confidence"],
            "budgets": [80, 40],
            "seeds": [0, 1],
            "bases": [0, 5],
            "grid": {"train.lr": [0.001, 0.0005]},
        }
    )
    trials = plan.plan_trials(job.sweep)
    # per seed and lr: random 2 + WTD 2 bases x 2 budgets + LC 2 + full 1 = 9
    assert len(trials) == 2 * 2 * 9
    names = [t["name"] for t in trials]
    assert len(set(names)) == len(names)
    wtd = [t for t in trials if t["strategy"] == "weighted_task_diversity"]
    assert {t["base"] for t in wtd} == {0, 5}
    assert all(t["base"] is None for t in trials if t["strategy"] != "weighted_task_diversity")
    full = [t for t in trials if t["strategy"] == plan.FULL]
    assert len(full) == 4 and all(t["budget"] is None for t in full)
    assert "weighted_task_diversity-base5-k40-s1-lr0.0005" in names
    assert plan.plan_trials(job.sweep) == trials  # stable: a rerun finds the same folders


def test_trial_job_sets_strategy_budget_seed_base_grid_and_worker_cpus(tmp_path):
    job = job_with(
        {"strategies": ["weighted_task_diversity"], "budgets": [40], "seeds": [3], "bases": [2],
         "grid": {"train.epochs": [1]}},
        select={"strategy": "random", "budget": 7},
    )
    (trial,) = [t for t in plan.plan_trials(job.sweep) if t["strategy"] != plan.FULL]
    tj = plan.build_trial_job(JobConfig, config.to_dict(job), trial, str(tmp_path / "t"), 100, 1, "test.yaml")
    assert tj.run_dir == str(tmp_path / "t")
    assert (tj.select.strategy, tj.select.budget, tj.select.params) == ("weighted_task_diversity", 40, {"base": 2})
    assert tj.seed == 3 and tj.select.seed == 3
    assert tj.train.epochs == 1 and tj.train.cpus_per_worker == 1
    assert tj.evaluate.use_ray is False  # evaluation runs inside the trial's own CPU
    data = config.to_dict(job)
    data["model"]["device"] = "cuda"
    gj = plan.build_trial_job(JobConfig, data, trial, str(tmp_path / "g"), 100, 1, "test.yaml")
    assert gj.evaluate.use_ray is True  # on GPU: Ray Data's GPU actors, not the trial's CPU
    full = [t for t in plan.plan_trials(job.sweep) if t["strategy"] == plan.FULL][0]
    fj = plan.build_trial_job(JobConfig, config.to_dict(job), full, str(tmp_path / "f"), 100, 1, "test.yaml")
    assert (fj.select.strategy, fj.select.budget, fj.select.allow_full_pool) == ("random", 100, True)


def test_bad_grid_value_fails_before_any_work_naming_the_key():
    job = job_with({"strategies": ["random"], "budgets": [5], "grid": {"train.epochs": [1, -2]}})
    with pytest.raises(ConfigError, match=r"train\.epochs: must be positive"):
        validate_trials(job, plan.plan_trials(job.sweep))


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"strategies": ["nope"]}, r"sweep\.strategies: unknown selector 'nope'"),
        ({"budgets": [0]}, r"sweep\.budgets: every budget must be"),
        ({"seeds": [1, 1]}, r"sweep\.seeds: lists a seed twice"),
        ({"grid": {"pool.max_per_task": [3]}}, r"sweep\.grid\.pool\.max_per_task: must be a dotted key"),
        ({"grid": {"select.budget": [3]}}, r"sweep\.grid\.select\.budget: use sweep\.strategies"),
        ({"grid": {"train.lr": []}}, r"sweep\.grid\.train\.lr: must be a non-empty list"),
        ({"budgets": "10"}, r"sweep\.budgets: expected a list"),
    ],
)
def test_sweep_config_errors_name_the_key(sweep, message):
    with pytest.raises(ConfigError, match=message):
        job_with(sweep)


@pytest.mark.parametrize(
    "cpus, workers, trial_cpus, cap, expected",
    [(2, 1, 1, None, 1), (4, 1, 1, None, 2), (16, 2, 1, None, 5), (16, 1, 1, 3, 3), (1, 1, 1, None, 1)],
)
def test_concurrency_follows_the_resources(cpus, workers, trial_cpus, cap, expected):
    job = job_with(
        {"trial_cpus": trial_cpus, "max_concurrent_trials": cap},
        train={"num_workers": workers, "batch_size": 8},
    )
    assert concurrency(job, cpus) == expected
    # never more concurrent trials than the CPUs hold (except the one that must run)
    assert expected == 1 or expected * trial_cpus_needed(job) <= cpus


def test_a_cluster_that_can_grow_takes_max_concurrent_trials_as_it_is():
    # an autoscaling cluster whose workers start at zero has no CPUs when the sweep starts
    job = job_with({"max_concurrent_trials": 3}, train={"num_workers": 1, "batch_size": 8})
    assert concurrency(job, 0, can_grow=True) == 3
    assert concurrency(job, 0) == 1  # a local Ray cannot grow: what its CPUs hold
    assert concurrency(job_with({}), 0, can_grow=True) == 1  # no cap given: what is up now


def test_gpu_trials_are_limited_by_gpus():
    job = job_with({}, train={"num_workers": 2, "batch_size": 8})
    assert concurrency(job, 64, cluster_gpus=4, use_gpu=True) == 2


def test_a_trial_is_finished_only_while_its_manifest_matches(tmp_path):
    from labelwise import contracts, runio
    from labelwise.sweep import trial_manifest

    job = job_with({"strategies": ["random"], "budgets": [5]})
    trial = plan.plan_trials(job.sweep)[0]
    sweep, trial_dir = tmp_path / "sweep", tmp_path / "sweep" / "trials" / trial["name"]

    def trial_job(**train):
        data = config.to_dict(job)
        data["train"] = {**data["train"], **train}
        return plan.build_trial_job(JobConfig, data, trial, str(trial_dir), 100, 1, "test.yaml")

    trial_dir.mkdir(parents=True)
    runio.write_jsonl(trial_dir / contracts.LABELED, [{"id": "a", "task": "t", "prompt": "p", "response": "r"}])
    runio.write_json(trial_dir / "metrics_adapted.json", {"heldout": {"nll_macro": 2.0}})
    runio.write_json(sweep / "metrics_base.json", {"heldout": {"nll_macro": 3.0}})
    assert trial_manifest.finished(trial_job(), sweep) is None  # no manifest yet
    trial_manifest.commit(trial_job(), sweep, {"trial": trial["name"], "status": "ok"})
    assert trial_manifest.finished(trial_job(), sweep) == {"trial": trial["name"], "status": "ok"}
    moved = trial_job()
    moved.ray.num_cpus = 7  # where Ray runs does not change results
    assert trial_manifest.finished(moved, sweep) is not None
    epochs = job.train.epochs + 1
    assert trial_manifest.why_not_finished(trial_job(epochs=epochs), sweep) == (
        f"setting train.epochs changed ({job.train.epochs} -> {epochs})")
    runio.write_json(sweep / "metrics_base.json", {"heldout": {"nll_macro": 3.5}})
    assert trial_manifest.why_not_finished(trial_job(), sweep) == "input sweep/metrics_base.json changed"
    trial_manifest.discard(trial_dir)
    assert not (trial_dir / contracts.TRIAL_RESULT).exists()


def test_trial_threads_use_the_whole_reservation_and_grid_worker_counts_size_the_trials(tmp_path):
    job = job_with({"strategies": ["random"], "budgets": [5], "grid": {"train.num_workers": [1, 2]},
                    "trial_cpus": 1, "worker_cpus": 1}, train={"batch_size": 4})
    trials = [t for t in plan.plan_trials(job.sweep) if t["strategy"] != plan.FULL]
    jobs = {t["grid"]["train.num_workers"]: plan.build_trial_job(JobConfig, config.to_dict(job), t, str(tmp_path / t["name"]), 100, 1, "x")
            for t in trials}
    one, two = jobs[1], jobs[2]
    # one worker: it may use the waiting trial's CPU too; the evaluation after it, both
    assert (one.train.threads, one.evaluate.threads) == (2, 2)
    # two workers: one thread each (no CPU is idle while they train); evaluation gets all 3
    assert (two.train.threads, two.evaluate.threads) == (None, 3)
    # the sweep sizes trials by the largest worker count of its grid
    assert trial_cpus_needed(job, list(jobs.values())) == 3
    assert concurrency(job, 6, trial_jobs=list(jobs.values())) == 2


def test_confidences_apply_only_to_selectors_that_take_one():
    job = job_with({"strategies": ["random", "weighted_task_diversity", "activeit"], "budgets": [40],
                    "seeds": [0], "bases": [5], "confidences": ["sequence", "length_calibrated"]})
    trials = plan.plan_trials(job.sweep)
    # random 1 + WTD 2 signals + ActiveIT 2 signals + full 1
    assert len(trials) == 6
    names = [t["name"] for t in trials]
    assert "weighted_task_diversity-base5-length_calibrated-k40-s0" in names and "random-k40-s0" in names
    data = plan.trial_job_data({"run_dir": "x"}, next(t for t in trials if t["name"].startswith("activeit-length")),
                               "t", 100, 1)
    assert data["select"]["params"] == {"confidence": "length_calibrated"}
    built = plan.build_trial_job(JobConfig, {"run_dir": "x"}, trials[1], "t", 100, 1, "test")
    assert built.select.params == {"base": 5, "confidence": "sequence"}
    from labelwise.sweep.trial import selector_of

    assert selector_of(trials[2]) == "weighted_task_diversity (base=5, confidence=length_calibrated)"
    with pytest.raises(ConfigError, match="confidences.*unknown confidence 'length'"):
        job_with({"strategies": ["random"], "confidences": ["length"]})
