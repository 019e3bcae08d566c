"""The table of stages, in pipeline order: the one list that ``labelwise run``, ``sweep`` and
``rounds`` walk, what ``--until`` names, which CLI command runs each stage alone, which config
inputs it reads (checked at load), and the manifest that says whether it is kept.

Each stage module (``labelwise.<package>.stage``) declares what it reads and writes next to
its code, ``inputs(job)`` (files and folders, digested; the pool's are its source files),
``settings(job)`` and ``outputs()`` (pool, score, select, train; annotate and evaluate build
theirs from the command line too: the answers file, the adapter and label), and commits
through :mod:`labelwise.manifest`. File names come from :mod:`labelwise.contracts`. This
table names the stages, and :func:`call` runs one.

A stage's scope says where it runs when the work is split:

- ``shared``: once in the run folder, before anything per trial or per round; a sweep runs
  it once in the sweep folder and its trials link the outputs in (:data:`SHARED_FILES`);
  a run with rounds runs it once before the rounds;
- ``trial``: once in a plain run, in every trial of a sweep, in every round of a run with
  rounds (in the round's folder);
- ``round``: in every round only (what the round starts from); not a command of its own.

A new stage is one package (its ``stage`` module) plus one row here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from labelwise import contracts

SHARED, TRIAL, ROUND = "shared", "trial", "round"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # in `labelwise run`'s table, `--until`, and .manifests/<name>.json
    module: str  # the stage module: main(job, args), add_arguments(parser), HELP
    function: str  # the library entry point `labelwise run` calls
    output: str  # the main output in the run folder
    scope: str = TRIAL  # SHARED, TRIAL or ROUND (above)
    optional: bool = False  # `labelwise run` runs it only when the module's wanted(job) says so
    reads: tuple[str, ...] = ()  # the config inputs it reads (job.READ_BY's groups), checked at load
    in_sweep: bool = True  # False: a sweep's trials run it without reading ``reads`` (annotate simulates)
    in_rounds: bool = True  # False: a run with rounds leaves it out
    again_from_round: int | None = None  # a shared stage run again in every round from this one
    linked: tuple[str, ...] = ()  # a shared stage's files that a sweep's trials link in from the sweep folder

    @property
    def command(self) -> str:
        """The CLI subcommand that runs this stage alone (and its name in a trial or a round)."""
        return self.name.split("-")[0]


STAGES = [
    Stage("pool", "labelwise.pool.stage", "build_pool", contracts.POOL, SHARED, reads=("pool.source",),
          linked=(contracts.POOL, contracts.TEST, contracts.POOL_META)),
    Stage("round", "labelwise.rounds.stage", "prepare", contracts.POOL, ROUND),
    Stage("score", "labelwise.scoring.stage", "score_pool", contracts.SCORES, SHARED, reads=("model.name",),
          again_from_round=2, linked=(contracts.SCORES, contracts.SCORE_SUMMARY)),
    # round folders do not carry judgments.parquet yet (job.py refuses such selectors with rounds)
    Stage("judge", "labelwise.judging.stage", "judge_pool", contracts.JUDGMENTS, SHARED, optional=True,
          in_rounds=False, linked=(contracts.JUDGMENTS,)),
    Stage("select", "labelwise.selection.stage", "select", contracts.SELECTION),
    Stage("annotate", "labelwise.annotate.stage", "annotate", contracts.LABELED, reads=("annotate.answers",),
          in_sweep=False),
    Stage("train", "labelwise.training.stage", "train", contracts.ADAPTER, reads=("model.name",)),
    *[Stage(f"evaluate-{label}", "labelwise.evaluation.stage", "evaluate", contracts.METRICS, scope,
            reads=("model.name", "evaluate"))
      for label, scope in (("base", SHARED), ("adapted", TRIAL))],
]
_BY_NAME = {s.name: s for s in STAGES}
RUN = [s for s in STAGES if s.scope != ROUND]  # a one-batch run's stages, in order
NAMES = [s.name for s in RUN]
RUNS = [("run", "labelwise.pipeline"), ("sweep", "labelwise.sweep.stage")]  # commands beyond single stages
# what every trial of a sweep shares with the sweep folder (computed once, before the trials)
SHARED_FILES = tuple(f for s in STAGES for f in s.linked)


def stage(name: str) -> Stage:
    return _BY_NAME[name]


def scoped(scope: str) -> list[Stage]:
    """The stages of ``scope``, in order."""
    return [s for s in STAGES if s.scope == scope]


def in_round(r: int) -> list[Stage]:
    """The stages of round ``r``, in order, in the round's folder."""
    return [s for s in STAGES if s.in_rounds
            and (s.scope in (ROUND, TRIAL) or (s.again_from_round is not None and r >= s.again_from_round))]


def call(name: str, job, **kwargs):
    """Run stage ``name`` on ``job`` (kept when its manifest matches); the function is looked
    up when called, so tests may replace it. ``evaluate-<label>`` evaluates the base model
    (label base) or the run folder's adapter; ``kwargs`` add to or override the defaults
    (the sweep's trials pass the selection service, simulated annotation, ...)."""
    import importlib

    s = stage(name)
    fn = getattr(importlib.import_module(s.module), s.function)
    if name.startswith("evaluate-"):
        label = name.split("-", 1)[1]
        adapter = None if label == "base" else Path(job.run_dir) / contracts.ADAPTER
        kwargs = {"adapter": adapter, "label": label, **kwargs}
    return fn(job, **kwargs)


def wanted(name: str, job) -> bool:
    """Whether `labelwise run` runs stage ``name`` for ``job`` (an optional stage asks its
    module's ``wanted(job)``, e.g. judge: when the job has a judge: section)."""
    import importlib

    s = stage(name)
    return not s.optional or importlib.import_module(s.module).wanted(job)


def commands() -> list[tuple[str, str, str]]:
    """(command, module, one-line help: the module's HELP) for every stage command, in
    pipeline order, then run and sweep. Imports the modules (the CLI needs their options)."""
    import importlib

    found = {s.command: s.module for s in RUN}
    return [(c, m, importlib.import_module(m).HELP) for c, m in [*found.items(), *RUNS]]


def read_by() -> dict[str, set[str]]:
    """{config input group: the commands whose stages read it}: each stage's command, ``run``
    and ``sweep`` (unless the sweep runs it without reading the input, as annotate)."""
    found: dict[str, set[str]] = {}
    for s in RUN:
        for group in s.reads:
            found.setdefault(group, set()).update({s.command, "run"} | ({"sweep"} if s.in_sweep else set()))
    return found


def unread(until: str) -> set[str]:
    """The config input groups that no stage up to ``until`` (``run --until``) reads."""
    done = RUN[: NAMES.index(until) + 1]
    return {group for group in read_by() if not any(group in s.reads for s in done)}


@dataclasses.dataclass
class Step:
    """One line of a run: a stage whose manifest is ``folder/.manifests/<stage>.json``."""

    name: str  # shown in the table (a round's: "r2/select")
    folder: Path  # the run folder, or a round's
    stage: str  # the manifest's name
    call: Callable[[], object]
    output: Path


def stage_step(name: str, job, run: Callable[[str, object], object] | None = None) -> Step:
    """Stage ``name`` in ``job``'s run folder; ``run(name, job)`` runs it (default :func:`call`)."""
    run_dir = Path(job.run_dir)
    run = run or call
    return Step(name, run_dir, name, lambda: run(name, job), run_dir / stage(name).output)
