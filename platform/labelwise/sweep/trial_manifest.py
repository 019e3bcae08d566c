"""A trial is finished when its ``trial_result.json`` was committed with a manifest
(labelwise.manifest, stage ``trial`` in the trial folder) that matches the trial's settings
and the files its row was made from: the trial's labeled.jsonl and metrics_adapted.json, and
the sweep's metrics_base.json. Anything else runs the trial again (each of its stages is
kept or rerun by its own manifest), so a rerun with other settings never keeps a trial made
with the old ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from labelwise import contracts, manifest, runio

STAGE = "trial"


def inputs(trial_dir: Path, sweep_dir: Path, rounds: int | None = None) -> dict:
    """``rounds``: a trial of that many rounds (labelwise.rounds): every round's labels and
    the last round's metrics."""

    if rounds is None:
        found = {contracts.LABELED: Path(trial_dir) / contracts.LABELED,
                 contracts.metrics_file("adapted"): Path(trial_dir) / contracts.metrics_file("adapted")}
    else:
        folders = [contracts.round_folder(r) for r in range(1, rounds + 1)]
        found = {f"{f}/{name}": Path(trial_dir) / f / name
                 for f in folders for name in (contracts.LABELED, contracts.metrics_file("adapted"))}
    return {**found, f"sweep/{contracts.metrics_file('base')}": Path(sweep_dir) / contracts.metrics_file("base")}


def _rounds(job) -> int | None:
    return None if job.rounds is None else job.rounds.count


def settings(job) -> dict:
    """The trial's whole job config, but where Ray runs and the folder."""
    from labelwise import config

    return {k: v for k, v in config.to_dict(job).items() if k not in ("ray", "run_dir")}


def why_not_finished(job, sweep_dir: Path) -> str | None:
    trial_dir = Path(job.run_dir)
    found = manifest.digests(inputs(trial_dir, sweep_dir, _rounds(job)))
    return manifest.why_rerun(trial_dir, STAGE, found, settings(job), [contracts.TRIAL_RESULT])


def finished(job, sweep_dir: Path) -> dict | None:
    """The trial's row when it is finished, else None."""
    if why_not_finished(job, sweep_dir) is not None:
        return None
    return json.loads((Path(job.run_dir) / contracts.TRIAL_RESULT).read_text())


def discard(trial_dir: Path) -> None:
    """Forget an unfinished trial's old row (its stages' files stay, kept or rerun by theirs)."""
    manifest.manifest_path(trial_dir, STAGE).unlink(missing_ok=True)
    (Path(trial_dir) / contracts.TRIAL_RESULT).unlink(missing_ok=True)


def commit(job, sweep_dir: Path, row: dict) -> None:
    """Write the trial's row and its manifest (inputs digested now: the files it was made from)."""
    trial_dir = Path(job.run_dir)
    manifest.run_stage(trial_dir, STAGE, inputs(trial_dir, sweep_dir, _rounds(job)), settings(job), [contracts.TRIAL_RESULT],
                       lambda staged: runio.write_json(staged / contracts.TRIAL_RESULT, row), rerun="the trial ran", log=lambda *_: None)
