"""The evaluate stage's files.

* ``metrics_<label>.json``: ``{benchmark: {metric: number, ..., "protocol": {...}}}``, one
  label's evaluation, committed with the stage's manifest (labelwise.manifest);
* ``metrics.json``: ``{label: {benchmark: ...}}``, every label's file gathered, rewritten
  after each evaluation (what reports, the sweep and ``labelwise run`` read);
* ``eval_cache/<label>/<benchmark>.json``: each benchmark's result as soon as it is done, so
  that a rerun after a crash evaluates only the benchmarks not done with the same protocol.
"""

from __future__ import annotations

import json
from pathlib import Path

from labelwise import contracts
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


def cache_path(run_dir: Path, label: str, benchmark: str) -> Path:
    return Path(run_dir) / contracts.EVAL_CACHE / label / f"{benchmark}.json"


def cached(run_dir: Path, label: str, benchmark: str, protocol: dict) -> dict | None:
    """The benchmark's finished result for this protocol, or None."""
    try:
        entry = json.loads(cache_path(run_dir, label, benchmark).read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("protocol") == plain(protocol) else None


def store(run_dir: Path, label: str, benchmark: str, result: dict) -> None:
    write_json(cache_path(run_dir, label, benchmark), plain(result))


def gather(run_dir: Path) -> dict:
    """Rewrite metrics.json from every metrics_<label>.json; returns it. Under a file lock, so
    that two evaluations of one run folder finishing together cannot drop each other's label."""
    from filelock import FileLock

    run_dir = Path(run_dir)
    with FileLock(str(run_dir / contracts.METRICS) + ".lock"):
        data = {p.stem.removeprefix("metrics_"): read(p) for p in sorted(run_dir.glob(contracts.metrics_file("*")))}
        write_json(run_dir / contracts.METRICS, data)
    return data
