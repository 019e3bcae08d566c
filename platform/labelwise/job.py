"""The job config: one YAML file, one typed section per stage.

    run_dir: runs/quickstart      # every stage reads and writes here
    seed: 0
    ray:      {address: null}     # labelwise.ray_start.RayConfig
    model:    {name: smollm2-135m-instruct}
    pool:     {...}               # labelwise.pool.config.PoolConfig
    score:    {...}               # labelwise.scoring.config.ScoreConfig
    select:   {...}               # labelwise.selection.config.SelectConfig
    annotate: {...}               # labelwise.annotate.config.AnnotateConfig
    train:    {...}               # labelwise.training.config.TrainConfig
    evaluate: {...}               # labelwise.evaluation.config.EvaluateConfig
    sweep:    {...}               # labelwise.sweep.config.SweepConfig
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from labelwise import config
from labelwise.annotate.config import AnnotateConfig
from labelwise.evaluation.config import EvaluateConfig
from labelwise.models import ModelConfig
from labelwise.pool.config import PoolConfig
from labelwise.ray_start import RayConfig, in_submitted_job
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
    select: SelectConfig = dataclasses.field(default_factory=SelectConfig)
    annotate: AnnotateConfig = dataclasses.field(default_factory=AnnotateConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = dataclasses.field(default_factory=EvaluateConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


def load_job(path: str | Path | None, overrides: list[str] | None = None) -> JobConfig:
    """Load and validate a job YAML; errors name the file and the dotted key."""
    job = config.load(JobConfig, path, overrides)
    if in_submitted_job() and not _is_absolute(job.run_dir):
        # The driver of a submitted job runs in a temporary copy of the working dir that Ray
        # deletes afterwards: a relative run folder would be lost with it.
        raise config.ConfigError(
            f"{path or '<config>'}: run_dir: {job.run_dir!r} is relative, and this job runs under "
            "`ray job submit`, whose working dir is temporary; use an absolute path on shared "
            "storage, e.g. --set run_dir=/mnt/labelwise/runs/NAME"
        )
    return job


def _is_absolute(run_dir: str) -> bool:
    return Path(run_dir).is_absolute() or "://" in run_dir
