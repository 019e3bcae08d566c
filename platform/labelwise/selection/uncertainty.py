"""Uncertainty baselines (Bhatt et al. 2024): rank prompts by one score column.

least_confidence: lowest logconf (sequence probability) first; mean_entropy: highest mean
token entropy first; mean_margin / min_margin: smallest top-1 minus top-2 probability
margin (mean over tokens / smallest token) first. Ties: seeded random order.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.base import Choice, Selector, tie_broken_order


class _ByScore(Selector):
    column: str = ""
    descending: bool = False  # True: largest score first

    def __init__(self):
        pass

    def _choose(self, table, budget, rng):
        values = table.require_finite(self.column)
        key = -values if self.descending else values
        return Choice(tie_broken_order(key, rng)[:budget], info={"score": self.column, "order": "descending" if self.descending else "ascending"})


class LeastConfidence(_ByScore):
    name = "least_confidence"
    column = "logconf"


class MeanEntropy(_ByScore):
    name = "mean_entropy"
    column = "mean_entropy"
    descending = True


class MeanMargin(_ByScore):
    name = "mean_margin"
    column = "mean_margin"


class MinMargin(_ByScore):
    name = "min_margin"
    column = "min_margin"
