"""Reading and writing annotation files: JSONL or CSV, keyed by id.

An answers file has one record per answered prompt with the columns ``id`` and ``response``
(``answer`` is accepted as another name for ``response``), and optionally who answered and
when (``annotators``: a list of names, ``answered_at``: a time), carried into labeled.jsonl. Other columns (task, prompt) may
be present, as in a file exported by :func:`export_for_annotation`; they are checked against
the selection when merging, never trusted over it. A blank response (an empty cell, ``""``
or null) means "not answered yet": an exported file lists every selected prompt, answered
or not, and can be imported while it is still being filled in.

Files are read as UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"); a byte that
is not UTF-8 is an error naming the file and the line. CSV is read and written with the
standard ``csv`` module, so text with commas, quotes,
newlines and non-ASCII characters survives a round trip byte for byte (no NaN guessing).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from labelwise import contracts, runio, textio

RESPONSE_KEYS = ("response", "answer")
EXPORT_COLUMNS = ("id", "task", "prompt", "response")


def read_selected(run_dir: Path) -> list[dict]:
    """The selected prompts to answer (to_annotate.jsonl)."""
    return contracts.read_to_annotate(run_dir / contracts.TO_ANNOTATE)


def read_labeled(run_dir: Path) -> list[dict]:
    """The answers collected so far (none before the first merge)."""
    path = run_dir / contracts.LABELED
    return contracts.read_labeled(path) if path.exists() else []


@dataclasses.dataclass(frozen=True)
class Answer:
    id: str
    response: str
    where: str  # "file:line", for error messages
    task: str | None = None
    prompt: str | None = None
    annotators: tuple[str, ...] | None = None
    answered_at: str | None = None

    def provenance(self) -> dict:
        """Who answered and when, as labeled.jsonl records it (only what is known)."""
        out = {}
        if self.annotators:
            out["annotators"] = list(self.annotators)
        if self.answered_at:
            out["answered_at"] = self.answered_at
        return out


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise ValueError(f"{path}: unknown answers format {suffix!r}: expected .jsonl or .csv")


def read_answers(path: str | Path) -> list[Answer]:
    """Every record of an answers file, in file order (duplicates kept: the merge reports them)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"answers file {path} does not exist")
    if file_format(path) == "jsonl":
        records = _read_jsonl_records(path)
    else:
        records = _read_csv_records(path)
    return [_to_answer(rec, where) for rec, where in records]


def _read_jsonl_records(path: Path) -> list[tuple[dict, str]]:
    out = []
    with textio.open_text(path) as f:
        for i, line in enumerate(textio.check_lines(f, str(path)), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object with id and response")
            out.append((rec, f"{path}:{i}"))
    return out


def _read_csv_records(path: Path) -> list[tuple[dict, str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    out = []
    with textio.open_text(path, newline="") as f:
        reader = csv.DictReader(textio.check_lines(f, str(path)), delimiter=delimiter)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty file: expected a header row with id and response")
        header = [h.strip() for h in reader.fieldnames]
        reader.fieldnames = header
        if "id" not in header or not any(k in header for k in RESPONSE_KEYS):
            raise ValueError(
                f"{path}:1: header {header} must have the columns id and response (or answer)"
            )
        for rec in reader:
            if None in rec:  # more cells than header columns
                raise ValueError(f"{path}:{reader.line_num}: more cells than header columns")
            out.append((rec, f"{path}:{reader.line_num}"))
    return out


def _to_answer(rec: dict, where: str) -> Answer:
    if "id" not in rec or rec["id"] is None or str(rec["id"]).strip() == "":
        raise ValueError(f"{where}: record has no id")
    keys = [k for k in RESPONSE_KEYS if k in rec]
    if not keys:
        raise ValueError(f"{where}: record has no response (columns: {sorted(rec)})")
    if len(keys) > 1 and rec["response"] != rec["answer"]:
        raise ValueError(f"{where}: record has both response and answer, and they differ")
    response = rec[keys[0]]
    if response is None:
        response = ""
    if not isinstance(response, str):
        raise ValueError(f"{where}: response must be a string, got {type(response).__name__}")
    task = rec.get("task")
    prompt = rec.get("prompt")
    return Answer(
        id=str(rec["id"]).strip(),  # a spreadsheet's stray spaces around an id are not part of it
        response=response,
        where=where,
        task=None if task in (None, "") else str(task),
        prompt=None if prompt in (None, "") else str(prompt),
        annotators=_annotators(rec.get("annotators"), where),
        answered_at=_answered_at(rec.get("answered_at"), where),
    )


def _annotators(value, where: str) -> tuple[str, ...] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):  # a CSV cell
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where}: annotators must be a list of names, got {value!r}")


def _answered_at(value, where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: answered_at must be a time as text, got {value!r}")
    return value


def export_for_annotation(rows: list[dict], path: str | Path, done: dict[str, str] | None = None) -> Path:
    """Write the prompts to annotate as JSONL or CSV (id, task, prompt, response).

    ``done`` (id -> response) pre-fills answers already collected, so one file can travel
    back and forth; the response column is empty for the others.
    """
    done = done or {}
    out = [
        {"id": r["id"], "task": r["task"], "prompt": r["prompt"], "response": done.get(r["id"], "")}
        for r in rows
    ]
    if file_format(path) == "jsonl":
        return runio.write_jsonl(path, out)
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    with runio.atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=list(EXPORT_COLUMNS), delimiter=delimiter, quoting=csv.QUOTE_ALL
            )
            writer.writeheader()
            writer.writerows(out)
    return Path(path)
