"""The run folder's file contracts (labelwise.contracts): readers name the file and what is
wrong with it, and the one schema of scores.parquet is what its writer and readers use."""

from __future__ import annotations

import pandas as pd
import pytest

from labelwise import contracts


def test_allocation_reader_names_the_file_and_the_missing_columns(tmp_path):
    path = tmp_path / contracts.ALLOCATION
    with pytest.raises(FileNotFoundError, match="allocation.csv does not exist: run `labelwise select` first"):
        contracts.read_allocation(path)
    pd.DataFrame({"task": ["a"], "pool_size": [3], "selected": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"allocation.csv: missing column\(s\) confidence, allocated"):
        contracts.read_allocation(path)
    pd.DataFrame({c: [1] for c in contracts.ALLOCATION_COLUMNS}).to_csv(path, index=False)
    assert list(contracts.read_allocation(path).columns) == contracts.ALLOCATION_COLUMNS


def test_train_log_reader_takes_what_the_caller_needs(tmp_path):
    path = tmp_path / contracts.TRAIN_LOG
    pd.DataFrame({"step": [1], "epoch": [0], "loss": [2.0]}).to_csv(path, index=False)
    assert contracts.read_train_log(path)["loss"].tolist() == [2.0]
    with pytest.raises(ValueError, match="missing column.*tokens"):
        contracts.read_train_log(path, contracts.TRAIN_LOG_COLUMNS)


def test_scores_schema_types_every_column_and_the_selectors_metrics():
    plain, embedded = contracts.scores_schema(False), contracts.scores_schema(True)
    assert plain.names == contracts.SCORE_COLUMNS
    assert embedded.names == [*contracts.SCORE_COLUMNS, "embedding"]
    types = {f.name: str(f.type) for f in embedded}
    assert all(types[c] in ("double", "int64") for c in contracts.SCORE_METRICS)
    assert types["embedding"] == "list<item: float>"
