"""The judge's answers (judgments.parquet) and the prompt texts, aligned to a ScoreTable.

Only the selectors that read them load them (``thtb``, and ``within_task: hardness`` of the
task-aware selectors; :func:`needs_judgments`). :func:`attach` fills the table's
``judgments``, ``prompts`` (pool.parquet) and ``answer_chars`` (scores.parquet's greedy
``answer``, in characters).

Rule for failed or partial judgments: a row whose ``error`` is set counts as having none of
the parts; a null part is missing. A stage that needs a missing part ranks the row last
(below every judged row, ties by the seed), so it is chosen only when the budget reaches
it; the selector counts these rows and records them. Values outside the contract's ranges
(bloom_score 1..21, quality [0, 1], discipline_count >= 0, discipline_spread finite >= 0)
are an error naming the file, the column and the ids, as are pool prompts the file lacks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from labelwise.selection.table import ScoreTableError

PARTS = {  # what each judged part reads
    "quality": ("quality",),
    "ihs": ("bloom_score", "discipline_count", "discipline_spread"),
}
RANGES = {  # column -> (low, high), inclusive
    "bloom_score": (1.0, 21.0),
    "quality": (0.0, 1.0),
    "discipline_count": (0.0, np.inf),
    "discipline_spread": (0.0, np.inf),
}


@dataclasses.dataclass
class Judgments:
    """Per row of the table: the judged numbers (NaN where missing) and the error mask."""

    values: dict[str, np.ndarray]  # column -> (N,) float64, NaN for null or errored rows
    error: np.ndarray  # (N,) bool: the judgment failed
    judges: list[str]  # the distinct judges that wrote the file
    source: str

    def missing(self, part: str) -> np.ndarray:
        """(N,) bool: the row lacks something the part needs (an error counts as lacking all)."""
        out = self.error.copy()
        for col in PARTS[part]:
            out |= np.isnan(self.values[col])
        return out

    def summary(self, rows: np.ndarray | None = None) -> dict:
        """Counts for selection.json: rows, errors, rows missing each part (over ``rows``)."""
        rows = np.arange(len(self.error)) if rows is None else np.asarray(rows)
        return {
            "rows": int(len(rows)),
            "errors": int(self.error[rows].sum()),
            "missing": {part: int(self.missing(part)[rows].sum()) for part in PARTS},
            "judges": self.judges,
            "source": self.source,
        }


def needs_judgments(select_config) -> bool:
    """True when the selection reads judgments.parquet (thtb, or within_task: hardness).

    ``select_config``: a SelectConfig (or anything with ``strategy`` and ``params``), or a
    dict with those keys."""
    from labelwise.selection.registry import make_selector

    if isinstance(select_config, dict):
        strategy, params = select_config.get("strategy"), select_config.get("params")
    else:
        strategy, params = select_config.strategy, select_config.params
    return bool(make_selector(strategy, params).needs_judgments())


def _positions(table, ids: list, source: str, what: str) -> np.ndarray:
    """For each table row, its index in ``ids``; table ids missing there are an error."""
    import pandas as pd

    index = pd.Index(ids)
    if not index.is_unique:
        dups = sorted(set(index[index.duplicated()].tolist()))
        raise ScoreTableError(f"{source}: duplicate id(s) {', '.join(map(str, dups[:10]))}")
    pos = index.get_indexer(pd.Index(table.ids))
    if (pos < 0).any():
        lacking = table.ids[pos < 0]
        raise ScoreTableError(
            f"{source}: {len(lacking)} scored prompt(s) have no {what}: "
            + ", ".join(map(str, lacking[:10]))
            + (f" and {len(lacking) - 10} more" if len(lacking) > 10 else "")
            + (" (rerun `labelwise judge`: the judgments are from another pool)" if what == "judgment" else "")
        )
    return pos


def align(arrow_table, table, source: str) -> Judgments:
    """The judgments of ``table``'s rows (ids in the file that the table lacks are ignored:
    prompts excluded for scoring errors)."""
    import pyarrow.compute as pc

    pos = _positions(table, arrow_table["id"].to_pylist(), source, "judgment")
    err = arrow_table["error"]
    err_mask = np.asarray(pc.fill_null(pc.and_(pc.invert(pc.is_null(err)), pc.not_equal(err, "")), False), dtype=bool)[pos]
    values = {}
    for col, (low, high) in RANGES.items():
        v = np.asarray(pc.fill_null(arrow_table[col].cast("float64"), np.nan), dtype=np.float64)[pos]
        bad = ~err_mask & ~np.isnan(v) & ~(np.isfinite(v) & (v >= low) & (v <= high))
        if bad.any():
            raise ScoreTableError(
                f"{source}: column {col!r} is outside [{low:g}, {high:g}] for {int(bad.sum())} prompt(s): "
                + ", ".join(f"{i} ({x:g})" for i, x in zip(table.ids[bad][:10], v[bad][:10]))
            )
        values[col] = np.where(err_mask, np.nan, v)
    judges = sorted({j for j in arrow_table["judge"].to_pylist() if j is not None})
    return Judgments(values=values, error=err_mask, judges=judges, source=source)


def attach(table, scores_path, pool_path=None, judgments_path=None) -> None:
    """Fill ``table.judgments``, ``table.prompts`` and ``table.answer_chars``; the pool and the
    judgments default to the files next to scores.parquet (the run folder)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from labelwise.contracts import JUDGMENTS, POOL, read_judgments

    scores_path = Path(scores_path)
    pool_path = Path(pool_path) if pool_path is not None else scores_path.with_name(POOL)
    judgments_path = Path(judgments_path) if judgments_path is not None else scores_path.with_name(JUDGMENTS)
    if not judgments_path.exists():
        raise FileNotFoundError(
            f"{judgments_path} does not exist: this selection (thtb, or within_task: hardness) needs the "
            "judge's scores; run `labelwise judge JOB.yaml` first"
        )
    judged = align(read_judgments(judgments_path), table, str(judgments_path))
    if not pool_path.exists():
        raise FileNotFoundError(f"{pool_path}: the pool is needed for the prompt texts; run `labelwise pool` first")
    pool = pq.read_table(pool_path, columns=["id", "prompt"])
    prompts = pc.fill_null(pool["prompt"].cast("string"), "").to_pylist()
    texts = np.asarray(prompts, dtype=object)[_positions(table, pool["id"].to_pylist(), str(pool_path), "prompt")]
    if "answer" not in pq.read_schema(scores_path).names:
        raise ScoreTableError(f"{scores_path}: no 'answer' column (the greedy answers); rescore with `labelwise score`")
    scores = pq.read_table(scores_path, columns=["id", "answer"])
    chars = np.asarray(pc.fill_null(pc.utf8_length(scores["answer"].cast("string")), 0), dtype=np.float64)
    answer_chars = chars[_positions(table, scores["id"].to_pylist(), str(scores_path), "answer")]
    table.judgments, table.prompts, table.answer_chars = judged, texts, answer_chars  # all or nothing


def require(table, what: str) -> Judgments:
    """The attached judgments, or an error saying how to get them."""
    if table.judgments is None or table.prompts is None or table.answer_chars is None:
        raise ScoreTableError(
            f"{table.source}: {what} needs the judge's scores (judgments.parquet) and the prompts; the select "
            "stage attaches them (labelwise.selection.judgments.attach); run `labelwise judge JOB.yaml` first"
        )
    return table.judgments
