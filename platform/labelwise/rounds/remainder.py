"""The unlabeled remainder: what a round may still select from.

Pure functions over ids, so that the invariant "no prompt is selected twice across rounds"
can be tested without models (tests/test_rounds_remainder.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable


def taken_ids(earlier: Iterable[Iterable[str]], pool_ids: Iterable[str]) -> set[str]:
    """The ids selected by earlier rounds, after checking them: no id twice, every id in the pool."""
    pool = set(pool_ids)
    taken: set[str] = set()
    for r, ids in enumerate(earlier, 1):
        ids = list(ids)
        again = sorted((set(ids) & taken) | {i for i, n in Counter(ids).items() if n > 1})
        if again:
            raise ValueError(f"round {r} selected {len(again)} prompt(s) a round had already selected, e.g. {again[0]!r}")
        unknown = sorted(set(ids) - pool)
        if unknown:
            raise ValueError(f"round {r} selected {len(unknown)} id(s) that are not in the pool, e.g. {unknown[0]!r}")
        taken.update(ids)
    return taken


def remainder(pool, earlier: Iterable[Iterable[str]]):
    """The rows of ``pool`` (a DataFrame with an ``id`` column) that no earlier round
    selected, in pool order."""
    taken = taken_ids(earlier, pool["id"])
    return pool[~pool["id"].isin(taken)].reset_index(drop=True)
