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


# Errors that a rerun would reproduce exactly, because the prompt itself (under the cached
# settings) is the problem: an over-long prompt rejected by plan.encode_prompt
# (score.overlong: reject). They are final: kept in the cache and never scored again. Every
# other error (out of memory, a failed kernel, a dying device, ...) comes from the moment the
# prompt was scored, so its row is cached only until the next run, which scores it again.
FINAL_ERROR_PREFIXES = ("overlong:",)


def is_final(error) -> bool:
    """True for a finished row: scored (no error) or an error a rerun would reproduce."""
    return bool(final_mask(pa.array([None if error is None else str(error)], pa.string()))[0])


def final_mask(errors):
    """numpy bool per row of a pyarrow ``error`` column: True where the row is final (is_final)."""
    import numpy as np
    import pyarrow.compute as pc

    errors = errors.cast(pa.string())
    final = pc.or_kleene(pc.is_null(errors), pc.equal(errors, ""))
    for prefix in FINAL_ERROR_PREFIXES:
        final = pc.or_kleene(final, pc.starts_with(errors, prefix))
    return np.asarray(pc.fill_null(final, True), dtype=bool)


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
