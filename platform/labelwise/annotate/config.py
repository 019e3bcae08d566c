"""Annotate stage configuration."""

from __future__ import annotations

import dataclasses

from labelwise.config import check


@dataclasses.dataclass
class AnnotateConfig:
    simulate: bool = True
    """When no answers file is given: take the pool's gold responses (the paper's setting)."""
    answers: str | None = None
    """Answers file (JSONL or CSV with columns id and response); takes precedence over simulate."""
    allow_partial: bool = False
    """Write labeled.jsonl even when some selected prompts have no answer yet."""

    def __post_init__(self):
        check(
            self.answers is None or bool(self.answers.strip()),
            "answers",
            "must be a file path or null",
        )
