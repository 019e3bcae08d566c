"""Annotate stage configuration."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from labelwise.config import check

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{40}")  # a legacy Label Studio token: 40 hex digits


@dataclasses.dataclass
class LabelStudioConfig:
    """A Label Studio server for ``labelwise annotate --push`` / ``--pull``."""

    url: str = "http://localhost:8080"
    """The server's address (http:// or https://)."""
    project: str | None = None
    """Title of the project for this run; null: "labelwise <run folder name>"."""
    token_env: str = "LABEL_STUDIO_API_KEY"
    """Name of the environment variable holding the API token (never the token itself)."""
    pick: Literal["latest", "agreed"] = "latest"
    """When several annotators answered a prompt: the latest answer, or the one a strict
    majority of them gave (compared after normalizing case, whitespace and Unicode form)."""

    def __post_init__(self):
        check(self.url.startswith(("http://", "https://")), "url", f"must start with http:// or https://, got {self.url!r}")
        check(self.project is None or bool(self.project.strip()), "project", "must be a project title or null")
        check(
            not _HEX_TOKEN.fullmatch(self.token_env),
            "token_env",
            "looks like a token itself; name the environment variable that holds it (and do not "
            "write the token into the job file)",
        )
        check(
            bool(_ENV_NAME.fullmatch(self.token_env)),
            "token_env",
            f"must be the name of an environment variable (letters, digits, _), got {self.token_env!r}",
        )


@dataclasses.dataclass
class AnnotateConfig:
    simulate: bool = True
    """When no answers file is given: take the pool's gold responses (the paper's setting)."""
    answers: str | None = None
    """Answers file (JSONL or CSV with columns id and response); takes precedence over simulate."""
    allow_partial: bool = False
    """Write labeled.jsonl even when some selected prompts have no answer yet."""
    label_studio: LabelStudioConfig | None = None
    """Label Studio server and project for --push / --pull (null: not used)."""

    def __post_init__(self):
        check(
            self.answers is None or bool(self.answers.strip()),
            "answers",
            "must be a file path or null",
        )
