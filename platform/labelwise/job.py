"""The job config: one YAML file, one typed section per stage.

    run_dir: runs/quickstart      # every stage reads and writes here
    seed: 0
    ray:      {address: null}     # labelwise.ray_start.RayConfig
    model:    {name: smollm2-135m-instruct}
    pool:     {...}               # labelwise.pool.config.PoolConfig
    score:    {...}               # labelwise.scoring.config.ScoreConfig
    judge:    {...}               # labelwise.judging.config.JudgeStageConfig (optional stage)
    select:   {...}               # labelwise.selection.config.SelectConfig
    annotate: {...}               # labelwise.annotate.config.AnnotateConfig
    train:    {...}               # labelwise.training.config.TrainConfig
    evaluate: {...}               # labelwise.evaluation.config.EvaluateConfig
    sweep:    {...}               # labelwise.sweep.config.SweepConfig
    rounds:   {...}               # labelwise.rounds.config.RoundsConfig (absent: one batch)
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterable

from labelwise import config, stages
from labelwise.annotate.config import AnnotateConfig
from labelwise.evaluation.config import EvaluateConfig
from labelwise.judging.config import JudgeStageConfig
from labelwise.models import ModelConfig
from labelwise.pool.config import PoolConfig
from labelwise.ray_start import RayConfig, in_submitted_job
from labelwise.rounds.config import RoundsConfig
from labelwise.scoring.config import ScoreConfig
from labelwise.selection.config import SelectConfig
from labelwise.sweep.config import SweepConfig
from labelwise.training.config import TrainConfig


@dataclasses.dataclass
class JobConfig:
    run_dir: str = "runs/default"
    seed: int = 0
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    pool: PoolConfig = dataclasses.field(default_factory=PoolConfig)
    score: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)
    judge: JudgeStageConfig | None = None
    """The optional judge stage (null: `labelwise run` skips it)."""
    select: SelectConfig = dataclasses.field(default_factory=SelectConfig)
    annotate: AnnotateConfig = dataclasses.field(default_factory=AnnotateConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = dataclasses.field(default_factory=EvaluateConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)
    rounds: RoundsConfig | None = None

    def __post_init__(self):
        # Every stage reads and writes the run folder with local file operations: a URI
        # would silently become a local folder named "s3:".
        config.check(
            not is_uri(self.run_dir),
            "run_dir",
            f"{self.run_dir!r} is a URI; run folders must be a local or shared-mount path "
            "(e.g. /mnt/labelwise/runs/NAME on a cluster); only ray.storage may be a URI (s3://, gs://)",
        )
        config.check(bool(self.run_dir.strip()), "run_dir", "must not be empty")
        config.check_seed(self.seed, "seed")
        if self.rounds is not None:
            from labelwise.rounds.config import check_total

            try:
                check_total(self.rounds, self.select.budget)
            except config.ConfigValueError as e:
                raise config.ConfigValueError(f"rounds.{e.field}", e.message) from None
            config.check(
                self.annotate.answers is None,
                "annotate.answers",
                "one answers file cannot serve every round: leave it null and import each round's answers "
                "with `labelwise annotate JOB.yaml --round N --answers FILE`",
            )
            from labelwise.selection import needs_judgments

            config.check(
                not needs_judgments(self.select),
                "select",
                f"{self.select.strategy} with these params reads judgments.parquet, which rounds do not "
                "carry into their folders yet: use it without rounds, or another selector / within_task",
            )

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# The inputs checked at load (groups of keys), and the commands whose stages read them: what
# each stage of labelwise.stages declares it reads.
READ_BY = stages.read_by()


def is_uri(value: str) -> bool:
    return bool(_URI.match(value.strip()))


def load_job(
    path: str | Path | None,
    overrides: list[str] | None = None,
    command: str | None = None,
    check_paths: bool = True,
    unchecked: Iterable[str] = (),
) -> JobConfig:
    """Load and validate a job YAML; errors name the file and the dotted key.

    ``check_paths``: input files and folders named by the config must exist (see
    :func:`check_input_paths`); ``command`` (a CLI subcommand) limits that to the inputs
    its stages read, None checks them all (what ``labelwise config`` does); ``unchecked``
    names groups of :data:`READ_BY` this command line does not read (e.g. annotate.answers
    for ``annotate --export``, whose answers file does not exist yet)."""
    job = config.load(JobConfig, path, overrides)
    where = str(path) if path is not None else "<config>"
    if in_submitted_job() and not Path(job.run_dir).is_absolute():
        # The driver of a submitted job runs in a temporary copy of the working dir that Ray
        # deletes afterwards: a relative run folder would be lost with it.
        raise config.ConfigError(
            f"{where}: run_dir: {job.run_dir!r} is relative, and this job runs under "
            "`ray job submit`, whose working dir is temporary; use an absolute path on shared "
            "storage, e.g. --set run_dir=/mnt/labelwise/runs/NAME"
        )
    if check_paths:
        check_input_paths(job, where, command, unchecked)
    return job


def check_input_paths(job: JobConfig, where: str, command: str | None = None, unchecked: Iterable[str] = ()) -> None:
    """A ConfigError naming the file and the key for a local input that does not exist:
    pool.source, a path-like model.name (starting with / . ~), annotate.answers,
    evaluate.data_dir and the path of each listed benchmark. Built-ins (builtin:), hf:
    sources, URIs, packaged model aliases and hub model names (org/model) are not checked;
    ``${LABELWISE_DATA_DIR}`` and ``~`` are expanded first, as the pool stage does.

    Cluster jobs (ray.address or $RAY_ADDRESS set) validated on another machine (a laptop,
    before `ray job submit`): an absolute path whose mount (its first two components, e.g.
    /mnt/labelwise) does not exist here is taken to live on the cluster's shared storage and
    is not checked; the submitted driver loads the config again on the cluster, strictly."""
    cluster_elsewhere = bool(job.ray.address or os.environ.get("RAY_ADDRESS")) and not in_submitted_job()

    unchecked = set(unchecked)

    def needed(group: str) -> bool:
        return group not in unchecked and (command is None or command in READ_BY[group])

    def fail(key: str, value: str, shown: str, what: str, hint: str = "") -> None:
        expanded = f" (= {shown})" if shown != value else ""
        raise config.ConfigError(f"{where}: {key}: {value!r}{expanded}: {what}{hint}")

    def check(key: str, value: str, shown: str, kind: str = "any", hint: str = "") -> bool:
        """True when checked, False when left to the cluster."""
        p = Path(shown)
        if cluster_elsewhere and p.is_absolute() and not Path(*p.parts[:3]).exists():
            return False  # on the cluster's shared mount; checked again when the job runs there
        if not p.exists():
            rel = "" if p.is_absolute() else f", relative to the current folder {os.getcwd()}"
            fail(key, value, shown, f"not found{rel}", hint)
        if kind == "dir" and not p.is_dir():
            fail(key, value, shown, "is not a folder", hint)
        if kind == "file" and not p.is_file():
            fail(key, value, shown, "is not a file", hint)
        return True

    if needed("pool.source"):
        for i, cfg in enumerate(job.pool.source_configs()):
            src = cfg.source
            if not src.startswith(("builtin:", "hf:")) and not is_uri(src):
                from labelwise.pool.readers import expand

                check(f"pool.sources[{i}].source" if job.pool.sources else "pool.source", src, expand(src))
    if needed("model.name"):
        name = job.model.name
        if name.startswith(("/", ".", "~")):
            shown = os.path.expanduser(name)
            hint = " (a local model folder; or a packaged alias or hub name)"
            if check("model.name", name, shown, "dir", hint) and not (Path(shown) / "config.json").exists():
                fail("model.name", name, shown, "has no config.json: expected a Hugging Face model folder")
    if needed("annotate.answers") and job.annotate.answers:
        check("annotate.answers", job.annotate.answers, job.annotate.answers, "file")
    if needed("evaluate"):
        ev = job.evaluate
        if ev.data_dir:
            check("evaluate.data_dir", ev.data_dir, os.path.expanduser(ev.data_dir), "dir")
        # (benchmark, key, value, as the evaluate stage reads it: only mmlu.path expands ~)
        for bench, key, value, shown in [
            ("mmlu", "evaluate.mmlu.path", ev.mmlu.path, os.path.expanduser(ev.mmlu.path or "")),
            ("bbh", "evaluate.bbh.path", ev.bbh.path, ev.bbh.path),
            ("winrate", "evaluate.winrate.prompts", ev.winrate.prompts, ev.winrate.prompts),
        ]:
            if bench in ev.benchmarks and value and not value.startswith("hf:") and not is_uri(value):
                check(key, value, shown)
