"""The trials of a sweep, as plain data: one dict per trial, and its job config.

A trial is ``{"name", "strategy", "budget", "base", "confidence", "within_task", "seed", "grid":
{dotted key: value}}``;
the full-pool reference has strategy ``full`` and budget None (the pool size, known once
the pool is built). Names are stable and readable, so a rerun finds the same folders.
"""

from __future__ import annotations

import itertools
import re

from labelwise.contracts import FULL

WTD = "weighted_task_diversity"


def _slug(value) -> str:
    text = str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "x"


def trial_name(strategy: str, budget, base, seed: int, grid: dict, confidence: str | None = None,
               within_task: str | None = None, rounds: int | None = None) -> str:
    parts = [strategy]
    if base is not None:
        parts.append(f"base{_slug(base)}")
    if confidence is not None:
        parts.append(_slug(confidence))
    if within_task is not None:
        parts.append(f"in_{_slug(within_task)}")
    parts.append("kall" if budget is None else f"k{budget}")
    parts.append(f"s{seed}")
    if rounds is not None:
        parts.append(f"r{rounds}")
    for key in sorted(grid):
        parts.append(f"{_slug(key.rsplit('.', 1)[-1])}{_slug(grid[key])}")
    return "-".join(parts)


def plan_trials(sweep) -> list[dict]:
    """Every trial of ``sweep`` (a SweepConfig), in a stable order; names are unique."""
    keys = sorted(sweep.grid)
    grids = [dict(zip(keys, values)) for values in itertools.product(*(sweep.grid[k] for k in keys))]
    trials = []
    for seed in sweep.seeds:
        for grid in grids:
            for strategy in sweep.strategies:
                bases = sweep.bases if strategy == WTD else [None]
                confidences = sweep.confidences if sweep.confidences and takes_confidence(strategy) else [None]
                withins = sweep.within_tasks if sweep.within_tasks and takes_param(strategy, "within_task") else [None]
                for base, confidence, within in itertools.product(bases, confidences, withins):
                    for budget in sorted(sweep.budgets):
                        for rounds in sweep.rounds or [None]:
                            trials.append(_trial(strategy, budget, base, seed, grid, confidence, within, rounds))
            if sweep.full_pool:
                trials.append(_trial(FULL, None, None, seed, grid))
    names = [t["name"] for t in trials]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"sweep: two trials are both named {dupes[0]!r}; make the grid values distinct")
    return trials


def takes_param(strategy: str, param: str) -> bool:
    from labelwise.selection.registry import selector_class

    return param in selector_class(strategy).param_names()


def takes_confidence(strategy: str) -> bool:
    return takes_param(strategy, "confidence")


def _trial(strategy, budget, base, seed, grid, confidence=None, within_task=None, rounds=None) -> dict:
    found = {
        "name": trial_name(strategy, budget, base, seed, grid, confidence, within_task, rounds),
        "strategy": strategy,
        "budget": budget,
        "base": base,
        "confidence": confidence,
        "within_task": within_task,
        "seed": seed,
        "grid": dict(grid),
    }
    return {**found, "rounds": rounds} if rounds is not None else found  # sweeps without rounds: as before


def trial_job_data(job_data: dict, trial: dict, trial_dir: str, pool_size: int | None, worker_cpus: int) -> dict:
    """The job config (as plain data) of one trial: the sweep's job with the trial's settings."""
    import copy

    from labelwise.config import apply_overrides

    data = copy.deepcopy(job_data)
    data["run_dir"] = str(trial_dir)
    data["seed"] = trial["seed"]
    select = data.setdefault("select", {})
    select["seed"] = trial["seed"]
    if trial["strategy"] == FULL:
        if pool_size is None:
            raise ValueError("the full-pool trial needs the pool size")
        select["strategy"] = "random"
        select["budget"] = pool_size
        select["params"] = {}
        select["allow_full_pool"] = True
    else:
        select["strategy"] = trial["strategy"]
        select["budget"] = trial["budget"]
        # each selector has its own parameters: start from none (grid keys may add some)
        params = {}
        if trial["base"] is not None:
            params["base"] = trial["base"]
        if trial.get("confidence") is not None:
            params["confidence"] = trial["confidence"]
        if trial.get("within_task") is not None:
            params["within_task"] = trial["within_task"]
        select["params"] = params
    if (trial.get("rounds") or 1) > 1:  # n rounds of k/n (labelwise.rounds), annotation simulated
        data["rounds"] = {"count": trial["rounds"]}
        data.setdefault("annotate", {})["simulate"] = True
        score = data.setdefault("score", {})
        if score.get("use_ray", "auto") == "auto":  # rescoring: like evaluation, Ray Data actors only on GPU
            score["use_ray"] = data.get("model", {}).get("device") == "cuda"
    trial_cpus = float((data.pop("sweep", None) or {}).get("trial_cpus", 1.0))
    overrides = [f"{k}={_yaml(v)}" for k, v in sorted(trial["grid"].items())]
    data = apply_overrides(data, overrides)
    # Resources, after the grid (which may change the device or the worker count):
    train = data.setdefault("train", {})
    if train.get("cpus_per_worker") is None:
        train["cpus_per_worker"] = worker_cpus
    workers = int(train.get("num_workers") or 1)
    # The trial process waits while its worker trains, and the workers are gone while it
    # evaluates: each may run as many torch threads as the trial's whole CPU reservation.
    if train.get("threads") is None and workers == 1:
        train["threads"] = max(1, int(train["cpus_per_worker"] + trial_cpus))
    evaluate = data.setdefault("evaluate", {})
    if evaluate.get("threads") is None:
        evaluate["threads"] = max(1, int(trial_cpus + workers * train["cpus_per_worker"]))
    if evaluate.get("use_ray", "auto") == "auto":
        # On CPU a trial holds its CPUs already: evaluate in the trial's own process. On GPU
        # the trial process has none: evaluate on Ray Data's GPU actors, as the run does.
        evaluate["use_ray"] = data.get("model", {}).get("device") == "cuda"
    return data


def _yaml(value) -> str:
    import json

    return json.dumps(value)  # JSON is YAML: lists, numbers, strings, null all read back


def build_trial_job(job_cls, job_data: dict, trial: dict, trial_dir: str, pool_size: int | None, worker_cpus: int,
                    where: str):
    """A validated job config of one trial, of ``job_cls`` (the sweep job's own class, so
    that this module does not reach up to labelwise.job); a bad grid value is a
    ConfigError naming it."""
    from labelwise import config

    data = trial_job_data(job_data, trial, trial_dir, pool_size, worker_cpus)
    return config.build(job_cls, data, f"{where} (trial {trial['name']})")
