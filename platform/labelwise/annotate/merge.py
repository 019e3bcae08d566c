"""Merging answers into labeled rows: plain functions over plain data, no I/O.

The rules (issue 6):
* every answer must name a selected id (unknown ids are an error listing them);
* an id answered twice in the new answers is an error listing it, and so is an answer that
  differs from the one already in labeled.jsonl (earlier answers are kept, never replaced);
* a blank answer (an empty cell, "" or null: what an export writes for a prompt not yet
  answered) means "not answered yet": the id stays missing, exactly as if the record were
  absent, so an exported file can travel back and forth while it fills up;
* a whitespace-only answer is an error listing it: an export never writes one, so someone or
  some tool typed it, and it is neither an answer worth training on nor the blank marker;
* selected ids still without an answer are listed; the caller writes nothing unless partial
  results are allowed.
"""

from __future__ import annotations

import dataclasses

from labelwise.annotate.answers import Answer
from labelwise.contracts import LABELED_PROVENANCE

MAX_LISTED = 20


class AnnotationError(ValueError):
    """Bad answers; the message lists the offending ids (and where they are)."""


@dataclasses.dataclass
class MergeResult:
    labeled: list[dict]  # {id, task, prompt, response, [annotators, answered_at]} in selection order
    missing: list[str]  # selected ids still without an answer, in selection order
    added: int  # answers new in this merge
    kept: int  # answers already in labeled.jsonl
    blank: int = 0  # records of the new answers left blank (not answered yet)

    @property
    def complete(self) -> bool:
        return not self.missing


def listing(items: list[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{shown}{more}"


def same_text(a: str, b: str) -> bool:
    """Equal once line endings are made alike (CRLF and CR read as LF: spreadsheets and
    Windows editors rewrite them)."""
    return _lf(a) == _lf(b)


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def difference(answer: Answer, row: dict) -> str:
    """What an answer's task or prompt changes from the selected row ("" when nothing does,
    line endings and surrounding spaces of the task aside)."""
    if answer.task is not None and answer.task.strip() != str(row["task"]).strip():
        return f"task {answer.task!r}, selected {row['task']!r}"
    if answer.prompt is None or same_text(answer.prompt, row["prompt"]):
        return ""
    got, want = _lf(answer.prompt), _lf(row["prompt"])
    i = next((k for k, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
    return (
        f"prompt differs from character {i + 1}: {got[max(0, i - 10):i + 20]!r} in the file, "
        f"{want[max(0, i - 10):i + 20]!r} selected"
    )


def merge_answers(
    selected: list[dict],
    answers: list[Answer],
    existing: list[dict] | None = None,
    source: str = "answers",
) -> MergeResult:
    """Combine ``existing`` labeled rows with new ``answers`` for the ``selected`` prompts.

    ``selected``: rows {id, task, prompt} (to_annotate.jsonl). Raises AnnotationError for
    unknown ids, duplicates, whitespace-only answers, answers whose task/prompt contradict the
    selection, and answers that contradict an earlier one. Blank answers ("") are not answers
    yet: their ids stay missing (unless labeled.jsonl already has them).
    """
    by_id = {}
    dup_selected = []
    for row in selected:
        if row["id"] in by_id:
            dup_selected.append(row["id"])
        by_id[row["id"]] = row
    if dup_selected:
        raise AnnotationError(f"to_annotate.jsonl lists ids twice: {listing(dup_selected)}")

    existing = existing or []
    previous: dict[str, str] = {}
    provenance: dict[str, dict] = {}  # who answered and when, as labeled.jsonl has it
    stale = []
    for row in existing:
        if row["id"] not in by_id:
            stale.append(row["id"])
        previous[row["id"]] = row["response"]
        provenance[row["id"]] = {k: row[k] for k in LABELED_PROVENANCE if k in row}
    if stale:
        raise AnnotationError(
            f"labeled.jsonl has {len(stale)} ids that are not in to_annotate.jsonl (was the "
            f"selection redone? move labeled.jsonl away to start over): {listing(stale)}"
        )

    unknown = [f"{a.id} ({a.where})" for a in answers if a.id not in by_id]
    if unknown:
        raise AnnotationError(f"{source}: {len(unknown)} answers for ids that were not selected: {listing(unknown)}")

    seen: dict[str, Answer] = {}
    duplicates = []
    for a in answers:
        if a.id in seen:
            duplicates.append(f"{a.id} ({seen[a.id].where} and {a.where})")
        else:
            seen[a.id] = a
    if duplicates:
        raise AnnotationError(f"{source}: {len(duplicates)} ids answered more than once: {listing(duplicates)}")

    blank = [a for a in answers if a.response == ""]
    spaces = [f"{a.id} ({a.where})" for a in answers if a.response and not a.response.strip()]
    if spaces:
        raise AnnotationError(
            f"{source}: {len(spaces)} answers are only whitespace (write the answer, or leave the "
            f"cell completely empty for 'not answered yet'): {listing(spaces)}"
        )

    mismatched = [
        f"{a.id} ({a.where}: {what})"
        for a in answers
        for what in [difference(a, by_id[a.id])]
        if what
    ]
    if mismatched:
        raise AnnotationError(
            f"{source}: {len(mismatched)} answers whose task or prompt is not the selected one: {listing(mismatched)}"
        )

    conflicts = [
        f"{a.id} ({a.where})"
        for a in answers
        if a.response and a.id in previous and previous[a.id] != a.response
    ]
    if conflicts:
        raise AnnotationError(
            f"{source}: {len(conflicts)} answers differ from the ones already in labeled.jsonl "
            f"(earlier answers are kept; edit labeled.jsonl to change them): {listing(conflicts)}"
        )

    labeled, missing = [], []
    added = 0
    for row in selected:
        rid = row["id"]
        if rid in previous:
            response = previous[rid]
        elif rid in seen and seen[rid].response:
            response = seen[rid].response
            provenance[rid] = seen[rid].provenance()
            added += 1
        else:
            missing.append(rid)
            continue
        labeled.append({"id": rid, "task": row["task"], "prompt": row["prompt"], "response": response, **provenance[rid]})
    return MergeResult(labeled=labeled, missing=missing, added=added, kept=len(previous), blank=len(blank))


def gold_answers(selected: list[dict], gold: dict[str, str], source: str = "pool.parquet") -> list[Answer]:
    """Answers taken from the pool's gold responses (simulation); ids absent from the pool are an error."""
    absent = [row["id"] for row in selected if row["id"] not in gold]
    if absent:
        raise AnnotationError(f"{source}: {len(absent)} selected ids are not in the pool: {listing(absent)}")
    return [Answer(id=row["id"], response=gold[row["id"]], where=f"{source}[{row['id']}]") for row in selected]


def answered(answers: list[Answer]) -> list[Answer]:
    """The records of an answers file that hold an answer (anything but a blank cell)."""
    return [a for a in answers if a.response != ""]


def unsafe_to_overwrite(selected: list[dict], done: dict[str, str], in_file: list[Answer]) -> list[str]:
    """Answers in an existing export file that a fresh export would not carry (an id no
    longer selected, or an answer not yet in labeled.jsonl), as "id (file:line)"."""
    selected_ids = {row["id"] for row in selected}
    return [
        f"{a.id} ({a.where})"
        for a in answered(in_file)
        if a.id not in selected_ids or done.get(a.id) != a.response
    ]


def merge_export(selected: list[dict], done: dict[str, str], in_file: list[Answer], source: str) -> tuple[dict[str, str], int]:
    """Answers for a merged export: those of labeled.jsonl (``done``) plus the answers found
    in the existing export file ``in_file``. Returns (id -> response, answers taken from the
    file). An answer for an id no longer selected, an id answered twice with different
    answers, or an answer that contradicts labeled.jsonl is an AnnotationError listing them
    (nothing is written, so nothing is lost)."""
    selected_ids = {row["id"] for row in selected}
    file_answers = answered(in_file)
    orphans = [f"{a.id} ({a.where})" for a in file_answers if a.id not in selected_ids]
    if orphans:
        raise AnnotationError(
            f"{source}: {len(orphans)} answers for ids that are not in to_annotate.jsonl (was the "
            f"selection redone?); move the file away or pass --force to overwrite it: {listing(orphans)}"
        )
    out = dict(done)
    first: dict[str, Answer] = {}
    clashes, conflicts = [], []
    for a in file_answers:
        if a.id in first and first[a.id].response != a.response:
            clashes.append(f"{a.id} ({first[a.id].where} and {a.where})")
            continue
        first.setdefault(a.id, a)
        if a.id in done and done[a.id] != a.response:
            conflicts.append(f"{a.id} ({a.where})")
    if clashes:
        raise AnnotationError(f"{source}: {len(clashes)} ids answered twice, differently: {listing(clashes)}")
    if conflicts:
        raise AnnotationError(
            f"{source}: {len(conflicts)} answers differ from the ones already in labeled.jsonl "
            f"(nothing written; fix the file or labeled.jsonl): {listing(conflicts)}"
        )
    taken = 0
    for rid, a in first.items():
        if rid not in out:
            out[rid] = a.response
            taken += 1
    return out, taken
