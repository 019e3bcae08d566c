"""Sweep configuration (the ``sweep:`` section of a job YAML).

    sweep:
      strategies: [random, task_diversity, weighted_task_diversity, least_confidence]
      budgets: [40, 80]
      seeds: [0, 1]
      bases: [5]                    # WTD base allocation (only weighted_task_diversity uses it)
      confidences: [sequence, per_token]  # select.params.confidence of the selectors that take one
      within_tasks: [random, hardness]    # select.params.within_task of the task-aware selectors
      grid: {train.lr: [5e-4, 1e-3]}  # any other stage parameter: dotted key -> values
      full_pool: true               # plus one model trained on the whole pool per seed
      rounds: [1, 3]                # one batch of k, and 3 rounds of k/3 (labelwise.rounds)

Every combination is one trial with its own run folder ``<run_dir>/trials/<name>/``; pool and
scores are computed once in ``run_dir`` before the trials.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from labelwise.config import check, check_seed

# job sections a grid key may change (pool and score are computed once for the whole sweep)
GRID_SECTIONS = ("select", "annotate", "train", "evaluate", "model")
FIXED_IN_SWEEP = ("model.name",)


@dataclasses.dataclass
class SweepConfig:
    strategies: list[str] = dataclasses.field(default_factory=lambda: ["random", "weighted_task_diversity"])
    """Selector names (labelwise.selection.registry)."""
    budgets: list[int] = dataclasses.field(default_factory=lambda: [50])
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    """Each seed is the job seed of a trial: selection and training randomness."""
    bases: list[int] = dataclasses.field(default_factory=lambda: [5])
    """WTD base allocations (select.params.base of weighted_task_diversity trials)."""
    confidences: list[str] | None = None
    """Confidence signals (select.params.confidence) for the selectors that take one
    (weighted_task_diversity, activeit, dpp); null: each selector's default. Other selectors
    run once per point whatever this lists."""
    within_tasks: list[str] | None = None
    """Within-task rankings (select.params.within_task: random, least_confidence, hardness,
    kcenter) for the selectors that take one (task_diversity, weighted_task_diversity,
    activeit); null: random. Other selectors run once per point whatever this lists."""
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    """Other stage parameters: dotted key (select./annotate./train./evaluate./model.) -> values."""
    full_pool: bool = True
    """Also train one model on the whole pool per seed (the reference of the report)."""
    trial_cpus: float = 1.0
    """CPUs a trial holds (selection, annotation and in-process evaluation run there)."""
    trial_gpus: float = 0.0
    worker_cpus: int = 1
    """CPUs per Ray Train worker of a trial (train.cpus_per_worker when that is null)."""
    max_concurrent_trials: int | None = None
    """null: as many as the cluster's CPUs hold (trial + its training workers)."""
    max_failures: int = 0
    """Retries of a failed trial inside one sweep run (a rerun retries failed trials anyway)."""
    report: bool = True
    """Write report.md / report.html in run_dir at the end."""
    rounds: list[int] | None = None
    """Rounds per trial (null: one batch, as before): 1 is one batch of k, n > 1 is n rounds that
    split k evenly (rounds.count: n), so all are compared at equal total budget."""

    def __post_init__(self):
        from labelwise.selection.confidence import NAMES as SIGNALS
        from labelwise.selection.registry import NAMES
        from labelwise.selection.within_task import MODES

        check(len(self.strategies) > 0, "strategies", "must list at least one selector")
        for s in self.strategies:
            check(s in NAMES, "strategies", f"unknown selector {s!r} (valid: {', '.join(NAMES)})")
        check(len(set(self.strategies)) == len(self.strategies), "strategies", "lists a selector twice")
        check(len(self.budgets) > 0, "budgets", "must list at least one budget")
        check(all(b > 0 for b in self.budgets), "budgets", "every budget must be a positive number of prompts")
        check(len(set(self.budgets)) == len(self.budgets), "budgets", "lists a budget twice")
        check(len(self.seeds) > 0, "seeds", "must list at least one seed")
        check(len(set(self.seeds)) == len(self.seeds), "seeds", "lists a seed twice")
        for i, seed in enumerate(self.seeds):
            check_seed(seed, f"seeds[{i}]")
        check(len(self.bases) > 0, "bases", "must list at least one base (default [5])")
        check(all(b >= 0 for b in self.bases), "bases", "every base must be >= 0")
        self._check_param_list("confidences", "confidence", SIGNALS, "signal")
        self._check_param_list("within_tasks", "within_task", MODES, "ranking")
        for key, values in self.grid.items():
            section = key.split(".", 1)[0]
            check(
                "." in key and section in GRID_SECTIONS,
                f"grid.{key}",
                f"must be a dotted key in one of the sections {', '.join(GRID_SECTIONS)} "
                "(pool and score are computed once per sweep)",
            )
            check(key not in FIXED_IN_SWEEP, f"grid.{key}", "the scores are computed with one model; sweep one model per run_dir")
            check(key not in ("select.strategy", "select.budget", "select.seed"), f"grid.{key}",
                  "use sweep.strategies / sweep.budgets / sweep.seeds")
            check(isinstance(values, list) and len(values) > 0, f"grid.{key}", "must be a non-empty list of values")
        check(self.trial_cpus > 0, "trial_cpus", "must be > 0 (a Tune trial needs some resource; 0.5 is fine)")
        check(self.trial_gpus >= 0, "trial_gpus", "must be >= 0")
        check(self.worker_cpus > 0, "worker_cpus", "must be positive")
        check(self.max_concurrent_trials is None or self.max_concurrent_trials > 0, "max_concurrent_trials", "must be positive or null")
        check(self.max_failures >= 0, "max_failures", "must be >= 0")
        if self.rounds is not None:
            check(len(self.rounds) > 0, "rounds", "must list at least one number of rounds (or be null)")
            check(all(n >= 1 for n in self.rounds), "rounds", "every number of rounds must be >= 1")
            check(len(set(self.rounds)) == len(self.rounds), "rounds", "lists a number of rounds twice")
            check(min(self.budgets) >= max(self.rounds), "rounds",
                  f"{max(self.rounds)} rounds cannot split the budget {min(self.budgets)} into positive budgets")
            check("rounds" not in {k.split(".", 1)[0] for k in self.grid}, "grid", "use sweep.rounds for rounds")

    def _check_param_list(self, field: str, param: str, valid, noun: str) -> None:
        """A dimension over one selector parameter (null: the selector's default)."""
        values = getattr(self, field)
        if values is None:
            return
        check(len(values) > 0, field, f"must list at least one {noun} (or be null)")
        for v in values:
            check(v in valid, field, f"unknown {param} {v!r} (valid: {', '.join(valid)})")
        check(len(set(values)) == len(values), field, f"lists a {noun} twice")
        check(
            f"select.params.{param}" not in self.grid, f"grid.select.params.{param}",
            f"use sweep.{field} (it applies only to the selectors that take a {param})",
        )
