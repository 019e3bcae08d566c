"""Select stage configuration (the ``select:`` section of a job YAML).

    select:
      strategy: weighted_task_diversity   # a name from labelwise.selection.registry
      budget: 500                         # prompts to annotate (B)
      params: {base: 5}                   # the selector's own parameters, checked at load time
      seed: 0
      allow_full_pool: false              # true: a budget above the pool size takes the whole pool
"""

from __future__ import annotations

import dataclasses
from typing import Any

from labelwise.config import check, check_seed


@dataclasses.dataclass
class SelectConfig:
    strategy: str = "weighted_task_diversity"
    """Selector name (labelwise.selection.registry.NAMES)."""
    budget: int = 100
    """Number of prompts to select (B)."""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Selector parameters, e.g. {base: 5} for weighted_task_diversity."""
    seed: int = 0
    """Seed of every random choice; the same seed gives the same ids whatever the row order."""
    allow_full_pool: bool = False
    """A budget above the number of usable prompts: error (false) or take them all (true)."""

    def __post_init__(self):
        from labelwise.selection.registry import NAMES, SelectorParamError, make_selector

        check(self.budget > 0, "budget", f"must be a positive number of prompts, got {self.budget}")
        check_seed(self.seed, "seed")
        check(
            self.strategy in NAMES,
            "strategy",
            f"unknown selector {self.strategy!r} (valid: {', '.join(NAMES)})",
        )
        try:
            make_selector(self.strategy, self.params)
        except SelectorParamError as e:
            check(False, f"params.{e.param}", e.message)
