"""The learning curve of a multi-round run, gathered from the rounds' folders.

    run_dir/rounds/curve.csv        round, budget, labels (cumulative), then every metric of
                                    the model after that round (round 0: the base model)
    run_dir/rounds/allocation.csv   every round's allocation.csv with a round column

Both are derived from committed files and rewritten at the end of every run.
"""

from __future__ import annotations

import json
from pathlib import Path

from labelwise import contracts, runio


def curve_rows(job) -> list[dict]:
    """One row per finished round (with metrics), after the base model's row."""
    from labelwise.report.run_report import flatten_metrics
    from labelwise.rounds.layout import round_dir

    def metrics(folder: Path, label: str) -> dict | None:
        path = folder / contracts.METRICS
        if not path.exists():
            return None
        return flatten_metrics(json.loads(path.read_text())).get(label)

    rows, labels = [], 0
    base = metrics(Path(job.run_dir), "base")
    if base is not None:
        rows.append({"round": 0, "budget": 0, "labels": 0, **base})
    for r, budget in enumerate(job.rounds.per_round(job.select.budget), 1):
        folder = round_dir(job, r)
        found = metrics(folder, "adapted")
        if found is None:
            break
        labels += len(contracts.read_labeled(folder / contracts.LABELED))
        rows.append({"round": r, "budget": budget, "labels": labels, **found})
    return rows


def write_curve(job) -> dict[str, Path]:
    """Write rounds/curve.csv and rounds/allocation.csv from what the rounds finished."""
    import pandas as pd

    from labelwise.rounds.layout import round_dir

    root = Path(job.run_dir) / contracts.ROUNDS
    written = {}
    rows = curve_rows(job)
    if rows:
        written["curve"] = runio.write_csv(root / contracts.ROUND_CURVE, pd.DataFrame(rows))
    parts = []
    for r in range(1, job.rounds.count + 1):
        path = round_dir(job, r) / contracts.ALLOCATION
        if path.exists():
            parts.append(pd.read_csv(path).assign(round=r))
    if parts:
        df = pd.concat(parts, ignore_index=True)
        written["allocation"] = runio.write_csv(root / contracts.ROUND_ALLOCATION, df[["round", *df.columns[:-1]]])
    return written


def round_metrics(job) -> dict[str, dict[str, float]]:
    """{"base": ..., "r1": ..., ...}: the metrics of every model of the curve, for the run's summary."""
    out = {}
    for row in curve_rows(job):
        values = {k: v for k, v in row.items() if k not in ("round", "budget", "labels")}
        out["base" if row["round"] == 0 else f"r{row['round']}"] = values
    return out
