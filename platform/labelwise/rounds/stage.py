"""The ``round`` stage: what round r starts from, in run_dir/rounds/r<r>/.

    pool.parquet     the unlabeled remainder: the run's pool less every prompt an earlier
                     round selected (labelwise.rounds.remainder)
    test.parquet     the run's held-out split (evaluation reads it from the round's folder)
    scores.parquet   round 1 only: the run's scores (the base model's); a later round's
                     scores are the adapted model's (the score stage, run on the remainder)

Committed with a manifest in the round's folder (labelwise.manifest): kept while the run's
pool, test split, scores and the earlier rounds' selections match.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from labelwise import contracts, manifest, runio

STAGE = "round"


def _stderr(*args) -> None:
    print(*args, file=sys.stderr)


def inputs(job, r: int) -> dict:
    from labelwise.rounds.layout import round_dir

    run = Path(job.run_dir)
    found = {contracts.POOL: run / contracts.POOL, contracts.TEST: run / contracts.TEST}
    if r == 1:
        found[contracts.SCORES] = run / contracts.SCORES
    for i in range(1, r):
        found[f"{contracts.round_folder(i)}/{contracts.SELECTION}"] = round_dir(job, i) / contracts.SELECTION
    return found


def outputs(r: int) -> list[str]:
    return [contracts.POOL, contracts.TEST] + ([contracts.SCORES] if r == 1 else [])


def prepare(job, r: int, log=_stderr) -> Path:
    """Write (or keep) round r's starting files; returns the round's folder."""
    import pandas as pd

    from labelwise.rounds.layout import round_dir
    from labelwise.rounds.remainder import remainder

    run, folder = Path(job.run_dir), round_dir(job, r)
    found = inputs(job, r)
    budgets = job.rounds.per_round(job.select.budget)

    def build(staged: Path) -> None:
        for name, path in found.items():
            if not path.exists():
                raise FileNotFoundError(f"{path} does not exist: round {r} needs it ({name})")
        pool = pd.read_parquet(run / contracts.POOL)
        if r == 1 and sum(budgets) > len(pool) and not job.select.allow_full_pool:
            raise ValueError(
                f"rounds.budgets: the rounds select {sum(budgets)} prompts in all but the pool "
                f"({run / contracts.POOL}) has {len(pool)}"
            )
        earlier = [pd.read_parquet(round_dir(job, i) / contracts.SELECTION, columns=["id"])["id"].astype(str)
                   for i in range(1, r)]
        left = remainder(pool, earlier)
        log(f"[round {r}/{job.rounds.count}] {len(left)} of {len(pool)} prompts not yet selected; "
            f"this round selects {budgets[r - 1]}")
        runio.write_parquet(staged / contracts.POOL, left)
        manifest.fault(STAGE)
        shutil.copy2(run / contracts.TEST, staged / contracts.TEST)
        manifest.fault(STAGE)
        if r == 1:  # the whole pool is left: the base model's scores as they are
            shutil.copy2(run / contracts.SCORES, staged / contracts.SCORES)
            manifest.fault(STAGE)

    folder.mkdir(parents=True, exist_ok=True)
    manifest.run_stage(folder, STAGE, found, {"round": r, "rounds": job.rounds.count}, outputs(r), build, log=log)
    return folder
