"""The selector interface: parameters checked in the constructor, one ``select`` call.

Every selector is used the same way and returns the same thing::

    sel = make_selector("weighted_task_diversity", {"base": 5})
    result = sel.select(table, budget=500, seed=0)
    result.ids          # selected ids in selection order (rank 0 first)
    result.allocation   # DataFrame: task, pool_size, confidence, allocated, selected

The allocation's ``confidence`` is the task confidence the selector used (``confidence``
parameter of weighted_task_diversity, activeit and dpp: one of confidence.SIGNALS, the paper's
``sequence`` by default); selection.json names it and its definition. Selectors that use no
confidence report the sequence one.

A subclass implements ``_choose(table, budget, rng) -> Choice`` (row indices into the
canonical table, in selection order, plus the per-task allocation when it has one);
``select`` does the budget checks, the seeding and the per-task report.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, ClassVar

import numpy as np

from labelwise import contracts
from labelwise.selection import confidence
from labelwise.selection.registry import SelectorParamError
from labelwise.selection.table import ScoreTable, ScoreTableError


class BudgetError(ValueError):
    """A budget that cannot be met; the message says why."""


@dataclasses.dataclass
class Choice:
    """What a selector's ``_choose`` returns."""

    rows: np.ndarray  # row indices into the canonical table, selection order
    allocated: np.ndarray | None = None  # (T,) float per-task allocation, if the selector has one
    info: dict = dataclasses.field(default_factory=dict)  # choices worth recording (e.g. kernel structure)
    confidence: str = "sequence"  # the confidence signal the selector used (confidence.SIGNALS)
    columns: dict = dataclasses.field(default_factory=dict)  # name -> (len(rows),) per-pick scores for selection.parquet


@dataclasses.dataclass
class Selection:
    """The result of every selector."""

    selector: str
    params: dict
    budget: int
    seed: int
    ids: list[str]
    tasks: list[str]
    allocation: Any  # pandas DataFrame: task, pool_size, confidence, allocated, selected
    info: dict
    excluded: list[dict]
    confidence: dict = dataclasses.field(default_factory=lambda: {"kind": "sequence"})  # confidence.describe
    columns: dict = dataclasses.field(default_factory=dict)  # per-pick scores (selection.parquet), in ids order

    def record(self) -> dict:
        """What selection.json holds."""
        return {
            "selector": self.selector,
            "params": self.params,
            "budget": self.budget,
            "seed": self.seed,
            "selected": len(self.ids),
            "tasks_selected": int((self.allocation["selected"] > 0).sum()),
            "info": self.info,
            "confidence": self.confidence,
            "excluded": {"count": len(self.excluded), "rows": self.excluded[:1000]},
        }


def param_error(param: str, message: str) -> SelectorParamError:
    return SelectorParamError(param, message)


def check_param(cond: bool, param: str, message: str) -> None:
    if not cond:
        raise SelectorParamError(param, message)


def check_number(value, param: str, *, positive=False, nonnegative=False, integer=False) -> None:
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok_type = ok_type and float(value).is_integer()
    check_param(ok_type, param, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    check_param(math.isfinite(value), param, f"must be finite, got {value!r}")
    if positive:
        check_param(value > 0, param, f"must be > 0, got {value!r}")
    if nonnegative:
        check_param(value >= 0, param, f"must be >= 0, got {value!r}")


def check_choice(value, param: str, choices) -> None:
    check_param(value in choices, param, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")


class Selector:
    """Base class. Subclasses set ``name`` and define ``__init__`` with keyword parameters."""

    name: ClassVar[str] = "?"
    # contracts.MIN_TASKS_TASK_AWARE for selectors that spread the budget over tasks; the pool
    # stage reports both minimums in pool_meta.json (selection_limits)
    min_tasks: ClassVar[int] = 1
    min_prompts: ClassVar[int] = contracts.MIN_PROMPTS  # a pool of one prompt leaves nothing to choose

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    # parameters left out of get_params while they have this value (added later with a
    # default that keeps the old behaviour: old requests, manifests and records stay equal)
    quiet_defaults: ClassVar[dict] = {}

    def get_params(self) -> dict:
        """Every parameter with its value (defaults included, but quiet_defaults), like scikit-learn."""
        params = {p: getattr(self, p) for p in self.param_names()}
        return {p: v for p, v in params.items() if not (p in self.quiet_defaults and self.quiet_defaults[p] == v)}

    def needs_judgments(self) -> bool:
        """True when the selector reads judgments.parquet (selection/judgments.py: attach)."""
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _choose(self, table: ScoreTable, budget: int, rng: np.random.Generator) -> Choice:
        raise NotImplementedError

    def select(self, table: ScoreTable, budget: int, seed: int = 0, allow_full_pool: bool = False) -> Selection:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise BudgetError(f"budget must be an integer, got {budget!r}")
        budget = int(budget)
        if budget <= 0:
            raise BudgetError(f"budget must be positive, got {budget}")
        n = table.n
        if n == 0:
            raise BudgetError(f"{table.source}: no usable prompts to select from")
        if n < self.min_prompts:
            raise BudgetError(f"{table.source}: {n} usable prompt(s); {self.name} needs at least {self.min_prompts} to choose from")
        if table.n_tasks < self.min_tasks:
            raise BudgetError(
                f"{table.source}: the pool has {table.n_tasks} task(s); {self.name} spreads the budget over "
                f"tasks and needs at least {self.min_tasks} (pool_meta.json: selection_limits). Give the "
                "pool a task column or pool.infer_tasks, or use random or an uncertainty selector"
            )
        if budget > n:
            if not allow_full_pool:
                raise BudgetError(
                    f"budget {budget} is larger than the {n} usable prompts in {table.source}"
                    + (f" ({len(table.excluded)} excluded for scoring errors)" if table.excluded else "")
                    + "; lower select.budget or set select.allow_full_pool: true to take them all"
                )
            budget = n
        rng = np.random.default_rng(seed)
        choice = self._choose(table, budget, rng)
        rows = np.asarray(choice.rows, dtype=np.int64)
        if len(rows) != budget or (len(rows) and np.bincount(rows, minlength=n).max() > 1):
            raise AssertionError(f"{self.name} chose {len(rows)} rows, not {budget} distinct ones")
        allocation = allocation_frame(table, rows, choice.allocated, choice.confidence)
        return Selection(
            selector=self.name,
            params=self.get_params(),
            budget=budget,
            seed=int(seed),
            ids=table.ids[rows].tolist(),
            tasks=np.asarray(table.task_names, dtype=object)[table.task_codes[rows]].tolist(),
            allocation=allocation,
            info=choice.info,
            excluded=list(table.excluded),
            confidence=confidence.describe(table, choice.confidence),
            columns=_pick_columns(choice.columns, len(rows), self.name),
        )


def _pick_columns(columns: dict, n: int, name: str) -> dict:
    out = {}
    for key, values in columns.items():
        values = np.asarray(values)
        if values.shape != (n,):
            raise AssertionError(f"{name}: column {key!r} has shape {values.shape}, not ({n},)")
        out[key] = values
    return out


def allocation_frame(table: ScoreTable, rows: np.ndarray, allocated: np.ndarray | None, signal: str = "sequence"):
    import pandas as pd

    sizes = table.task_sizes()
    selected = np.bincount(table.task_codes[rows], minlength=table.n_tasks)
    try:
        conf = np.exp(confidence.task_log_confidence(table, signal))
    except ScoreTableError:  # a selector that needs no confidence, on scores without it
        conf = np.full(table.n_tasks, np.nan)
    return pd.DataFrame(
        {
            "task": table.task_names,
            "pool_size": sizes.astype(np.int64),
            "confidence": conf.astype(np.float64),
            "allocated": (selected if allocated is None else allocated).astype(np.float64),
            "selected": selected.astype(np.int64),
        }
    )


def tie_broken_order(key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices sorted by ``key`` ascending, ties broken by a seeded random order."""
    return np.lexsort((rng.permutation(len(key)), key))
