"""The table of stages, in pipeline order: what `labelwise run` runs, what `--until` names,
which CLI command runs each stage alone, and the manifest that says whether it is kept.

Each stage module (``labelwise.<package>.stage``) declares what it reads and writes next to
its code, ``inputs(job)`` (files and folders, digested; the pool's are its source files),
``settings(job)`` and ``outputs()`` (pool, score, select, train; annotate and evaluate build
theirs from the command line too: the answers file, the adapter and label), and commits
through :mod:`labelwise.manifest`. File names come from :mod:`labelwise.contracts`. This
table names the stages, and :func:`call` runs one, so that cli, ``run`` and ``sweep`` read
one list.
"""

from __future__ import annotations

import dataclasses

from labelwise import contracts


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # in `labelwise run`'s table, `--until`, and .manifests/<name>.json
    module: str  # the stage module: main(job, args), add_arguments(parser), HELP
    function: str  # the library entry point `labelwise run` calls
    output: str  # the main output in the run folder
    optional: bool = False  # `labelwise run` runs it only when the module's wanted(job) says so

    @property
    def command(self) -> str:
        """The CLI subcommand that runs this stage alone."""
        return self.name.split("-")[0]


STAGES = [
    Stage("pool", "labelwise.pool.stage", "build_pool", contracts.POOL),
    Stage("score", "labelwise.scoring.stage", "score_pool", contracts.SCORES),
    Stage("judge", "labelwise.judging.stage", "judge_pool", contracts.JUDGMENTS, optional=True),
    Stage("select", "labelwise.selection.stage", "select", contracts.SELECTION),
    Stage("annotate", "labelwise.annotate.stage", "annotate", contracts.LABELED),
    Stage("train", "labelwise.training.stage", "train", contracts.ADAPTER),
    *[Stage(f"evaluate-{label}", "labelwise.evaluation.stage", "evaluate", contracts.METRICS) for label in ("base", "adapted")],
]
NAMES = [s.name for s in STAGES]
RUNS = [("run", "labelwise.pipeline"), ("sweep", "labelwise.sweep.stage")]  # commands beyond single stages


def stage(name: str) -> Stage:
    return STAGES[NAMES.index(name)]


def call(name: str, job, **kwargs):
    """Run stage ``name`` on ``job`` (kept when its manifest matches); the function is looked
    up when called, so tests may replace it. ``evaluate-<label>`` evaluates the base model
    (label base) or the run folder's adapter; ``kwargs`` add to or override the defaults
    (the sweep's trials pass the selection service, simulated annotation, ...)."""
    import importlib
    from pathlib import Path

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

    found = {s.command: s.module for s in STAGES}
    return [(c, m, importlib.import_module(m).HELP) for c, m in [*found.items(), *RUNS]]
