"""The table of stages, in pipeline order: what `labelwise run` runs, what `--until` names,
which CLI command runs each stage alone, and the manifest that says whether it is kept.

Each stage module (``labelwise.<package>.stage``) declares its own inputs, outputs and
settings next to its code and commits through :mod:`labelwise.manifest`; this table only
names the stages, so that cli, pipeline and sweep read one list.
"""

from __future__ import annotations

import dataclasses

from labelwise import runio


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # in `labelwise run`'s table, `--until`, and .manifests/<name>.json
    command: str  # the CLI subcommand that runs this stage alone
    module: str  # the stage module: main(job, args), add_arguments(parser)
    function: str  # the library entry point `labelwise run` calls
    output: str  # the main output in the run folder
    help: str  # the command's one-line help


STAGES = [
    Stage("pool", "pool", "labelwise.pool.stage", "build_pool", runio.POOL,
          "build pool.parquet and the held-out test split; print a summary"),
    Stage("score", "score", "labelwise.scoring.stage", "score_pool", runio.SCORES,
          "score every pool prompt with the base model on Ray Data (cached, resumable)"),
    Stage("select", "select", "labelwise.selection.stage", "select", runio.SELECTION,
          "choose the prompts to annotate with a selector (WTD, TD or a baseline)"),
    Stage("annotate", "annotate", "labelwise.annotate.stage", "annotate", runio.LABELED,
          "merge annotators' answers (or the pool's gold answers) into labeled.jsonl"),
    Stage("train", "train", "labelwise.training.stage", "train", runio.ADAPTER,
          "LoRA-finetune the base model on labeled.jsonl with Ray Train"),
    Stage("evaluate-base", "evaluate", "labelwise.evaluation.stage", "evaluate", runio.METRICS,
          "evaluate the base or adapted model (held-out tasks, MMLU, BBH, win rate)"),
    Stage("evaluate-adapted", "evaluate", "labelwise.evaluation.stage", "evaluate", runio.METRICS,
          "evaluate the base or adapted model (held-out tasks, MMLU, BBH, win rate)"),
]
NAMES = [s.name for s in STAGES]

# CLI commands beyond the single stages: (command, module, help)
RUNS = [
    ("run", "labelwise.pipeline", "run every stage in order; a rerun resumes where the last one stopped"),
    ("sweep", "labelwise.sweep.stage", "Ray Tune sweep over selectors, budgets, base allocations and seeds"),
]


def stage(name: str) -> Stage:
    return STAGES[NAMES.index(name)]


def commands() -> list[tuple[str, str, str]]:
    """(command, module, help) for every stage command, in pipeline order, then run and sweep."""
    seen: dict[str, tuple[str, str, str]] = {}
    for s in STAGES:
        seen.setdefault(s.command, (s.command, s.module, s.help))
    return list(seen.values()) + RUNS
