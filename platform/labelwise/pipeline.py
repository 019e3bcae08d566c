"""``labelwise run CONFIG``: every stage in order, in one job.

    pool -> score -> [judge] -> select -> annotate -> train -> evaluate-base -> evaluate-adapted -> report

(judge only when the job has a judge: section.)

Each stage keeps what its folder already holds when its manifest says the outputs were made
from the same inputs and settings (labelwise.manifest), so a rerun after a crash or a kill
goes on where the last one stopped; a stage shows "kept" when its manifest did not change. Progress is printed per
stage; the run ends with a summary table, ``run_dir/summary.json`` and a report
(``report.md`` / ``report.html``).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from labelwise import contracts, manifest, runio, stages

SUMMARY = contracts.RUN_SUMMARY

STAGE_NAMES = stages.NAMES

HELP = "run every stage in order; a rerun resumes where the last one stopped"  # the command's one-line help


def add_arguments(parser) -> None:
    parser.add_argument(
        "--until",
        choices=STAGE_NAMES,
        default=None,
        help="stop after this stage (default: run every stage)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write report.md / report.html")


def stage_call(name: str, job):
    """Run stage ``name`` (stages.call); the seam tests replace."""
    return stages.call(name, job)


def plan_steps(job, until: str | None = None, annotate_command: str = "labelwise annotate JOB.yaml") -> list[stages.Step]:
    """The steps of ``job``: the stages in order, or with ``rounds:`` the rounds' stages
    (labelwise.rounds.run); ``until`` stops after a stage (with rounds: pool or score)."""
    if getattr(job, "rounds", None) is None:
        names = STAGE_NAMES[: STAGE_NAMES.index(until) + 1] if until else list(STAGE_NAMES)
        return [stages.stage_step(name, job, _call) for name in names if stages.wanted(name, job)]  # judge only when wanted
    from labelwise.rounds.run import steps

    if until not in (None, "pool", "score"):
        raise ValueError(f"--until {until}: with a rounds: section, --until takes pool or score "
                         "(every round has its own select ... evaluate)")
    found = steps(job, annotate_command, run=_call)
    return found[: [s.name for s in found].index(until) + 1] if until else found


def _call(name: str, job):
    return stage_call(name, job)  # looked up when the step runs: tests replace stage_call


def state(run_dir: Path, name: str):
    """What tells 'ran' from 'kept': the stage's manifest, rewritten whenever the stage runs
    (None: the stage has not finished)."""
    return manifest.read(run_dir, name)


def run_pipeline(job, until: str | None = None, report: bool = True, out=None,
                 annotate_command: str = "labelwise annotate JOB.yaml") -> dict:
    """Run (or resume) every stage of ``job``; return the summary (also in summary.json).

    A stage that fails is recorded in summary.json with its error, then re-raised: the
    stages before it keep their outputs and a rerun starts again at the failed stage. With
    ``rounds:`` and real annotators, the run stops when a round waits for answers (status
    "waiting for answers to round r") and says what to do.
    """
    from labelwise import config
    from labelwise.progress import Progress, fmt_seconds
    from labelwise.ray_start import init_ray

    out = out or sys.stdout
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = plan_steps(job, until, annotate_command)
    summary = {
        "run_dir": str(run_dir),
        "status": "running",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "stages": [],
        "config": config.to_dict(job),
    }
    # stages differ far too much in length for a time-left estimate; each long stage
    # (score, train, evaluate) prints its own rows done and rate
    progress = Progress(len(steps), "stages", prefix="run", stream=out, show_eta=False)
    progress.message(f"run folder {run_dir}")
    t_all = progress.start  # the total includes starting Ray, as the progress lines do
    init_ray(job.ray)
    waiting = None
    for i, step in enumerate(steps):
        name = step.name
        progress.update(i, f"{name} ...")
        before = state(step.folder, step.stage)
        t0 = time.monotonic()
        record = {"stage": name, "status": "running", "seconds": 0.0, "output": str(step.output)}
        summary["stages"].append(record)
        runio.write_json(run_dir / SUMMARY, summary)  # a killed run's summary names the stage it was in
        try:
            step.call()
        except _awaiting() as e:
            record.update(status="waiting", seconds=round(time.monotonic() - t0, 2))
            waiting = e
            break
        except BaseException as e:
            record.update(status="failed", seconds=time.monotonic() - t0, error=f"{type(e).__name__}: {e}")
            summary["status"] = f"failed at {name}"
            summary["seconds"] = time.monotonic() - t_all
            runio.write_json(run_dir / SUMMARY, summary)
            print(f"[run] {name} failed after {fmt_seconds(record['seconds'])}: {type(e).__name__}: {e}\n"
                  f"[run] finished stages are kept in {run_dir}; rerun the same command to continue",
                  file=out, flush=True)
            raise
        after = state(step.folder, step.stage)
        record["seconds"] = round(time.monotonic() - t0, 2)
        record["status"] = "kept" if before is not None and before == after else "ran"
        if record["status"] == "kept":
            progress.skipped += 1
        runio.write_json(run_dir / SUMMARY, summary)
        progress.update(i + 1, f"{name} {record['status']} in {fmt_seconds(record['seconds'])}")
    summary["status"] = "done" if until is None else f"stopped after {until}"
    if waiting is not None:
        summary["status"] = f"waiting for answers to round {waiting.round}"
    summary["seconds"] = round(time.monotonic() - t_all, 2)
    summary["metrics"] = read_metrics(run_dir)
    if getattr(job, "rounds", None) is not None:
        from labelwise.rounds.curve import round_metrics, write_curve

        write_curve(job)
        summary["metrics"] = round_metrics(job)
    if report and until is None and waiting is None:
        from labelwise.report.stage import write_report

        runio.write_json(run_dir / SUMMARY, summary)
        md, page = write_report(run_dir)
        summary["report"] = {"markdown": str(md), "html": str(page)}
    runio.write_json(run_dir / SUMMARY, summary)
    print(summary_text(summary), file=out, flush=True)
    if waiting is not None:
        print(f"\n{waiting}", file=out, flush=True)
    return summary


def _awaiting():
    from labelwise.rounds.run import AwaitingAnswers

    return AwaitingAnswers


def read_metrics(run_dir: Path) -> dict:
    from labelwise.report.run_report import flatten_metrics

    path = run_dir / contracts.METRICS
    if not path.exists():
        return {}
    return flatten_metrics(json.loads(path.read_text()))


def summary_text(summary: dict) -> str:
    from labelwise.progress import fmt_seconds
    from labelwise.report.run_report import metrics_rows

    lines = ["", f"labelwise run: {summary['status']} in {fmt_seconds(summary.get('seconds', 0))}", ""]
    lines += _text_table(
        ["stage", "status", "time"],
        [[s["stage"], s["status"], fmt_seconds(s["seconds"])] for s in summary["stages"]],
    )
    if summary.get("metrics"):
        header, rows = metrics_rows(summary["metrics"])
        lines += [""] + _text_table(header, rows)
    run_dir = Path(summary["run_dir"])
    lines += ["", f"results: {run_dir}/"]
    curve = f"{contracts.ROUNDS}/{contracts.ROUND_CURVE}"  # a run of several rounds
    for name in (contracts.SELECTION, contracts.ALLOCATION, contracts.LABELED, contracts.ADAPTER, contracts.METRICS, curve, SUMMARY):
        if (run_dir / name).exists():
            lines.append(f"  {name}")
    if summary.get("report"):
        lines.append(f"report: {summary['report']['html']}  (and report.md)")
    return "\n".join(lines)


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*map(str, r)) for r in rows]


def annotate_command(args) -> str:
    """`labelwise annotate` with this command line's job file and --set options."""
    import shlex

    parts = ["labelwise", "annotate", getattr(args, "config", "JOB.yaml")]
    for o in getattr(args, "overrides", None) or []:
        parts += ["--set", o]
    return shlex.join(parts)


def main(job, args) -> int:
    until = getattr(args, "until", None)
    if getattr(job, "rounds", None) is not None and until not in (None, "pool", "score"):  # a usage error: exit 2
        print(f"labelwise run: --until {until}: with a rounds: section, --until takes pool or score", file=sys.stderr)
        return 2
    try:
        run_pipeline(job, until=getattr(args, "until", None), report=not getattr(args, "no_report", False),
                     annotate_command=annotate_command(args))
    except (OSError, ValueError, RuntimeError):
        raise  # the CLI prints these as one clear line (LABELWISE_DEBUG=1: the traceback)
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    return 0
