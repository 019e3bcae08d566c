"""``within_task``: which prompts a task-aware selector takes inside each task.

task_diversity, weighted_task_diversity and activeit decide how many prompts each task gets;
this decides which. The per-task counts never change, only the choice inside the task:

* ``random`` (default; the paper): a uniformly random order, seeded (bit for bit the
  selectors' behaviour before this parameter existed);
* ``least_confidence``: the task's least confident prompts first, under the selector's
  confidence signal (selection/confidence.py; task_diversity uses ``sequence``);
* ``hardness``: THTB's intrinsic then extrinsic hardness cuts (selection/hardness.py) on
  the task's prompts with THTB's default fractions, clusters and TF-IDF features, ending at
  the task's count; needs judgments.parquet (`labelwise judge`);
* ``kcenter``: greedy farthest-first on the prompt embeddings inside the task (the first
  center a seeded random prompt of the task); needs ``score.embeddings: true``.

Ties are broken by a seeded permutation. The scores behind the picks (``log_confidence``,
or THTB's bloom_norm, ic, ihs, irei, silhouette, ehs and stage) go into selection.parquet.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.allocation import random_by_task
from labelwise.selection.registry import SelectorParamError

MODES = ("random", "least_confidence", "hardness", "kcenter")


def check(mode) -> str:
    if mode not in MODES:
        raise SelectorParamError("within_task", f"must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode


class Ranker:
    """``ranker(counts)`` -> every row grouped by task, each task's picks first in rank order
    (what allocation.round_robin's ``within`` takes). Checks its inputs when built."""

    def __init__(self, mode: str, table, rng: np.random.Generator, signal: str = "sequence"):
        from labelwise.selection import confidence, judgments

        self.mode, self.table, self.rng = mode, table, rng
        self.scores: dict[str, np.ndarray] = {}
        self.info: dict = {}
        if mode == "kcenter":
            self.embedding = table.require_embedding()
        elif mode == "hardness":
            self.judgments = judgments.require(table, "within_task: hardness")
        elif mode == "least_confidence":
            self.scores["log_confidence"] = confidence.prompt_log_confidence(table, signal)

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        table, rng = self.table, self.rng
        if self.mode == "random":
            return random_by_task(table.task_codes, rng)
        if self.mode == "least_confidence":
            return np.lexsort((rng.permutation(table.n), self.scores["log_confidence"], table.task_codes))
        by_task = np.argsort(table.task_codes, kind="stable")
        sizes = table.task_sizes()
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for t in np.flatnonzero(np.asarray(counts) > 0):
            segment = by_task[starts[t] : starts[t] + sizes[t]]
            picks = self._rank(segment, int(counts[t]))
            by_task[starts[t] : starts[t] + sizes[t]] = np.concatenate([picks, np.setdiff1d(segment, picks)])
        return by_task

    def _rank(self, rows: np.ndarray, count: int) -> np.ndarray:
        if self.mode == "kcenter":
            from labelwise.selection.kcenter import farthest_first

            centers, _ = farthest_first(self.embedding[rows], count, self.rng)
            return rows[centers]
        from labelwise.selection import hardness
        from labelwise.selection.thtb import THTB

        ref = THTB()
        result = hardness.staged(self.table, rows, count, ref.stages()[1:], self.rng, ref.clusters, ref.max_features)
        for name, values in result.columns.items():
            if name not in self.scores:
                self.scores[name] = np.full(self.table.n, None if name == "stage" else np.nan,
                                            dtype=object if name == "stage" else np.float64)
            self.scores[name][result.rows] = values
        for cut in result.cuts:
            case = cut.get("silhouette", {}).get("case")
            if case:
                cases = self.info.setdefault("silhouette_cases", {})
                cases[case] = cases.get(case, 0) + 1
        return result.rows

    def columns(self, rows: np.ndarray) -> dict:
        """The scores of the chosen rows (selection order), for selection.parquet."""
        return {name: values[rows] for name, values in self.scores.items()}

    def record(self, rows: np.ndarray) -> dict:
        """What selection.json records: the mode, and for hardness the judgment counts."""
        if self.mode == "random":
            return {}  # the paper's: nothing to add (selection.json as before)
        out = {"within_task": self.mode, **self.info}
        if self.mode == "hardness":
            from labelwise.selection.judgments import PARTS

            out["judgments"] = self.judgments.summary()
            out["selected_missing"] = {part: int(self.judgments.missing(part)[rows].sum()) for part in PARTS}
        return out


class WithinTaskParam:
    """Mixin of the task-aware selectors: the ``within_task`` parameter (left out of their
    recorded parameters while it is ``random``, so old requests and manifests still match)."""

    quiet_defaults = {"within_task": "random"}
    within_task: str = "random"

    def needs_judgments(self) -> bool:
        return self.within_task == "hardness"

    def ranker(self, table, rng, signal: str = "sequence") -> Ranker:
        return Ranker(self.within_task, table, rng, signal)
