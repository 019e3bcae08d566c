"""Weighted Task Diversity (paper 4.3): a_t = clamp(C / conf_t, base, |X_t|), sum a_t = B.

conf_t is the mean over the task of conf(x) = exp(logconf) (a mean of probabilities,
computed as logsumexp - log n); ``length_normalized`` uses exp(logconf / n_tokens)
instead. Tasks smaller than ``base`` take all their prompts. When B cannot give every
task min(base, |X_t|), the allocation falls back to Task Diversity's water filling (the
fairest split below the base) and the result records it.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.allocation import round_robin, water_fill, weighted_allocation
from labelwise.selection.base import Choice, Selector, check_number, check_param, task_log_confidence


class WeightedTaskDiversity(Selector):
    name = "weighted_task_diversity"
    min_tasks = 2

    def __init__(self, base: int = 5, length_normalized: bool = False):
        check_number(base, "base", nonnegative=True, integer=True)
        check_param(isinstance(length_normalized, bool), "length_normalized", f"must be true or false, got {length_normalized!r}")
        self.base = int(base)
        self.length_normalized = length_normalized

    def _choose(self, table, budget, rng):
        table.require_finite("logconf")
        if self.length_normalized:
            table.require_finite("n_tokens")
        sizes = table.task_sizes()
        log_conf = task_log_confidence(table, self.length_normalized)
        floor = np.minimum(self.base, sizes).sum()
        info = {"base_total": int(floor)}
        if budget < floor:
            alloc = water_fill(sizes, budget)
            info["fallback"] = (
                f"budget {budget} < sum of min(base={self.base}, task size) = {int(floor)}: "
                "allocated by water filling (task diversity) instead"
            )
        else:
            alloc, c = weighted_allocation(sizes, log_conf, budget, self.base)
            info["C"] = c
        rows = round_robin(table.task_codes, alloc, budget, rng)
        return Choice(rows, alloc, info, length_normalized=self.length_normalized)
