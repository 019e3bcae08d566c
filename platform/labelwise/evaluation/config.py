"""Evaluate stage configuration."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class EvaluateConfig:
    benchmarks: list[str] = dataclasses.field(default_factory=lambda: ["heldout"])
