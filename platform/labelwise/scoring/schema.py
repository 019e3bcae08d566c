"""The scores.parquet schema (ARCHITECTURE.md file contract) and row-to-table helpers."""

from __future__ import annotations

import math

import pyarrow as pa

FLOATS = ["logconf", "mean_logprob", "mean_entropy", "mean_margin", "min_margin"]
COLUMNS = ["id", "task", "logconf", "n_tokens", *FLOATS[1:], "eos", "answer", "error"]


def schema(embeddings: bool) -> pa.Schema:
    fields = [
        pa.field("id", pa.string()),
        pa.field("task", pa.string()),
        pa.field("logconf", pa.float64()),
        pa.field("n_tokens", pa.int64()),
        pa.field("mean_logprob", pa.float64()),
        pa.field("mean_entropy", pa.float64()),
        pa.field("mean_margin", pa.float64()),
        pa.field("min_margin", pa.float64()),
        pa.field("eos", pa.bool_()),
        pa.field("answer", pa.string()),
        pa.field("error", pa.string()),
    ]
    if embeddings:
        fields.append(pa.field("embedding", pa.list_(pa.float32())))
    return pa.schema(fields)


def error_row(id_: str, task: str, error: str) -> dict:
    """A prompt that could not be scored: NaN metrics, no tokens, the reason in ``error``."""
    row = {"id": id_, "task": task, "n_tokens": 0, "eos": False, "answer": "", "error": error}
    row.update({k: math.nan for k in FLOATS})
    row["embedding"] = None
    return row


def to_table(rows: list[dict], embeddings: bool) -> pa.Table:
    sch = schema(embeddings)
    cols = {name: [r.get(name) for r in rows] for name in sch.names}
    return pa.Table.from_pydict(cols, schema=sch)
