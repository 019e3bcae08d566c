"""sweep.decide: its config, checked at load (plain functions, no Ray)."""

from __future__ import annotations

import pytest

from labelwise import config
from labelwise.config import ConfigError
from labelwise.job import JobConfig

SEEDS = list(range(20))
STRATEGIES = ["random", "task_diversity", "weighted_task_diversity"]


def job_with(decide, **sweep) -> JobConfig:
    data = {"strategies": STRATEGIES, "budgets": [40], "seeds": SEEDS, "decide": decide, **sweep}
    return config.build(JobConfig, {"run_dir": "runs/x", "sweep": data}, "test.yaml")


def test_defaults_need_only_delta():
    d = job_with({"delta": 0.05}).sweep.decide
    assert (d.metric, d.alpha, d.references, d.looks, d.max_seeds, d.spending) == (
        "heldout.nll_macro", 0.05, ["random", "task_diversity"], [3, 5, 8, 12, 20], 20, "obf")
    assert job_with(None).sweep.decide is None  # no decide: every seed runs, as before
    # the default references are those the sweep runs
    d = job_with({"delta": 0.05}, strategies=["random", "kcenter"]).sweep.decide
    assert d.references == ["random"]


def test_a_loaded_decide_round_trips_through_to_dict():
    job = job_with({"delta": 0.1, "looks": [2, 4], "max_seeds": 2, "references": ["task_diversity"],
                    "metric": "heldout.em_macro", "spending": "pocock", "alpha": 0.1})
    again = config.build(JobConfig, config.to_dict(job), "again")
    assert again.sweep.decide == job.sweep.decide


@pytest.mark.parametrize("decide, sweep, message", [
    ({}, {}, r"test\.yaml: sweep\.decide\.delta: required key is missing"),
    ({"delta": 0.05, "margin": 1}, {}, r"sweep\.decide\.margin: unknown key \(valid keys: alpha, delta, "),
    ({"delta": 0}, {}, r"sweep\.decide\.delta: the equivalence margin must be a positive number"),
    ({"delta": "x"}, {}, r"sweep\.decide\.delta: expected a number"),
    ({"delta": 0.05, "alpha": 0.5}, {}, r"sweep\.decide\.alpha: must be between 0 and 0\.5"),
    ({"delta": 0.05, "looks": [3, 3, 5]}, {}, r"sweep\.decide\.looks: must increase strictly"),
    ({"delta": 0.05, "looks": [1, 5]}, {}, r"sweep\.decide\.looks: the first look needs at least 2 seeds"),
    ({"delta": 0.05, "max_seeds": 10}, {}, r"sweep\.decide\.max_seeds: must be one of the looks \[3, 5, 8, 12, 20\]"),
    ({"delta": 0.05, "spending": "naive"}, {}, r"sweep\.decide\.spending: unknown 'naive'"),
    ({"delta": 0.05, "metric": "nll"}, {}, r"sweep\.decide\.metric: must be a results column"),
    ({"delta": 0.05, "references": ["kcenter"]}, {}, r"sweep\.decide\.references\[0\]: 'kcenter' is not one of sweep\.strategies"),
    ({"delta": 0.05, "references": []}, {}, r"sweep\.decide\.references: must list at least one"),
    ({"delta": 0.05}, {"strategies": ["kcenter", "least_confidence"]},
     r"sweep\.decide\.references: none of the default references \(random, task_diversity\)"),
    ({"delta": 0.05}, {"seeds": [0, 1, 2]}, r"sweep\.seeds: decide takes up to max_seeds = 20 seeds"),
    ({"delta": 0.05, "references": ["random"]}, {"strategies": ["random"]}, r"sweep\.decide: needs at least two strategies"),
])
def test_decide_config_errors_name_the_key(decide, sweep, message):
    with pytest.raises(ConfigError, match=message):
        job_with(decide, **sweep)


def test_max_seeds_short_of_the_plan_needs_only_that_many_seeds():
    d = job_with({"delta": 0.05, "max_seeds": 5}, seeds=[7, 3, 9, 1, 0]).sweep.decide
    assert d.max_seeds == 5 and d.looks[-1] == 20
