"""scores.parquet files that are valid Parquet but hold nothing to select from (issue 15)."""

from __future__ import annotations

import pandas as pd
import pytest

from labelwise import runio
from labelwise.selection.table import ScoreTableError, load_scores

COLUMNS = ["id", "task", "logconf", "n_tokens", "mean_logprob", "mean_entropy", "mean_margin", "min_margin", "error", "embedding"]


def test_a_zero_row_scores_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "scores.parquet"
    runio.write_parquet(path, pd.DataFrame({c: [] for c in COLUMNS}))
    with pytest.raises(ScoreTableError, match=rf"{path}: has no rows: there are no scores to select from"):
        load_scores(path)


def test_an_embedding_column_of_nulls_means_no_embeddings(tmp_path):
    path = tmp_path / "scores.parquet"
    runio.write_parquet(path, pd.DataFrame({
        "id": ["a", "b"], "task": ["t", "t"], "logconf": [-1.0, -2.0], "n_tokens": [3, 4],
        "error": [None, None], "embedding": [None, None],
    }))
    table = load_scores(path)
    assert list(table.ids) == ["a", "b"] and table.embedding is None
