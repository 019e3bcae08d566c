"""Annotate stage configuration."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class AnnotateConfig:
    simulate: bool = True
    """Take the pool's gold responses (the paper's setting) instead of an answers file."""
    answers: str | None = None
