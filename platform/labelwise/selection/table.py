"""The score table as plain arrays, in one canonical row order (sorted by id).

Every selector reads a :class:`ScoreTable`. Rows are sorted by id when the table is
built, so the same seed picks the same ids whatever the row order of scores.parquet.
Rows whose ``error`` is set are taken out and kept in ``excluded`` (reported, never
silently dropped).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from labelwise.contracts import SCORE_METRICS


class ScoreTableError(ValueError):
    """Bad score input; the message names the file, column or ids."""


@dataclasses.dataclass
class ScoreTable:
    ids: np.ndarray  # (N,) object array of str, sorted
    task_codes: np.ndarray  # (N,) int32 index into task_names
    task_names: list[str]  # sorted
    scores: dict[str, np.ndarray]  # column -> (N,) float64
    embedding: np.ndarray | None = None  # (N, d) float32
    excluded: list[dict] = dataclasses.field(default_factory=list)  # [{id, task, error}]
    source: str = "<memory>"
    # attached only for the selectors that read them (selection/judgments.py: attach)
    prompts: np.ndarray | None = None  # (N,) object array of str, from pool.parquet
    answer_chars: np.ndarray | None = None  # (N,) float64, characters of the greedy answer
    judgments: object | None = None  # selection.judgments.Judgments, aligned to the rows

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    def task_sizes(self) -> np.ndarray:
        return np.bincount(self.task_codes, minlength=self.n_tasks)

    def column(self, name: str) -> np.ndarray:
        if name not in self.scores:
            raise ScoreTableError(f"{self.source}: the score table has no column {name!r}")
        return self.scores[name]

    def require_finite(self, name: str) -> np.ndarray:
        """The column as float64; NaN or infinite values are an error naming the ids."""
        values = self.column(name)
        bad = ~np.isfinite(values)
        if bad.any():
            ids = self.ids[bad]
            shown = ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise ScoreTableError(
                f"{self.source}: column {name!r} is NaN or infinite for {len(ids)} prompt(s): {shown}"
            )
        return values

    def require_embedding(self) -> np.ndarray:
        if self.embedding is None:
            raise ScoreTableError(
                f"{self.source}: this selector needs prompt embeddings, and the scores have no "
                "'embedding' column; score the pool with `score.embeddings: true` "
                "(labelwise score JOB.yaml --set score.embeddings=true)"
            )
        bad = ~np.isfinite(self.embedding).all(axis=1)
        if bad.any():
            ids = self.ids[bad]
            raise ScoreTableError(
                f"{self.source}: embedding is NaN or infinite for {len(ids)} prompt(s): "
                + ", ".join(map(str, ids[:10]))
            )
        return self.embedding


def from_arrays(ids, tasks, scores: dict | None = None, embedding=None, errors=None, source="<memory>") -> ScoreTable:
    """Build a canonical ScoreTable from columns in any row order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids_arr = pa.array(ids, type=pa.string()) if not isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids
    tasks_arr = pa.array(tasks, type=pa.string()) if not isinstance(tasks, (pa.Array, pa.ChunkedArray)) else tasks
    n = len(ids_arr)
    if len(tasks_arr) != n:
        raise ScoreTableError(f"{source}: {n} ids but {len(tasks_arr)} tasks")
    if ids_arr.null_count:
        raise ScoreTableError(f"{source}: {ids_arr.null_count} row(s) have no id")
    if tasks_arr.null_count:
        bad = pc.filter(ids_arr, pc.is_null(tasks_arr)).to_pylist()
        raise ScoreTableError(f"{source}: no task for id(s) {', '.join(bad[:10])}")
    keep = np.ones(n, dtype=bool)
    excluded: list[dict] = []
    if errors is not None:
        err = pa.array(errors, type=pa.string()) if not isinstance(errors, (pa.Array, pa.ChunkedArray)) else errors
        err_np = _error_mask(err)
        if err_np.any():
            keep = ~err_np
            bad_idx = np.flatnonzero(err_np)
            ids_bad = ids_arr.take(pa.array(bad_idx)).to_pylist()
            tasks_bad = tasks_arr.take(pa.array(bad_idx)).to_pylist()
            errs_bad = err.take(pa.array(bad_idx)).to_pylist()
            excluded = [
                {"id": i, "task": t, "error": e}
                for i, t, e in sorted(zip(ids_bad, tasks_bad, errs_bad))
            ]
    order = np.asarray(pc.sort_indices(ids_arr))
    order = order[keep[order]]
    ids_sorted = ids_arr.take(pa.array(order))
    if len(order) > 1:
        dup = np.asarray(pc.equal(ids_sorted.slice(1), ids_sorted.slice(0, len(order) - 1)))
        if dup.any():
            dups = sorted(set(ids_sorted.slice(1).filter(pa.array(dup)).to_pylist()))
            raise ScoreTableError(
                f"{source}: duplicate id(s) {', '.join(dups[:10])}"
                + (f" and {len(dups) - 10} more" if len(dups) > 10 else "")
            )
    tasks_sorted = tasks_arr.take(pa.array(order))
    enc = pc.dictionary_encode(tasks_sorted)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    names = enc.dictionary.to_pylist()
    rank = np.argsort(np.array(names, dtype=object), kind="stable") if names else np.zeros(0, int)
    remap = np.empty(len(names), dtype=np.int32)
    remap[rank] = np.arange(len(names), dtype=np.int32)
    codes = remap[np.asarray(enc.indices, dtype=np.int64)] if len(names) else np.zeros(0, np.int32)
    cols = {}
    for name, values in (scores or {}).items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (n,):
            raise ScoreTableError(f"{source}: column {name!r} has shape {arr.shape}, expected ({n},)")
        cols[name] = arr[order]
    emb = None
    if embedding is not None:
        emb = np.asarray(embedding, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != n:
            raise ScoreTableError(f"{source}: embedding has shape {emb.shape}, expected ({n}, d)")
        emb = np.ascontiguousarray(emb[order])
    return ScoreTable(
        ids=np.asarray(ids_sorted.to_numpy(zero_copy_only=False), dtype=object),
        task_codes=codes.astype(np.int32, copy=False),
        task_names=[names[i] for i in rank],
        scores=cols,
        embedding=emb,
        excluded=excluded,
        source=source,
    )


def from_frame(df, source="<memory>") -> ScoreTable:
    """Build from a pandas DataFrame with the scores.parquet columns."""
    import pyarrow as pa

    return from_arrow(pa.Table.from_pandas(df, preserve_index=False), source=source)


def from_arrow(table, source="<memory>") -> ScoreTable:
    import pyarrow as pa
    import pyarrow.compute as pc

    for col in ("id", "task"):
        if col not in table.column_names:
            raise ScoreTableError(f"{source}: missing column {col!r} (have: {', '.join(table.column_names)})")
    if table.num_rows == 0:
        raise ScoreTableError(
            f"{source}: has no rows: there are no scores to select from (is pool.parquet empty? "
            "rerun `labelwise pool` and `labelwise score`)"
        )
    scores = {}
    for col in SCORE_METRICS:
        if col in table.column_names:
            scores[col] = np.asarray(pc.fill_null(table[col].cast(pa.float64()), float("nan")))
    errors = table["error"].cast(pa.string()) if "error" in table.column_names else None
    embedding = None
    if "embedding" in table.column_names:
        # Rows the scorer could not score carry no embedding (scoring.schema.error_row); they
        # are excluded below, so only the usable rows must have one.
        skip = _error_mask(errors) if errors is not None else None
        embedding = _embedding_matrix(table["embedding"], table["id"], source, skip)
    return from_arrays(
        table["id"].cast(pa.string()),
        table["task"].cast(pa.string()),
        scores,
        embedding,
        errors,
        source,
    )


def _error_mask(err) -> np.ndarray:
    """True where ``error`` is set (null and the empty string are not errors)."""
    import pyarrow.compute as pc

    mask = np.asarray(pc.fill_null(pc.invert(pc.is_null(err)), False), dtype=bool)
    return mask & np.asarray(pc.fill_null(pc.not_equal(err, ""), False), dtype=bool)


def _embedding_matrix(col, ids, source, skip: np.ndarray | None = None) -> np.ndarray | None:
    """The (N, d) float32 matrix of the embedding column.

    Rows in ``skip`` (error rows, excluded from the table afterwards) need no embedding; they
    get NaN. Every other row must have one of the same dimension. None when no usable row
    has an embedding (the scores were made without them).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_null(col.type):  # every value null: the scores were made without embeddings
        return None
    n = len(col)
    use = np.ones(n, dtype=bool) if skip is None else ~np.asarray(skip, dtype=bool)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(col), -1))
    if (lengths[use] < 0).all():  # also when no row is usable
        return None
    d = int(lengths[use].max())
    bad = use & (lengths != d)
    if bad.any():
        bad_ids = np.asarray(ids.to_pylist() if hasattr(ids, "to_pylist") else ids, dtype=object)[bad]
        raise ScoreTableError(
            f"{source}: embedding missing or not {d}-dimensional for {len(bad_ids)} prompt(s): "
            + ", ".join(map(str, bad_ids[:10]))
        )
    if not (~use).any():
        flat = np.asarray(pc.list_flatten(col).cast(pa.float32()))
        return flat.reshape(n, d)
    out = np.full((n, d), np.nan, dtype=np.float32)
    rows = np.flatnonzero(use)
    kept = col.take(pa.array(rows))
    out[rows] = np.asarray(pc.list_flatten(kept).cast(pa.float32())).reshape(len(rows), d)
    return out


def load_scores(path: str | Path, columns: list[str] | None = None) -> ScoreTable:
    """Read scores.parquet (optionally only some columns) into a canonical ScoreTable."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no scores yet; run `labelwise score` first")
    if columns is not None:
        have = set(pq.read_schema(path).names)
        columns = [c for c in ["id", "task", "error", *columns] if c in have]
    return from_arrow(pq.read_table(path, columns=columns), source=str(path))
