"""Task Diversity (paper 4.2): water-filling allocation, then Algorithm 1's round robin;
``within_task`` picks inside each task (selection/within_task.py; random by default)."""

from __future__ import annotations

from labelwise.contracts import MIN_TASKS_TASK_AWARE
from labelwise.selection.allocation import round_robin, water_fill
from labelwise.selection.base import Choice, Selector
from labelwise.selection.within_task import WithinTaskParam, check


class TaskDiversity(WithinTaskParam, Selector):
    name = "task_diversity"
    min_tasks = MIN_TASKS_TASK_AWARE

    def __init__(self, within_task: str = "random"):
        self.within_task = check(within_task)

    def _choose(self, table, budget, rng):
        ranker = self.ranker(table, rng)  # checks its inputs before any work
        alloc = water_fill(table.task_sizes(), budget)
        rows = round_robin(table.task_codes, alloc, budget, rng, within=ranker)
        return Choice(rows, alloc, ranker.record(rows), columns=ranker.columns(rows))
