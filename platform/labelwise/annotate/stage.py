"""``labelwise annotate``: answers for to_annotate.jsonl -> labeled.jsonl.

    labelwise annotate CONFIG --simulate              gold responses from pool.parquet
    labelwise annotate CONFIG --answers FILE          a JSONL or CSV of {id, response}
    labelwise annotate CONFIG --answers FILE --allow-partial
    labelwise annotate CONFIG --export FILE           write a JSONL/CSV for annotators
    labelwise annotate CONFIG --export FILE --merge   add new prompts to FILE, keeping its answers
    labelwise annotate CONFIG --export FILE --force   overwrite FILE even if it holds answers
    labelwise annotate CONFIG --push                  send the prompts to Label Studio (annotate.label_studio)
    labelwise annotate CONFIG --pull [--allow-partial]  merge the answers submitted there

Answers accumulate: a later run with more answers keeps the earlier ones. labeled.jsonl commits
with a manifest (labelwise.manifest); a rerun with the same inputs keeps it. Without
--allow-partial nothing is written while some selected prompt is unanswered. A blank answer
(as --export writes for prompts not answered yet) counts as unanswered, so an exported file
can go back and forth: export, answer some, import with --allow-partial, answer the rest,
import again. --export never overwrites answers that are not yet in labeled.jsonl: it
refuses (naming them) unless --merge (keep them, add the new prompts) or --force is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from labelwise import contracts, runio
from labelwise.annotate.answers import export_for_annotation, read_answers, read_labeled, read_selected
from labelwise.annotate.merge import (
    AnnotationError,
    gold_answers,
    listing,
    merge_answers,
    merge_export,
    unsafe_to_overwrite,
)

HELP = "merge annotators' answers (or the pool's gold answers) into labeled.jsonl"  # the command's one-line help


def add_arguments(parser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--simulate", action="store_true", default=None, help="take the gold responses from the run's pool.parquet")
    mode.add_argument("--answers", metavar="FILE", help="answers file: JSONL or CSV with columns id and response")
    mode.add_argument("--export", metavar="FILE", help="write the prompts to annotate (id, task, prompt, response) as JSONL or CSV, then stop")
    mode.add_argument("--push", action="store_true", help="create or update the Label Studio project of annotate.label_studio with the prompts to annotate, then stop")
    mode.add_argument("--pull", action="store_true", help="merge the answers submitted in Label Studio into labeled.jsonl (checked as --answers)")
    parser.add_argument("--allow-partial", action="store_true", default=None, help="write labeled.jsonl even if some prompts have no answer yet")
    parser.add_argument("--merge", action="store_true", help="with --export: keep the answers already in FILE and add the prompts it lacks")
    parser.add_argument("--force", action="store_true", help="with --export: overwrite FILE even if it holds answers not yet imported")
    parser.add_argument("--round", type=int, default=None, metavar="N",
                        help="with a rounds: section: the round whose prompts these are (default: the latest exported)")


def read_gold(run_dir: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    path = run_dir / contracts.POOL
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: --simulate takes gold responses from the pool (run `labelwise pool`)")
    table = pq.read_table(path, columns=["id", "response"])
    return {str(i): r for i, r in zip(table.column("id").to_pylist(), table.column("response").to_pylist())}


STAGE = "annotate"


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def annotate(job, simulate: bool | None = None, answers: str | Path | None = None, allow_partial: bool = False,
             log=_stderr) -> Path:
    """Merge answers into run_dir/labeled.jsonl and return its path.

    ``answers`` (or job.annotate.answers) takes precedence; otherwise ``simulate`` (or
    job.annotate.simulate) takes the pool's gold responses. labeled.jsonl is kept while the
    stage's manifest matches to_annotate.jsonl, the answers file (or the pool, simulating),
    these settings and labeled.jsonl itself; otherwise the answers are merged again (the
    earlier ones kept) and labeled.jsonl committed with a new manifest.
    """
    from labelwise import manifest

    cfg = job.annotate
    run_dir = Path(job.run_dir)
    allow_partial = bool(allow_partial or cfg.allow_partial)
    if answers is None and not simulate:
        answers = cfg.answers
    if answers is None and simulate is None:
        simulate = cfg.simulate
    inputs = {contracts.TO_ANNOTATE: run_dir / contracts.TO_ANNOTATE}
    if answers is not None:
        inputs["annotate.answers"] = Path(answers)
    elif simulate:
        inputs[contracts.POOL] = run_dir / contracts.POOL
    mode = "answers" if answers is not None else "simulate" if simulate else "none"
    settings = {"annotate": {"answers_from": mode, "allow_partial": allow_partial}}

    def build(staged: Path) -> None:
        merge(run_dir, staged, simulate, answers, allow_partial)
        manifest.fault(STAGE)

    manifest.run_stage(run_dir, STAGE, inputs, settings, [contracts.LABELED], build, log=log)
    return run_dir / contracts.LABELED


def merge(run_dir: Path, out_dir: Path, simulate: bool, answers, allow_partial: bool) -> None:
    """Merge the new answers with labeled.jsonl's into out_dir/labeled.jsonl."""
    selected = read_selected(run_dir)
    existing = read_labeled(run_dir)
    out = run_dir / contracts.LABELED

    if answers is not None:
        source = str(answers)
        new = read_answers(answers)
    elif simulate:
        source = str(run_dir / contracts.POOL)
        done = {r["id"] for r in existing}
        todo = [r for r in selected if r["id"] not in done]
        new = gold_answers(todo, read_gold(run_dir) if todo else {}, source)
    else:
        source = "(no answers)"
        new = []

    result = merge_answers(selected, new, existing, source=source)
    if result.missing and not allow_partial:
        hint = "pass --answers FILE (or --simulate)" if answers is None and not simulate else "answer them, or pass --allow-partial"
        raise AnnotationError(
            f"{len(result.missing)} of {len(selected)} selected prompts have no answer ({hint}); "
            f"nothing written. Missing ids: {listing(result.missing)}"
        )
    runio.write_jsonl(out_dir / contracts.LABELED, result.labeled)
    status = "complete" if result.complete else f"partial, {len(result.missing)} missing"
    if result.blank:
        status += f"; {result.blank} left blank in the file"
    print(
        f"annotate: {len(result.labeled)}/{len(selected)} answered ({result.kept} kept, "
        f"{result.added} new from {source}; {status}) -> {out}",
        file=sys.stderr,
    )
    if result.missing:
        print(f"annotate: missing ids: {listing(result.missing)}", file=sys.stderr)


def export(job, path: str | Path, force: bool = False, merge: bool = False) -> Path:
    """Write the selected prompts for annotators, pre-filled with answers collected so far.

    An existing FILE holding answers that the new file would not carry (not yet imported into
    labeled.jsonl) is an AnnotationError naming them, unless ``merge`` (keep them) or
    ``force`` (overwrite)."""
    run_dir = Path(job.run_dir)
    path = Path(path)
    selected = read_selected(run_dir)
    done = {r["id"]: r["response"] for r in read_labeled(run_dir)}
    from_file = 0
    if path.exists() and not force:
        in_file = _read_existing_export(path)
        if merge:
            done, from_file = merge_export(selected, done, in_file, str(path))
        else:
            lost = unsafe_to_overwrite(selected, done, in_file)
            if lost:
                raise AnnotationError(
                    f"{path} holds {len(lost)} answers that are not in labeled.jsonl; not overwritten. "
                    f"Pass --merge to keep them and add the new prompts, --force to overwrite them, "
                    f"or import them first with --answers: {listing(lost)}"
                )
    out = export_for_annotation(selected, path, done)
    answered = sum(1 for r in selected if done.get(r["id"]))
    kept = f", {from_file} kept from the file" if merge else ""
    print(f"annotate: wrote {len(selected)} prompts ({answered} already answered{kept}) -> {out}", file=sys.stderr)
    return out


def _read_existing_export(path: Path):
    if path.is_dir():
        raise AnnotationError(f"--export {path}: is a folder; give a file name")
    try:
        return read_answers(path)
    except ValueError as e:
        raise AnnotationError(
            f"--export {path}: the file exists and is not an answers file ({e}); "
            "pass --force to overwrite it"
        ) from None


def main(job, args) -> int:
    """Usage errors (options that do not go together) exit 2; answer errors are stage errors
    and exit 1, like every stage's (README, "Usage")."""
    force, merge = bool(getattr(args, "force", False)), bool(getattr(args, "merge", False))
    if (force or merge) and not getattr(args, "export", None):
        print("labelwise annotate: --force and --merge go with --export FILE", file=sys.stderr)
        return 2
    if force and merge:
        print("labelwise annotate: --force and --merge exclude each other", file=sys.stderr)
        return 2
    chosen = getattr(args, "round", None)
    if job.rounds is None and chosen is not None:
        print("labelwise annotate: --round goes with a job that has a rounds: section", file=sys.stderr)
        return 2
    if job.rounds is not None:
        from labelwise.rounds.layout import current_round, round_job

        r = chosen if chosen is not None else current_round(job)
        if not 1 <= r <= job.rounds.count:
            print(f"labelwise annotate: --round {r}: the job has rounds 1 to {job.rounds.count}", file=sys.stderr)
            return 2
        print(f"labelwise annotate: round {r} of {job.rounds.count}", file=sys.stderr)
        job = round_job(job, r)
    try:
        if getattr(args, "export", None):
            export(job, args.export, force=force, merge=merge)
            return 0
        if getattr(args, "push", False) or getattr(args, "pull", False):
            from labelwise.annotate import studio_sync

            if args.push:
                studio_sync.push(job)
            else:
                studio_sync.pull(job, allow_partial=bool(getattr(args, "allow_partial", None)))
            return 0
        annotate(
            job,
            simulate=getattr(args, "simulate", None),
            answers=getattr(args, "answers", None),
            allow_partial=bool(getattr(args, "allow_partial", None)),
        )
    except AnnotationError as e:
        print(f"labelwise annotate: error: {e}", file=sys.stderr)
        return 1
    return 0
