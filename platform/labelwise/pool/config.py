"""Pool stage configuration."""

from __future__ import annotations

import dataclasses

from labelwise.config import check


@dataclasses.dataclass
class PoolConfig:
    source: str = "builtin:bigbench"
    """A file or folder (JSONL, CSV, Parquet, HF dataset), or builtin:bigbench / builtin:skills."""
    test_fraction: float = 0.2
    test_max_per_task: int = 20
    seed: int = 0

    def __post_init__(self):
        check(0 <= self.test_fraction < 1, "test_fraction", "must be in [0, 1)")
