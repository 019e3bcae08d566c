"""Sweep configuration."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class SweepConfig:
    strategies: list[str] = dataclasses.field(default_factory=lambda: ["random", "weighted_task_diversity"])
    budgets: list[int] = dataclasses.field(default_factory=lambda: [50])
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
