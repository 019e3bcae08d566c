"""Where a round lives and the job that runs it.

Round r of a run is a run folder of its own, ``run_dir/rounds/r<r>/``, holding the same
files under the same names as a one-batch run (labelwise.contracts): pool.parquet (the
unlabeled remainder), test.parquet, scores.parquet, selection.parquet, allocation.csv,
to_annotate.jsonl, labeled.jsonl, adapter/, metrics.json, and its own .manifests/. The
stages run unchanged on :func:`round_job`, a one-batch job whose run_dir is that folder and
whose budget is the round's, so selection never needs to know about rounds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from labelwise import contracts
from labelwise.config import MAX_SEED


def round_dir(job, r: int) -> Path:
    return Path(job.run_dir) / contracts.round_folder(r)


def round_seed(seed: int, r: int) -> int:
    """select.seed of round r: the job's in round 1, then the next ones (wrapping at 2**32)."""
    return (seed + r - 1) % (MAX_SEED + 1)


def round_job(job, r: int):
    """The one-batch job of round r (1-based): its folder, its budget, its selection seed."""
    if job.rounds is None:
        raise ValueError("this job has no rounds: section")
    if not 1 <= r <= job.rounds.count:
        raise ValueError(f"round {r} does not exist: rounds.count is {job.rounds.count}")
    budget = job.rounds.per_round(job.select.budget)[r - 1]
    select = dataclasses.replace(job.select, budget=budget, seed=round_seed(job.select.seed, r))
    return dataclasses.replace(job, run_dir=str(round_dir(job, r)), select=select, rounds=None)


def current_round(job) -> int:
    """The latest round whose prompts were exported (to_annotate.jsonl exists); 1 before any."""
    found = [r for r in range(1, job.rounds.count + 1) if (round_dir(job, r) / contracts.TO_ANNOTATE).exists()]
    return max(found, default=1)
