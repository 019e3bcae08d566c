"""Score stage configuration."""

from __future__ import annotations

import dataclasses

from labelwise.config import check


@dataclasses.dataclass
class ScoreConfig:
    max_new_tokens: int = 32
    batch_size: int = 16
    embeddings: bool = True

    def __post_init__(self):
        check(self.max_new_tokens > 0, "max_new_tokens", "must be positive")
        check(self.batch_size > 0, "batch_size", "must be positive")
