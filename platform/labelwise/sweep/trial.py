"""One sweep trial in its own run folder: select, annotate (simulated), train, evaluate.

:func:`run_trial` is plain Python over a JobConfig (testable without Tune);
:func:`tune_trainable` is the Tune function trainable around it. A trial whose folder holds
``trial_result.json`` committed with a matching manifest (sweep/trial_manifest.py) is
finished: it is returned as it is, never redone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from labelwise import contracts, stages, textio


def link_shared(sweep_dir: Path, trial_dir: Path) -> None:
    """Make the sweep's pool, test split and scores visible in the trial folder.

    A relative symlink where the file system allows it, else a hard link, else a copy."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    for name in stages.SHARED_FILES:  # what every trial shares with the sweep folder
        src = sweep_dir / name
        dst = trial_dir / name
        if not src.exists():
            continue
        if dst.is_symlink() or dst.exists():
            if dst.resolve() == src.resolve():
                continue
            dst.unlink()
        try:
            os.symlink(os.path.relpath(src, trial_dir), dst)
        except OSError:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def read_result(trial_dir: Path) -> dict | None:
    path = trial_dir / contracts.TRIAL_RESULT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None  # never finished writing (cannot happen with atomic writes, but be safe)


def selector_of(trial: dict) -> str:
    """The label the report groups by: strategy, WTD base, the trial's grid values, and
    "×n rounds" for n > 1 rounds (one batch keeps the plain label)."""
    from labelwise.report.table import selector_label

    label = selector_label(trial["strategy"], trial.get("base"), trial.get("confidence"), trial.get("within_task"))
    extra = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted((trial.get("grid") or {}).items()))
    rounds = f"×{trial['rounds']} rounds" if (trial.get("rounds") or 1) > 1 else ""
    return " ".join(p for p in (label, extra, rounds) if p)


def base_model_metrics(sweep_dir: Path) -> dict:
    """The untrained model's metrics (evaluated once in the sweep folder), flattened."""
    from labelwise.contracts import BASE_PREFIX
    from labelwise.report.run_report import flatten_metrics

    path = sweep_dir / contracts.METRICS
    if not path.exists():
        return {}
    flat = flatten_metrics(json.loads(path.read_text())).get("base", {})
    return {f"{BASE_PREFIX}{k}": v for k, v in flat.items()}


def per_task_columns(adapted: dict, trial_dir: Path) -> dict:
    """``task:<task>:<bench>.<metric>`` for every per-task number the evaluation recorded, and
    ``task:<task>:selected`` from allocation.csv: what the report's per-task breakdown reads."""
    from labelwise.contracts import TASK_PREFIX

    out = {}
    for bench, values in (adapted or {}).items():
        per_task = values.get("per_task") if isinstance(values, dict) else None
        for task, numbers in sorted((per_task or {}).items()):
            for name, v in numbers.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and name != "n" and not name.startswith("n_"):
                    out[f"{TASK_PREFIX}{task}:{bench}.{name}"] = float(v)
    alloc = trial_dir / contracts.ALLOCATION
    if not alloc.exists():  # a trial of several rounds: every round's allocation
        from labelwise.contracts import ROUND_ALLOCATION, ROUNDS

        alloc = trial_dir / ROUNDS / ROUND_ALLOCATION
    if alloc.exists():
        from labelwise.contracts import read_allocation

        selected = read_allocation(alloc).groupby("task")["selected"].sum()
        for task, n in selected.items():
            out[f"{TASK_PREFIX}{task}:selected"] = int(n)
    return out


def round_steps(job, trial: dict, service=None) -> list[tuple[str, object]]:
    """(name, call) of a trial's stages (labelwise.stages, scope trial): one batch, or every
    round's (labelwise.rounds.run; the shared stages, pool, scores and base evaluation, are the
    sweep's). Select asks the sweep's selection service; annotation takes the gold answers."""
    if job.rounds is None:
        extra = {"select": {"service": service}, "annotate": {"simulate": True}}
        return [(s.command, lambda s=s: stages.call(s.name, job, **extra.get(s.name, {}))) for s in stages.scoped(stages.TRIAL)]
    from labelwise.rounds.run import round_steps as rounds

    return [(s.name, s.call) for s in rounds(job)]


def round_columns(job) -> tuple[dict, Path]:
    """``round:<r>:labels`` and ``round:<r>:<bench.metric>`` per round (the report's learning
    curves; written to rounds/curve.csv too), and the folder of the last round."""
    from labelwise.contracts import ROUND_PREFIX
    from labelwise.rounds.curve import curve_rows, write_curve
    from labelwise.rounds.layout import round_dir

    write_curve(job)
    out = {}
    for row in curve_rows(job):
        for k, v in row.items():
            if k not in ("round", "budget") and row["round"] > 0:
                out[f"{ROUND_PREFIX}{row['round']}:{k}"] = v
    return out, round_dir(job, job.rounds.count)


def run_trial(job, trial: dict, sweep_dir: str | Path, service=None, log=print) -> dict:
    """Run one trial in ``job.run_dir`` (resuming what its folder holds); return its row."""
    from labelwise.report.run_report import flatten_metrics
    from labelwise.sweep import trial_manifest

    sweep_dir = Path(sweep_dir)
    trial_dir = Path(job.run_dir)
    done = trial_manifest.finished(job, sweep_dir)
    if done is not None:
        return done
    link_shared(sweep_dir, trial_dir)
    times = {}
    t0 = time.monotonic()
    for name, step in round_steps(job, trial, service):
        t = time.monotonic()
        log(f"[trial {trial['name']}] {name} ...")
        step()
        times[f"{name}_s"] = round(time.monotonic() - t, 2)
    rounds, last = ({}, trial_dir) if job.rounds is None else round_columns(job)
    raw_metrics = json.loads((last / contracts.METRICS).read_text())
    metrics = flatten_metrics(raw_metrics).get("adapted", {})
    labeled = [trial_dir / contracts.LABELED] if job.rounds is None else sorted(trial_dir.glob("rounds/r*/" + contracts.LABELED))
    n_labeled = sum(len(textio.read_jsonl(p)) for p in labeled)
    row = {
        "trial": trial["name"],
        "selector": selector_of(trial),
        "strategy": trial["strategy"],
        "base": trial.get("base"),
        "confidence": trial.get("confidence"),
        "within_task": trial.get("within_task"),
        "budget": n_labeled if trial["budget"] is None else trial["budget"],
        "seed": trial["seed"],
        **({"rounds": trial["rounds"]} if trial.get("rounds") is not None else {}),
        "status": "ok",
        "error": None,
        "run_dir": str(Path("trials") / trial["name"]),
        "n_labeled": n_labeled,
        **{f"grid:{k}": v for k, v in sorted((trial.get("grid") or {}).items())},
        **times,
        "time_s": round(time.monotonic() - t0, 2),
        **metrics,
        **base_model_metrics(sweep_dir),
        **per_task_columns(raw_metrics.get("adapted", {}), trial_dir),
        **rounds,
    }
    trial_manifest.commit(job, sweep_dir, row)
    return row


def tune_trainable(config: dict, job_data: dict, sweep_dir: str, cwd: str, pool_size: int,
                   worker_cpus: int, service=None, job_cls=None) -> None:
    """Tune function trainable: one trial, reported once as a flat row."""
    from ray import tune

    from labelwise.contracts import TRIALS
    from labelwise.sweep.plan import build_trial_job

    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths in the job (models, data) mean what they meant to the driver
    trial = config["trial"]
    trial_dir = Path(sweep_dir) / TRIALS / trial["name"]
    job = build_trial_job(job_cls, job_data, trial, str(trial_dir), pool_size, worker_cpus, "sweep")
    row = run_trial(job, trial, sweep_dir, service=service)
    tune.report({k: v for k, v in row.items() if v is not None})
