"""The judge stage's tables: judgments.parquet and disciplines.parquet (contracts.py names
their columns), and the rows of its reply cache (judge_shards/<key>/part-*.parquet).

A cache row holds the judge's raw replies; they are parsed when the outputs are assembled, so
a reply that cannot be parsed stays in the cache (a rerun would get the same reply at
temperature 0) and shows as an ``error`` in judgments.parquet. A cache row whose ``error`` is
set (the request itself failed: timeout, HTTP error, not a chat completion) is not final: the
next run asks again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from labelwise.contracts import DISCIPLINE_COLUMNS


def judgments_schema() -> pa.Schema:
    """What the stage writes: the contract's columns (contracts.read_judgments reads those),
    then its mode and, in choice mode, the option probabilities (JUDGMENTS_MODE_COLUMNS)."""
    from labelwise import contracts

    types = {"string": pa.string(), "list<float64>": pa.list_(pa.float64())}
    extra = [pa.field(c, types[t]) for c, t in contracts.JUDGMENTS_MODE_COLUMNS.items()]
    return pa.schema(list(contracts.judgments_schema()) + extra)


def disciplines_schema() -> pa.Schema:
    types = {"discipline": pa.string(), "description": pa.string(), "embedding": pa.list_(pa.float32())}
    return pa.schema([pa.field(c, types[c]) for c in DISCIPLINE_COLUMNS])


def reply_schema(parts: tuple[str, ...]) -> pa.Schema:
    """A cache row: id, task, one ``<part>_reply`` per part, error (a failed request)."""
    return pa.schema(
        [pa.field("id", pa.string()), pa.field("task", pa.string())]
        + [pa.field(f"{p}_reply", pa.string()) for p in parts]
        + [pa.field("error", pa.string())]
    )


def replied(errors) -> np.ndarray:
    """The ShardStore ``final`` rule of the judge cache: a row is final when its requests were
    answered (no error), whatever the replies say."""
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(pc.is_null(errors.cast(pa.string())), True), dtype=bool)


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({n: [r.get(n) for r in rows] for n in schema.names}, schema=schema)


def read_judgments(path: str | Path):
    """judgments.parquet as a DataFrame (contracts.read_judgments: columns and types checked)."""
    from labelwise.contracts import read_judgments

    return read_judgments(path).to_pandas()


def read_disciplines(path: str | Path):
    """disciplines.parquet as a DataFrame, checked as read_judgments does."""
    from labelwise.contracts import read_typed

    return read_typed(path, disciplines_schema(), "run `labelwise judge` first").to_pandas()


def one_line(error: BaseException) -> str:
    """An exception as one line without "; " (which separates the parts in an error column)."""
    return " ".join(f"{type(error).__name__}: {error}".split()).replace("; ", ", ")
