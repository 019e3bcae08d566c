"""``labelwise annotate JOB --push`` and ``--pull``: the run's prompts to Label Studio, and
the answers back into labeled.jsonl.

Push creates (or brings up to date) the project ``annotate.label_studio.project`` (default
"labelwise RUN-FOLDER-NAME"), with one task per prompt of to_annotate.jsonl (data: id, task,
prompt and the task's allocation from allocation.csv) and the base model's greedy answer
from scores.parquet (when scored with answers) as a prediction. Pushing again creates only
the tasks that are missing, never touches a task that has annotations, and gives unanswered
tasks the current data and prediction: nothing is duplicated.

Pull reads every submitted annotation (skipped ones are not answers), picks one answer per
prompt (annotate.label_studio.pick: latest or agreed, labelwise.annotate.pick), writes them
with who answered and when to run_dir/label_studio_answers.jsonl, and merges that file into
labeled.jsonl exactly as ``--answers FILE`` does: unknown ids, an id answered in two tasks,
answers that contradict labeled.jsonl are errors, and nothing is written while a prompt is
unanswered unless --allow-partial. Prompts whose annotators do not agree (pick: agreed) are
an error listing them unless --allow-partial, where they stay unanswered.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from labelwise import contracts, runio, stages
from labelwise.annotate.answers import read_labeled, read_selected
from labelwise.annotate.merge import AnnotationError, listing
from labelwise.annotate.studio_tasks import pulled_answers, plan_push, textarea_result


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def settings(job):
    cfg = job.annotate.label_studio
    if cfg is None:
        raise AnnotationError(
            "--push and --pull need annotate.label_studio in the job: {url, project, token_env} "
            "(the token itself goes in the environment variable token_env names)"
        )
    return cfg


def project_title(job) -> str:
    """``annotate.label_studio.project`` (default: "labelwise <run folder name>"); a round's
    job (run_dir/rounds/r<N>, labelwise.rounds) gets its own project, "<title> round N"."""
    import re

    from labelwise.contracts import ROUNDS

    folder = Path(job.run_dir).resolve()
    round_of = re.fullmatch(r"r(\d+)", folder.name) if folder.parent.name == ROUNDS else None
    run = folder.parent.parent if round_of else folder
    title = settings(job).project or f"labelwise {run.name}"
    return f"{title} round {int(round_of.group(1))}" if round_of else title


def model_version(job) -> str:
    return f"labelwise greedy: {job.model.name}"


def read_allocation(run_dir: Path) -> dict[str, dict]:
    """task -> {allocated, selected, pool_size} from allocation.csv."""
    path = run_dir / contracts.ALLOCATION
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `labelwise select` first")
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for i, rec in enumerate(csv.DictReader(f), 2):
            try:
                out[rec["task"]] = {
                    "allocated": float(rec["allocated"]),
                    "selected": int(float(rec["selected"])),
                    "pool_size": int(float(rec["pool_size"])),
                }
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{i}: expected task, allocated, selected, pool_size ({e})") from None
    return out


def read_greedy(run_dir: Path) -> dict[str, str]:
    """id -> the base model's greedy answer, from scores.parquet (empty when not scored, or
    scored without answers; rows that failed to score have none)."""
    import pyarrow.parquet as pq

    path = run_dir / contracts.SCORES
    if not path.exists():
        return {}
    names = pq.read_schema(path).names
    if "answer" not in names:
        return {}
    table = pq.read_table(path, columns=[c for c in ("id", "answer", "error") if c in names]).to_pydict()
    errors = table.get("error") or [None] * len(table["id"])
    return {str(i): a for i, a, e in zip(table["id"], table["answer"], errors) if a and not e}


def connect(job):
    from labelwise.annotate.label_studio import Server

    cfg = settings(job)
    return Server(cfg.url, cfg.token_env)


def push(job, log=_stderr) -> dict:
    """Bring the Label Studio project in line with to_annotate.jsonl; returns the counts."""
    run_dir = Path(job.run_dir)
    selected = read_selected(run_dir)
    allocation = read_allocation(run_dir)
    greedy = read_greedy(run_dir)
    server = connect(job)
    title, version = project_title(job), model_version(job)
    project, project_changed = server.project(title, create=True, model_version=version)
    plan = plan_push(selected, allocation, greedy, server.tasks(project), version)
    created = server.import_tasks(project, plan.create) if plan.create else 0
    for task_id, data in plan.update:
        server.update_task(task_id, data)
    for task_id, text in plan.predict:
        server.add_prediction(task_id, textarea_result(text), version)
    counts = {
        "project": project,
        "project_changed": project_changed,
        "created": created,
        "updated": len(plan.update),
        "predictions_added": len(plan.predict),
        "answered_untouched": plan.answered,
        "unchanged": plan.unchanged,
        "with_prediction": sum(1 for r in selected if r["id"] in greedy),
    }
    what = "" if not project_changed else ", created" if project_changed == ["created"] else f", updated {', '.join(project_changed)}"
    log(
        f"annotate: Label Studio project {title!r} (id {project}{what}) at {server.url}: {len(selected)} prompts; "
        f"{created} tasks created, {len(plan.update)} updated, {len(plan.predict)} predictions added, "
        f"{plan.answered} answered (untouched), {plan.unchanged} unchanged; "
        f"{counts['with_prediction']} with the base model's answer as a prediction"
    )
    if plan.several:
        log(f"annotate: {len(plan.several)} ids have more than one task in the project (a pull refuses them if both are answered): {listing(plan.several)}")
    if plan.foreign:
        log(f"annotate: {len(plan.foreign)} tasks in the project are not in to_annotate.jsonl (left as they are): tasks {listing([str(t) for t in plan.foreign])}")
    return counts


def pull(job, allow_partial: bool = False, log=_stderr) -> Path:
    """Read the submitted answers and merge them into labeled.jsonl (as --answers does)."""
    run_dir = Path(job.run_dir)
    cfg = settings(job)
    allow_partial = bool(allow_partial or job.annotate.allow_partial)
    server = connect(job)
    title = project_title(job)
    project, _ = server.project(title, create=False)
    if project is None:
        raise AnnotationError(f"Label Studio at {server.url} has no project titled {title!r}: run `labelwise annotate JOB --push` first")
    records, disagreements, ignored = pulled_answers(server.tasks(project), server.users(), cfg.pick)
    path = runio.write_jsonl(run_dir / contracts.LABEL_STUDIO_ANSWERS, records)
    log(
        f"annotate: pulled {sum(1 for r in records if r['response'])} answers from Label Studio project "
        f"{title!r} (pick: {cfg.pick}; {ignored} skipped or empty annotations ignored) -> {path}"
    )
    done = {r["id"] for r in read_labeled(run_dir)}  # earlier answers are kept, as with --answers
    kept = [why for rid, why in disagreements if rid in done]
    if kept:
        log(f"annotate: {len(kept)} prompts no longer agreed on keep their answer in labeled.jsonl: {listing(kept)}")
    disagreements = [why for rid, why in disagreements if rid not in done]
    if disagreements:
        message = f"{len(disagreements)} prompts have no agreed answer (pick: agreed needs a strict majority of annotators): {listing(disagreements)}"
        if not allow_partial:
            raise AnnotationError(f"{message}; nothing written. Ask another annotator, use pick: latest, or pass --allow-partial")
        log(f"annotate: {message}; they stay unanswered")
    return stages.call("annotate", job, answers=path, allow_partial=allow_partial)  # the annotate stage, as --answers
