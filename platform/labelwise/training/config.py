"""Train stage configuration."""

from __future__ import annotations

import dataclasses

from labelwise.config import check


@dataclasses.dataclass
class TrainConfig:
    num_workers: int = 1
    epochs: int = 3
    lr: float | None = None
    batch_size: int = 8

    def __post_init__(self):
        check(self.num_workers > 0, "num_workers", "must be positive")
        check(self.epochs > 0, "epochs", "must be positive")
