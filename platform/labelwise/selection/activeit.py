"""ActiveIT (Kung et al. 2023): annotate whole tasks, least confident task first.

Tasks are taken in ascending task confidence (mean under ``confidence``, as in WTD:
selection/confidence.py) until the budget is spent; the last task is cut to fit with
uniformly random picks (seeded), or with ``within_task``'s ranking (selection/within_task.py).
"""

from __future__ import annotations

import numpy as np

from labelwise.contracts import MIN_TASKS_TASK_AWARE
from labelwise.selection import confidence as signals
from labelwise.selection.base import Choice, Selector
from labelwise.selection.within_task import WithinTaskParam, check


class ActiveIT(WithinTaskParam, Selector):
    name = "activeit"
    min_tasks = MIN_TASKS_TASK_AWARE

    def __init__(self, confidence: str = "sequence", length_normalized: bool = False, within_task: str = "random"):
        self.confidence = signals.resolve(confidence, length_normalized)
        self.length_normalized = self.confidence == "per_token" and length_normalized
        self.within_task = check(within_task)

    def _choose(self, table, budget, rng):
        ranker = self.ranker(table, rng, self.confidence)
        sizes = table.task_sizes()
        log_conf = signals.task_log_confidence(table, self.confidence)
        order = np.lexsort((np.arange(table.n_tasks), log_conf))
        take = np.minimum(sizes[order], np.maximum(budget - (np.cumsum(sizes[order]) - sizes[order]), 0))
        alloc = np.zeros(table.n_tasks)
        alloc[order] = take
        by_task = ranker(alloc.astype(np.int64))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = np.concatenate([by_task[starts[t]: starts[t] + int(alloc[t])] for t in order if alloc[t] > 0])
        taken = [table.task_names[t] for t in order if alloc[t] > 0][:50]
        return Choice(rows, alloc, {"tasks_taken": taken, **ranker.record(rows)}, confidence=self.confidence,
                      columns=ranker.columns(rows))
