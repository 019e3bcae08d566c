"""The hand-labelled Bloom set (tests/data/bloom_labels.jsonl) and the agreement report's
pieces (judging/agreement.py); the measurement itself is `labelwise bench judge-agreement`."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.judging import agreement


def test_the_labelled_set_is_complete_and_spread_over_tasks_and_levels():
    rows = agreement.read_labels(agreement.DEFAULT_LABELS)
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert len({r["task"] for r in rows}) >= 20 and len({r["source"].split("/")[0] for r in rows}) >= 4
    assert {r["bloom"] for r in rows} == set(range(1, 7))
    assert all(r["prompt"].strip() and r["reason"].strip() and "\n" not in r["reason"] for r in rows)


def test_length_levels_keep_the_label_counts_and_follow_length():
    gold = [1, 2, 2, 3, 6]
    levels = agreement.length_levels([50, 10, 40, 30, 20], gold)
    assert sorted(levels) == sorted(gold) and list(levels) == [6, 1, 3, 2, 2]


def test_rows_count_unscored_prompts_as_wrong_and_rho_over_the_scored():
    r = agreement.row("m", [1.0, None, 3.0, 4.0], [1, None, 3, 2], [1, 2, 3, 4], 4)
    assert r["n_scored"] == 3 and r["exact"] == 0.5 and r["within_one"] == 0.5
    assert r["spearman"] == pytest.approx(1.0)
    assert np.isnan(agreement.spearman([1, 1, 1], [1, 2, 3]))
    assert "| m | 3/4 | +1.00" in agreement.format_table([r])
