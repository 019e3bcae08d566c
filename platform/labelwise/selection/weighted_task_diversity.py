"""Weighted Task Diversity (paper 4.3): a_t = clamp(C / conf_t, base, |X_t|), sum a_t = B.

conf_t is the task's mean confidence under ``confidence`` (selection/confidence.py): the
paper's sequence probability by default, or a signal that does not shrink with answer
length (``per_token``, ``mean_entropy``, ``mean_margin``, ``length_calibrated``).
``length_normalized: true`` is the older spelling of ``confidence: per_token``. Tasks
smaller than ``base`` take all their prompts. When B cannot give every task
min(base, |X_t|), the allocation falls back to Task Diversity's water filling (the fairest
split below the base) and the result records it. ``within_task`` picks inside each task
(selection/within_task.py; random by default, as the paper).
"""

from __future__ import annotations

import numpy as np

from labelwise.contracts import MIN_TASKS_TASK_AWARE
from labelwise.selection import confidence as signals
from labelwise.selection.allocation import round_robin, water_fill, weighted_allocation
from labelwise.selection.base import Choice, Selector, check_number
from labelwise.selection.within_task import WithinTaskParam, check


class WeightedTaskDiversity(WithinTaskParam, Selector):
    name = "weighted_task_diversity"
    min_tasks = MIN_TASKS_TASK_AWARE

    def __init__(self, base: int = 5, confidence: str = "sequence", length_normalized: bool = False,
                 within_task: str = "random"):
        check_number(base, "base", nonnegative=True, integer=True)
        self.base = int(base)
        self.confidence = signals.resolve(confidence, length_normalized)
        self.length_normalized = self.confidence == "per_token" and length_normalized
        self.within_task = check(within_task)

    def _choose(self, table, budget, rng):
        ranker = self.ranker(table, rng, self.confidence)
        sizes = table.task_sizes()
        log_conf = signals.task_log_confidence(table, self.confidence)
        floor = np.minimum(self.base, sizes).sum()
        info = {"base_total": int(floor)}
        if budget < floor:
            alloc = water_fill(sizes, budget)
            info["fallback"] = (
                f"budget {budget} < sum of min(base={self.base}, task size) = {int(floor)}: "
                "allocated by water filling (task diversity) instead"
            )
        else:
            alloc, log_c = weighted_allocation(sizes, log_conf, budget, self.base)
            info["log_C"] = log_c
        rows = round_robin(table.task_codes, alloc, budget, rng, within=ranker)
        info.update(ranker.record(rows))
        return Choice(rows, alloc, info, confidence=self.confidence, columns=ranker.columns(rows))
