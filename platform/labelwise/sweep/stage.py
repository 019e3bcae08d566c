"""``labelwise sweep CONFIG``: Ray Tune over selector x budget x base x seed (x grid).

1. Pool and scores are built once in ``run_dir`` (the sweep folder), and the untrained
   model is evaluated once there (the report's budget-0 point).
2. Every trial (``labelwise.sweep.plan``) gets ``run_dir/trials/<name>/`` with the pool,
   test split and scores linked in; a Tune trial selects (through one SelectionService
   actor holding the scores), annotates with the gold answers, trains with a TorchTrainer
   and evaluates, then writes ``trial_result.json``.
3. Resources: a trial holds ``sweep.trial_cpus``, its training workers ``train.num_workers
   x sweep.worker_cpus`` more; ``max_concurrent_trials`` is how many such trials the
   cluster's CPUs hold, so trials never wait on each other's CPUs (on 2 CPUs: one at a time).
4. Resume: a rerun keeps every trial whose ``trial_result.json`` was committed with a
   manifest matching the trial's settings and files (sweep/trial_manifest.py), and runs the
   rest, saying why (a killed trial continues from what its folder holds: selection, labels,
   the last training checkpoint; a rerun with other settings runs the trials they change).
5. ``run_dir/results.csv`` (one row per trial, failed trials included with their error)
   and the report (``report.md``, ``report.html``).
6. With ``sweep.decide``, seeds come in looks: the trials of the first look run, every
   comparison of a selector with a reference is decided, and only the trials an undecided
   comparison needs run next (sweep/decide.py); ``decisions.json`` records each comparison's
   path, and results.csv holds the trials that ran.
7. Ctrl+C (SIGINT) stops the sweep: Tune ends its run, results.csv and decisions.json are
   written from the trials that finished, and the command exits with 130; no further look
   starts. A rerun goes on (4.).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from pathlib import Path

from labelwise import contracts, runio

from labelwise.contracts import RESULTS
from labelwise.contracts import SWEEP_PLAN as PLAN

_TUNER_RUNS = itertools.count()  # a sweep.decide run starts one Tuner per look: distinct names

HELP = "Ray Tune sweep over selectors, budgets, base allocations and seeds"  # the command's one-line help


class Interrupted(KeyboardInterrupt):
    """Tune's run ended on SIGINT (Ctrl+C) before every trial had finished or failed; carries
    the failed trials' errors and the names of those left unfinished."""

    def __init__(self, errors: dict[str, str], unfinished: list[str]):
        super().__init__(f"{len(unfinished)} trial(s) not finished")
        self.errors, self.unfinished = errors, unfinished


def add_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the trials and the resources, run nothing")


def trial_cpus_needed(job, trial_jobs=()) -> float:
    """CPUs one trial holds while it trains: the trial itself plus its training workers (the
    largest over ``trial_jobs``, whose grid may change the worker count)."""
    jobs = list(trial_jobs) or [job]
    workers = max(j.train.num_workers * (j.train.cpus_per_worker or job.sweep.worker_cpus) for j in jobs)
    return job.sweep.trial_cpus + workers


def concurrency(job, cluster_cpus: float, cluster_gpus: float = 0, use_gpu: bool = False, trial_jobs=(),
                can_grow: bool = False) -> int:
    """How many trials may run at once so that none waits on another's CPUs (or GPUs).

    ``can_grow`` (a joined cluster, which an autoscaler may grow): ``max_concurrent_trials``
    is taken as it is, so the queued trials ask for the nodes they need (an autoscaling
    cluster whose workers start at zero has no CPUs when the sweep starts)."""
    if can_grow and job.sweep.max_concurrent_trials is not None:
        return job.sweep.max_concurrent_trials
    need = trial_cpus_needed(job, trial_jobs)
    n = max(1, int(math.floor(cluster_cpus / need))) if need > 0 else 1
    if use_gpu:
        workers = max(j.train.num_workers for j in (list(trial_jobs) or [job]))
        n = min(n, max(1, int(cluster_gpus // workers)))
    if job.sweep.max_concurrent_trials is not None:
        n = min(n, job.sweep.max_concurrent_trials)
    return n


def planned_trials(job) -> list[dict]:
    """The sweep's trials; with sweep.decide, those of the seeds it may take (up to max_seeds),
    its references checked against their labels."""
    from labelwise.sweep.plan import plan_trials

    trials = plan_trials(job.sweep)
    if job.sweep.decide is not None:
        from labelwise.sweep import decide

        trials = decide.planned(trials, job.sweep)
        decide.check_references(trials, job.sweep)
    return trials


def validate_trials(job, trials: list[dict]) -> list:
    """Build every trial's job config now, so a bad grid value fails before any work; returns
    them (for their resources)."""
    from labelwise import config
    from labelwise.sweep.plan import build_trial_job

    if job.rounds is not None:
        raise config.ConfigError("rounds: a sweep takes rounds as a dimension, sweep.rounds: [1, 3] (one batch of k "
                                 "and 3 rounds of k/3); remove the rounds: section")
    data = config.to_dict(job)
    return [build_trial_job(type(job), data, t, "/tmp/labelwise-check", 1, job.sweep.worker_cpus, "sweep") for t in trials]


def prepare(job, log=print, trial_jobs=()) -> int:
    """The shared stages (labelwise.stages) in the sweep folder, each kept when done: pool,
    scores, judgments when the trials want them (``trial_jobs``: a judge: section, or a
    selector that reads them), and the base model's metrics; returns the pool size."""
    from labelwise import stages
    from labelwise.pool.stage import read_pool

    for s in stages.scoped(stages.SHARED):
        if s.optional and not any(stages.wanted(s.name, j) for j in list(trial_jobs) or [job]):
            continue
        t = time.monotonic()
        stages.call(s.name, job)
        log(f"[sweep] {s.name}: {s.output} ready ({time.monotonic() - t:.0f}s)")
    n = len(read_pool(job.run_dir))
    log(f"[sweep] pool: {n} prompts")
    return n


def start_service(job):
    """The SelectionService actor holding the score table for every trial.

    It reserves no CPU: it works only while a trial waits on it, and a CPU held by it would
    be one the trials' training workers cannot have (on 2 CPUs: a deadlock)."""
    from labelwise.selection.service import start_service as start

    return start(Path(job.run_dir) / contracts.SCORES, num_cpus=0)


def collect_rows(sweep_dir: Path, trials: list[dict], errors: dict[str, str]) -> list[dict]:
    """One row per planned trial: its result when finished, else a failed/pending row."""
    from labelwise.contracts import TRIALS
    from labelwise.sweep.trial import read_result, selector_of

    rows = []
    for t in trials:
        row = read_result(sweep_dir / TRIALS / t["name"])
        if row is None:
            row = {
                "trial": t["name"],
                "selector": selector_of(t),
                "strategy": t["strategy"],
                "base": t.get("base"),
                "budget": t["budget"],
                "seed": t["seed"],
                "status": "error" if t["name"] in errors else "not run",
                "error": errors.get(t["name"]),
                "run_dir": str(Path(TRIALS) / t["name"]),
            }
        rows.append(row)
    return rows


def write_results(sweep_dir: Path, rows: list[dict], pool_size: int) -> Path:
    import pandas as pd

    df = pd.DataFrame(rows)
    if "budget" in df.columns:
        df["budget"] = df["budget"].fillna(pool_size).astype(int)
    return runio.write_csv(sweep_dir / RESULTS, df)


def write_interrupted(sweep_dir: Path, trials: list[dict], stop: Interrupted, pool_size: int, log) -> Path:
    """results.csv of an interrupted sweep: the trials that ended (finished or failed), and a
    line saying what did not and how to go on."""
    left = set(unfinished(sweep_dir, [t["name"] for t in trials], stop.errors))
    ended = [t for t in trials if t["name"] not in left]
    path = write_results(sweep_dir, collect_rows(sweep_dir, ended, stop.errors), pool_size)
    names = ", ".join(stop.unfinished[:5]) + (", ..." if len(stop.unfinished) > 5 else "")
    log(f"[sweep] interrupted: {len(stop.unfinished)} trial(s) not finished ({names}); {path} holds the "
        f"{len(ended)} that ended. Rerun the same command to go on.")
    return path


def progress_callback(progress, already: int):
    """A Tune callback printing trials done / total, time spent and time left."""
    from ray.tune import Callback

    class ProgressCallback(Callback):
        def __init__(self):
            self.done = already

        def on_trial_start(self, iteration, trials, trial, **info):
            progress.message(f"trial {trial.config['trial']['name']} started")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            progress.update(self.done, f"{trial.config['trial']['name']} done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.done += 1
            progress.update(self.done, f"{trial.config['trial']['name']} FAILED (see results.csv)")

    return ProgressCallback()


def split_finished(job, trials: list[dict], sweep_dir: Path, pool_size: int, log=print) -> tuple[list, list]:
    """(finished, pending) trials: finished when the trial's manifest matches its settings and
    files (sweep/trial_manifest.py); a pending trial's old row is removed, saying why."""
    from labelwise import config
    from labelwise.sweep import trial_manifest
    from labelwise.contracts import TRIALS
    from labelwise.sweep.plan import build_trial_job

    data = config.to_dict(job)
    finished, pending = [], []
    for t in trials:
        trial_dir = sweep_dir / TRIALS / t["name"]
        trial_job = build_trial_job(type(job), data, t, str(trial_dir), pool_size, job.sweep.worker_cpus, "sweep")
        reason = trial_manifest.why_not_finished(trial_job, sweep_dir)
        if reason is None:
            finished.append(t)
            continue
        if (trial_dir / contracts.TRIAL_RESULT).exists():
            log(f"[sweep] trial {t['name']} runs again: {reason}")
        trial_manifest.discard(trial_dir)
        pending.append(t)
    return finished, pending


def run_sweep(job, out=None) -> Path:
    """Run (or resume) the sweep of ``job``; returns run_dir/results.csv."""
    from labelwise import config
    from labelwise.progress import Progress
    from labelwise.ray_start import init_ray
    from labelwise.contracts import TRIALS

    out = out or sys.stdout
    sweep_dir = Path(job.run_dir).resolve()
    job.run_dir = str(sweep_dir)
    trials = planned_trials(job)
    trial_jobs = validate_trials(job, trials)
    need = trial_cpus_needed(job, trial_jobs)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    runio.write_json(sweep_dir / PLAN, {"trials": trials, "config": config.to_dict(job)})

    def log(msg):
        print(msg, file=out, flush=True)

    ray = init_ray(job.ray)
    pool_size = prepare(job, log, trial_jobs)
    too_big = [b for b in job.sweep.budgets if b > pool_size]
    if too_big:
        raise ValueError(f"sweep.budgets: {too_big[0]} is more than the {pool_size} prompts of the pool")
    finished, pending = split_finished(job, trials, sweep_dir, pool_size, log)
    progress = Progress(len(trials), "trials", prefix="sweep", stream=out)
    progress.skipped = len(finished)
    resources = ray.cluster_resources()
    use_gpu = job.model.device == "cuda" or (job.model.device == "auto" and resources.get("GPU", 0) > 0)
    from labelwise.ray_start import started_locally

    n_parallel = concurrency(job, resources.get("CPU", 1), resources.get("GPU", 0), use_gpu, trial_jobs,
                             can_grow=not started_locally())
    if job.ray.address is None and not os.environ.get("RAY_ADDRESS") and need > resources.get("CPU", 1):
        raise ValueError(
            f"sweep: a trial needs {need:g} CPUs (sweep.trial_cpus + train.num_workers x "
            f"sweep.worker_cpus) but this Ray has {resources.get('CPU', 1):g}"
        )
    to_run = f"{len(pending)} to run"
    if job.sweep.decide is not None:
        to_run = f"up to {len(pending)} to run as comparisons need them"
    log(f"[sweep] {len(trials)} trials: {len(finished)} finished before, {to_run}, "
        f"{n_parallel} at a time ({need:g} CPUs each) -> {sweep_dir / TRIALS}")
    errors: dict[str, str] = {}
    try:
        if job.sweep.decide is not None:
            rows = _run_decided(job, trials, finished, pending, sweep_dir, pool_size, n_parallel, out, log)
        else:
            if pending:
                errors = _run_tuner(job, pending, sweep_dir, pool_size, n_parallel, progress, len(finished))
            rows = collect_rows(sweep_dir, trials, errors)
    except Interrupted as stop:
        write_interrupted(sweep_dir, trials, stop, pool_size, log)
        raise
    path = write_results(sweep_dir, rows, pool_size)
    log(f"[sweep] results: {path}")
    if job.sweep.report:
        from labelwise.report.stage import write_report

        md, page = write_report(sweep_dir)
        log(f"[sweep] report: {page} (and {md.name})")
    log(summary_text(rows))
    return path


def _run_decided(job, trials, finished, pending, sweep_dir: Path, pool_size: int, n_parallel: int, out, log) -> list:
    """sweep.decide: run the trials look by look while a comparison needs them (sweep/decide.py);
    write decisions.json; return the rows of the trials that finished or were tried."""
    from labelwise.progress import Progress
    from labelwise.sweep import decide

    decide.check_unchanged(sweep_dir, job.sweep)
    errors: dict[str, str] = {}
    done = {t["name"] for t in finished}
    tried = set(done)
    pending_names = {t["name"] for t in pending}

    def rows():
        return collect_rows(sweep_dir, [t for t in trials if t["name"] in tried], errors)

    def run_trials(todo):
        todo = [t for t in todo if t["name"] in pending_names]
        tried.update(t["name"] for t in todo)
        progress = Progress(len(todo), "trials", prefix="sweep", stream=out)
        try:
            errors.update(_run_tuner(job, todo, sweep_dir, pool_size, n_parallel, progress, 0))
        except Interrupted as stop:  # the errors of every look so far, for rows() and results.csv
            errors.update(stop.errors)
            stop.errors = errors
            raise

    try:
        found = decide.run(trials, job.sweep, rows, run_trials, done, log)
    except Interrupted:  # no further look: the decisions of the trials that finished
        log(f"[sweep] decisions so far: {decide.write(sweep_dir, job.sweep, decide.decisions(trials, rows(), job.sweep))}")
        raise
    log(f"[sweep] decisions: {decide.write(sweep_dir, job.sweep, found)}")
    return rows()


def _run_tuner(job, pending, sweep_dir: Path, pool_size: int, n_parallel: int, progress, already: int) -> dict:
    """Run the pending trials on a Tuner; return {trial name: error} for failed ones."""
    from ray import tune

    from labelwise import config
    from labelwise.sweep.trial import tune_trainable

    # the trials must see the driver's paths: no per-trial working directory
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    service = start_service(job)
    trainable = tune.with_parameters(
        tune_trainable,
        job_data=config.to_dict(job),
        sweep_dir=str(sweep_dir),
        cwd=os.getcwd(),
        pool_size=pool_size,
        worker_cpus=job.sweep.worker_cpus,
        service=service,
        job_cls=type(job),
    )
    resources = {"cpu": job.sweep.trial_cpus}
    if job.sweep.trial_gpus:
        resources["gpu"] = job.sweep.trial_gpus
    trainable = tune.with_resources(trainable, resources)

    def name_of(trial):
        return trial.config["trial"]["name"]

    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(pending)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=n_parallel,
            trial_name_creator=name_of,
            trial_dirname_creator=name_of,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_TUNER_RUNS)}",
            storage_path=str(job.ray.storage or (sweep_dir / "tune")),
            failure_config=tune.FailureConfig(max_failures=job.sweep.max_failures),
            verbose=0,
            callbacks=[progress_callback(progress, already)],
        ),
    )
    grid = tuner.fit()
    errors = {}
    for result in grid:
        if result.error is not None:
            name = result.config["trial"]["name"] if result.config else "?"
            errors[name] = f"{type(result.error).__name__}: {str(result.error).strip().splitlines()[-1][:500]}"
    left = unfinished(sweep_dir, [t["name"] for t in pending], errors)
    if left:
        raise Interrupted(errors, left)
    return errors


def unfinished(sweep_dir: Path, names: list[str], errors: dict[str, str]) -> list[str]:
    """The trials of ``names`` that neither wrote their result nor failed. After a Tune run
    they are those that a SIGINT (Ctrl+C) stopped or that never started: Tune then saves its
    state and returns normally, with the stopped trial marked TERMINATED and no error."""
    from labelwise.contracts import TRIALS

    return [n for n in names if n not in errors and not (sweep_dir / TRIALS / n / contracts.TRIAL_RESULT).exists()]


def summary_text(rows: list[dict]) -> str:
    """Mean ± standard error of the first metric per selector and budget, as text."""
    import pandas as pd

    from labelwise.report.table import metric_columns, paper_table

    df = pd.DataFrame(rows)
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    failed = len(df) - len(ok)
    lines = [f"\nsweep: {len(ok)} trials finished, {failed} failed or not run"]
    if ok.empty:
        return "\n".join(lines)
    ok = ok.copy()
    ok["budget"] = ok["budget"].astype(int)
    metrics = metric_columns(ok)
    if not metrics:
        return "\n".join(lines)
    table = paper_table(ok, metrics[0])
    header = ["selector"] + [f"k={b}" for b in table["budgets"]] + (["full"] if table["full"] else [])
    body = []
    for selector, cells in table["rows"]:
        row = [selector] + [
            "-" if b not in cells else f"{cells[b]['mean']:.4f}±{cells[b]['se']:.4f}" + ("*" if cells[b]["rank"] == 1 else "")
            for b in table["budgets"]
        ]
        if table["full"]:
            row.append(f"{table['full']['mean']:.4f}")
        body.append(row)
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines += [f"{metrics[0]} (mean±se over seeds, * best):", fmt.format(*header)]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


def main(job, args) -> int:
    if getattr(args, "dry_run", False):
        trials = planned_trials(job)
        trial_jobs = validate_trials(job, trials)
        for t in trials:
            print(t["name"])
        many = "trials" if job.sweep.decide is None else "trials at most (sweep.decide runs those its comparisons need)"
        print(f"{len(trials)} {many}; each needs up to {trial_cpus_needed(job, trial_jobs):g} CPUs while it trains")
        return 0
    try:
        run_sweep(job)
    except Interrupted:
        return 130
    return 0
