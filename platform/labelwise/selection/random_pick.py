"""Random: a seeded uniform sample without replacement."""

from __future__ import annotations

from labelwise.selection.base import Choice, Selector


class RandomSelector(Selector):
    name = "random"

    def __init__(self):
        pass

    def _choose(self, table, budget, rng):
        return Choice(rng.permutation(table.n)[:budget])
