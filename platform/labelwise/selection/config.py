"""Select stage configuration."""

from __future__ import annotations

import dataclasses
from typing import Any

from labelwise.config import check


@dataclasses.dataclass
class SelectConfig:
    strategy: str = "weighted_task_diversity"
    budget: int = 100
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0

    def __post_init__(self):
        check(self.budget > 0, "budget", f"must be a positive number of prompts, got {self.budget}")
