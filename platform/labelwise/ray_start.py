"""Starting or joining Ray, in one place.

No address (and no RAY_ADDRESS): a local Ray started by this process, quiet, listening on
127.0.0.1 only (GCS, raylet, workers, agents: nothing reachable from the network); its
dashboard serves only the state API on localhost (Ray Train V2 watches its controller
through it).
``auto`` or a ``host:port`` / ``ray://`` address: join that cluster (what ``ray job submit``
gives a job through RAY_ADDRESS).

Only the variables in :data:`FORWARDED_ENV` (and LABELWISE_*) go into the runtime
environment: never credentials such as HF_TOKEN.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys

from labelwise.config import check


@dataclasses.dataclass
class RayConfig:
    address: str | None = None
    """null: start a local Ray (or join RAY_ADDRESS when set); 'auto' or host:port: join."""
    num_cpus: int | None = None
    """CPUs of a local Ray (default: all)."""
    num_gpus: int | None = None
    storage: str | None = None
    """Shared storage for Ray Train / Tune results (a path, s3://, gs://); default: run_dir."""

    def __post_init__(self):
        check(self.num_cpus is None or self.num_cpus > 0, "num_cpus", "must be positive")
        check(self.num_gpus is None or self.num_gpus >= 0, "num_gpus", "must be >= 0")


_STARTED_LOCALLY = False


def started_locally() -> bool:
    """True when this process started its own local Ray (which cannot add nodes)."""
    return _STARTED_LOCALLY


def init_ray(cfg: RayConfig | None = None):
    """Start or join Ray once per process; returns the ray module."""
    global _STARTED_LOCALLY
    import ray

    cfg = cfg or RayConfig()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    # Inside `ray job submit` the job's runtime env already reaches every worker, and Ray
    # refuses to merge a second one that sets the same variables.
    runtime_env = None if in_submitted_job() else {"env_vars": _forwarded_env()}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    else:
        _STARTED_LOCALLY = True
        with _loopback_only():
            ray.init(
                num_cpus=cfg.num_cpus,
                num_gpus=cfg.num_gpus,
                # Ray Train V2's placement-group cleaner polls the state API, which the dashboard
                # process serves: without it every training run logs a warning a second. (Not
                # True: without ray[default]'s packages that refuses to start Ray at all.)
                include_dashboard=None,  # Ray's default: started when ray[default] is installed
                dashboard_host="127.0.0.1",
                logging_level=logging.WARNING,
                log_to_driver=True,
                runtime_env=runtime_env,
            )
    try:
        from ray.data import DataContext

        # Ray Data's bars on a terminal; elsewhere (logs, CI, ray job submit) its fallback prints
        # a block every few seconds, so the stages' own progress lines are the record instead.
        DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
        DataContext.get_current().print_on_execution_start = False
    except Exception:  # older Ray: defaults are fine
        pass
    return ray


def in_submitted_job() -> bool:
    """True when this process is the driver of a job started by `ray job submit`."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


# What workers need to find data, caches and offline settings; LABELWISE_* go as well.
FORWARDED_ENV = (
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_CACHE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "XDG_CACHE_HOME",
)


def _forwarded_env() -> dict[str, str]:
    """Environment the workers need to find data, caches and offline settings; nothing else
    (HF_TOKEN and other credentials stay on this machine)."""
    keys = [k for k in os.environ if k in FORWARDED_ENV or k.startswith("LABELWISE_")]
    return {k: os.environ[k] for k in sorted(keys)}


@contextlib.contextmanager
def _loopback_only():
    """While Ray starts: use 127.0.0.1 as the node address, so that the GCS, raylet, worker
    and agent servers of the local Ray that init_ray starts listen on loopback only (Ray binds
    them to every interface otherwise). Ray does this itself on macOS and Windows, where it
    does not support clusters; ray.init(_node_ip_address="127.0.0.1") is replaced by a
    reachable address, so the same switch is used here, in this process only and only while
    ray.init runs (the node address then travels on the command lines of Ray's processes; a
    cluster joined later in this process is not affected). A joined cluster is the user's
    own choice."""
    import ray._private.ray_constants as ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
