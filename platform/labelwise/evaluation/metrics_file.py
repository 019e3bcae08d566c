"""run_dir/metrics.json: ``{label: {benchmark: {metric: number, ..., "protocol": {...}}}}``.

Each finished benchmark is merged in at once (read, update, atomic write, under a file lock so
two evaluations of one run folder cannot lose each other's results).
"""

from __future__ import annotations

import json
from pathlib import Path

from labelwise.runio import write_json


def read(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); move it aside to start over") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping label -> benchmark -> metrics")
    return data


def plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists...), for comparing protocols."""
    return json.loads(json.dumps(obj, default=str))


def is_done(path: Path, label: str, benchmark: str, protocol: dict) -> bool:
    entry = read(path).get(label, {}).get(benchmark)
    return isinstance(entry, dict) and entry.get("protocol") == plain(protocol)


def merge(path: Path, label: str, benchmark: str, result: dict) -> dict:
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = read(path)
        data.setdefault(label, {})[benchmark] = plain(result)
        write_json(path, data)
    return data
