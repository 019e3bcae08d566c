"""ActiveIT (Kung et al. 2023): annotate whole tasks, least confident task first.

Tasks are taken in ascending task confidence (mean probability, as in WTD) until the
budget is spent; the last task is cut to fit with uniformly random picks (seeded).
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.base import Choice, Selector, check_param, task_log_confidence


class ActiveIT(Selector):
    name = "activeit"
    min_tasks = 2

    def __init__(self, length_normalized: bool = False):
        check_param(isinstance(length_normalized, bool), "length_normalized", f"must be true or false, got {length_normalized!r}")
        self.length_normalized = length_normalized

    def _choose(self, table, budget, rng):
        table.require_finite("logconf")
        if self.length_normalized:
            table.require_finite("n_tokens")
        sizes = table.task_sizes()
        log_conf = task_log_confidence(table, self.length_normalized)
        order = np.lexsort((np.arange(table.n_tasks), log_conf))
        take = np.minimum(sizes[order], np.maximum(budget - (np.cumsum(sizes[order]) - sizes[order]), 0))
        alloc = np.zeros(table.n_tasks)
        alloc[order] = take
        perm = rng.permutation(table.n)
        by_task = perm[np.argsort(table.task_codes[perm], kind="stable")]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = np.concatenate([by_task[starts[t]: starts[t] + int(alloc[t])] for t in order if alloc[t] > 0])
        taken = [table.task_names[t] for t in order if alloc[t] > 0][:50]
        return Choice(rows, alloc, {"tasks_taken": taken}, length_normalized=self.length_normalized)
