"""Row helpers for scores.parquet (its schema is contracts.scores_schema): error rows, which
errors are final, rows to a table."""

from __future__ import annotations

import math

import pyarrow as pa

from labelwise.contracts import SCORE_FLOATS as FLOATS
from labelwise.contracts import scores_schema


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
    sch = scores_schema(embeddings)
    cols = {name: [r.get(name) for r in rows] for name in sch.names}
    return pa.Table.from_pydict(cols, schema=sch)
