"""A `labelwise` command in a process of its own, for the tests that kill a run part way: the
way a user's run dies (SIGKILL to its process group: the command and the Ray it started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment for a `labelwise` subprocess that starts a local Ray of its
    own (no RAY_ADDRESS), offline and without usage stats."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def cli_command(*args: str) -> list[str]:
    """The command line of `labelwise ARGS` in this interpreter."""
    return [sys.executable, "-m", "labelwise.cli", *args]


def kill_when(args: list[str], ready: Callable[[], bool], log: Path, timeout_s: float) -> None:
    """Run `labelwise ARGS`, SIGKILL its process group as soon as ``ready()`` holds, and fail
    with the end of its log if it never does (it ended first, or ``timeout_s`` passed)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cli_command(*args), stdout=out,
                                stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not ready() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            reached = ready()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert reached, f"labelwise {' '.join(args)} did not get there (exit {proc.returncode}):\n" + log.read_text()[-3000:]
