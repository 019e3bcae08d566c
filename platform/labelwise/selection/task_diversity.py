"""Task Diversity (paper 4.2): water-filling allocation, then Algorithm 1's round robin."""

from __future__ import annotations

from labelwise.contracts import MIN_TASKS_TASK_AWARE
from labelwise.selection.allocation import round_robin, water_fill
from labelwise.selection.base import Choice, Selector


class TaskDiversity(Selector):
    name = "task_diversity"
    min_tasks = MIN_TASKS_TASK_AWARE

    def __init__(self):
        pass

    def _choose(self, table, budget, rng):
        alloc = water_fill(table.task_sizes(), budget)
        return Choice(round_robin(table.task_codes, alloc, budget, rng), alloc)
