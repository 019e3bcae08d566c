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
      decide:                       # optional: add seeds in looks until each comparison is decided
        delta: 0.05                 # equivalence margin, in the metric's units (required)
        metric: heldout.nll_macro
        alpha: 0.05
        references: [random, task_diversity]
        looks: [3, 5, 8, 12, 20]    # seeds at each look; seeds are taken in sweep.seeds' order
        max_seeds: 20               # one of the looks (default the last)
        spending: obf               # obf, pocock or bonferroni (labelwise.report.sequential)

Every combination is one trial with its own run folder ``<run_dir>/trials/<name>/``; pool and
scores are computed once in ``run_dir`` before the trials.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from labelwise.config import ConfigValueError, check, check_seed

# job sections a grid key may change (pool and score are computed once for the whole sweep)
GRID_SECTIONS = ("select", "annotate", "train", "evaluate", "model")
FIXED_IN_SWEEP = ("model.name",)
DEFAULT_REFERENCES = ("random", "task_diversity")  # as labelwise.report.paired.REFERENCES


@dataclasses.dataclass
class DecideConfig:
    """``sweep.decide``: compare each selector with each reference, paired by seed at the same
    budget, after each look, and add seeds only while a comparison is undecided
    (labelwise.report.sequential has the rule and why its error rates hold)."""

    delta: float
    """Equivalence margin in the metric's units: equivalent when the TOST interval lies inside
    ±delta. Fix it before the data (e.g. the seed-to-seed SD of random's metric)."""
    metric: str = "heldout.nll_macro"
    """The results column compared; its direction (lower is better for NLL, loss, error) comes
    from its name."""
    alpha: float = 0.05
    """Chance of a false better/worse under no difference, and of a false equivalent at
    |difference| >= delta, over all the looks together."""
    references: list[str] | None = None
    """Strategies every other selector is compared with (each must be in sweep.strategies);
    null: those of random and task_diversity that sweep.strategies lists."""
    looks: list[int] = dataclasses.field(default_factory=lambda: [3, 5, 8, 12, 20])
    """Numbers of seeds at which comparisons are decided, fixed before the data."""
    max_seeds: int | None = None
    """Stop adding seeds here (one of the looks; null: the last look). The boundaries stay the
    plan's, so a rerun with a larger max_seeds goes on from the decisions so far."""
    spending: str = "obf"
    """How alpha is spent over the looks: obf (most power at the end), pocock (earlier stops),
    bonferroni (alpha / looks at each)."""

    def __post_init__(self):
        from labelwise.report.sequential import check_plan

        try:
            check_plan(self.looks, self.alpha, self.delta, self.spending)
        except ValueError as e:  # "field: message"
            field, _, message = str(e).partition(": ")
            raise ConfigValueError(field, message) from None
        if self.max_seeds is None:
            self.max_seeds = self.looks[-1]
        check(self.max_seeds in self.looks, "max_seeds", f"must be one of the looks {self.looks}, got {self.max_seeds}")
        check("." in self.metric and not self.metric.startswith(("task:", "base_model.")), "metric",
              f"must be a results column <benchmark>.<metric> such as heldout.nll_macro, got {self.metric!r}")
        if self.references is not None:
            check(len(self.references) > 0, "references", "must list at least one reference strategy (or be null)")
            check(len(set(self.references)) == len(self.references), "references", "lists a reference twice")


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
    max_failures: int = 1
    """Retries of a failed trial inside one sweep run (Ray Tune's FailureConfig.max_failures;
    -1: retry forever). A retried trial goes on from what its folder holds: the committed
    selection and labels, and training from its last checkpoint. The default survives losing
    the node a trial runs on once (tests/test_autoscaling.py); a trial that fails for a reason
    of its own fails once more, then is reported in results.csv (a rerun retries it too)."""
    report: bool = True
    """Write report.md / report.html in run_dir at the end."""
    rounds: list[int] | None = None
    """Rounds per trial (null: one batch, as before): 1 is one batch of k, n > 1 is n rounds that
    split k evenly (rounds.count: n), so all are compared at equal total budget."""
    decide: DecideConfig | None = None
    """Sequential seeds (null: every seed of ``seeds`` runs). With it, ``seeds`` lists the seeds
    in the order the looks take them, at least max_seeds of them."""

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
        check(self.max_failures >= -1, "max_failures", "must be >= 0, or -1: retry forever")
        if self.rounds is not None:
            check(len(self.rounds) > 0, "rounds", "must list at least one number of rounds (or be null)")
            check(all(n >= 1 for n in self.rounds), "rounds", "every number of rounds must be >= 1")
            check(len(set(self.rounds)) == len(self.rounds), "rounds", "lists a number of rounds twice")
            check(min(self.budgets) >= max(self.rounds), "rounds",
                  f"{max(self.rounds)} rounds cannot split the budget {min(self.budgets)} into positive budgets")
            check("rounds" not in {k.split(".", 1)[0] for k in self.grid}, "grid", "use sweep.rounds for rounds")
        if self.decide is not None:
            d = self.decide
            if d.references is None:
                d.references = [r for r in DEFAULT_REFERENCES if r in self.strategies]
                check(len(d.references) > 0, "decide.references",
                      f"none of the default references ({', '.join(DEFAULT_REFERENCES)}) is in sweep.strategies; "
                      "list the strategies to compare with")
            for i, ref in enumerate(d.references):
                check(ref in self.strategies, f"decide.references[{i}]",
                      f"{ref!r} is not one of sweep.strategies ({', '.join(self.strategies)})")
            check(len(self.strategies) > 1, "decide", "needs at least two strategies: a selector and a reference")
            check(len(self.seeds) >= d.max_seeds, "seeds",
                  f"decide takes up to max_seeds = {d.max_seeds} seeds in this list's order; it lists "
                  f"{len(self.seeds)} (for example seeds: [{', '.join(map(str, range(min(d.max_seeds, 3))))}, "
                  f"..., {d.max_seeds - 1}])")

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
