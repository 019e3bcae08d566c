"""The select stage: scores.parquet -> selection.parquet, allocation.csv, to_annotate.jsonl.

    labelwise select JOB.yaml [--set select.strategy=task_diversity --set select.budget=500]

Also writes selection.json (selector, full parameters, budget, seed, excluded rows, the
choices a selector made) and allocation.png. thtb and ``within_task: hardness`` also read
judgments.parquet (an input of the stage then) and the prompts of pool.parquet. The files commit as one unit with a manifest
(labelwise.manifest): a rerun with the same request, scores and pool keeps them; anything
else selects again.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "choose the prompts to annotate with a selector (WTD, TD or a baseline)"  # the command's one-line help


def add_arguments(parser) -> None:
    parser.add_argument("--force", action="store_true", help="select again even if the same selection is already there")
    parser.add_argument("--show", type=int, default=15, metavar="N", help="tasks shown in the printed allocation (default 15)")


STAGE = "select"


def outputs() -> list[str]:
    from labelwise import contracts
    from labelwise.selection.outputs import ALLOCATION_PNG, SELECTION_JSON

    return [contracts.SELECTION, contracts.ALLOCATION, contracts.TO_ANNOTATE, ALLOCATION_PNG, SELECTION_JSON]


def inputs(job) -> dict:
    from labelwise import contracts

    from labelwise.selection.judgments import needs_judgments

    run = Path(job.run_dir)
    files = {contracts.SCORES: run / contracts.SCORES, contracts.POOL: run / contracts.POOL}
    if needs_judgments(job.select):  # thtb, within_task: hardness: a new judgments file selects again
        files[contracts.JUDGMENTS] = run / contracts.JUDGMENTS
    return files


def settings(job) -> dict:
    """The request: selector, its full parameters, budget, seed."""
    from labelwise.selection.registry import make_selector

    cfg = job.select
    request = {
        "strategy": cfg.strategy,
        "params": make_selector(cfg.strategy, cfg.params).get_params(),
        "budget": cfg.budget,
        "seed": cfg.seed,
        "allow_full_pool": cfg.allow_full_pool,
    }
    return {"select": request}


def compute(job, service=None):
    """The Selection for ``job.select`` (no files written)."""
    from labelwise import contracts

    cfg = job.select
    if service is not None:
        call = service.select
        args = (cfg.strategy, cfg.params, cfg.budget, cfg.seed, cfg.allow_full_pool)
        if hasattr(call, "remote"):
            import ray

            return ray.get(call.remote(*args))
        return call(*args)
    from labelwise.selection.judgments import attach, needs_judgments
    from labelwise.selection.run import run_selection
    from labelwise.selection.table import load_scores

    run = Path(job.run_dir)
    table = load_scores(run / contracts.SCORES)
    if needs_judgments(cfg):
        attach(table, run / contracts.SCORES, run / contracts.POOL, run / contracts.JUDGMENTS)
    return run_selection(table, cfg.strategy, cfg.params, cfg.budget, cfg.seed, cfg.allow_full_pool)


def select(job, service=None, force: bool = False, log=print) -> Path:
    """Select ``job.select.budget`` prompts; returns run_dir/selection.parquet. Kept when the
    stage's manifest matches the scores, the pool, the request and the files on disk."""
    from labelwise import contracts, manifest
    from labelwise.selection.outputs import write_outputs

    run = Path(job.run_dir)
    declared = settings(job)

    def build(staged: Path) -> None:
        write_outputs(compute(job, service), staged, run / contracts.POOL, declared["select"], fault=lambda: manifest.fault(STAGE))

    manifest.run_stage(run, STAGE, inputs(job), declared, outputs(), build, rerun="--force" if force else None, log=log)
    return run / contracts.SELECTION


def main(job, args) -> int:
    import pandas as pd

    from labelwise import contracts, manifest
    from labelwise.selection.outputs import SELECTION_JSON

    run = Path(job.run_dir)
    before = manifest.read(run, STAGE)
    select(job, force=bool(getattr(args, "force", False)))
    if manifest.read(run, STAGE) == before:
        print(f"selection already done for this request: {run / contracts.SELECTION} (use --force to redo)")
    record = json.loads((run / SELECTION_JSON).read_text())
    alloc = contracts.read_allocation(run / contracts.ALLOCATION).sort_values("selected", ascending=False)
    print(
        f"{record['selector']} selected {record['selected']} prompts from "
        f"{int(alloc['pool_size'].sum())} in {len(alloc)} tasks ({record['tasks_selected']} tasks got some), seed {record['seed']}"
    )
    if record["excluded"]["count"]:
        rows = record["excluded"]["rows"]
        print(
            f"excluded {record['excluded']['count']} prompt(s) with scoring errors, e.g. "
            + "; ".join(f"{r['id']}: {r['error']}" for r in rows[:3])
        )
    for key, value in record.get("info", {}).items():
        if key != "knn_tasks" and key != "tasks_taken":
            print(f"  {key}: {value}")
    show = max(0, int(getattr(args, "show", 15)))
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        print(alloc.head(show).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if len(alloc) > show:
        print(f"... {len(alloc) - show} more tasks in {run / contracts.ALLOCATION}")
    print(f"wrote {run / contracts.SELECTION}, {contracts.ALLOCATION}, {contracts.TO_ANNOTATE}, allocation.png, {SELECTION_JSON}")
    return 0
