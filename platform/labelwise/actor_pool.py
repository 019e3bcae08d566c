"""How many model actors to run on Ray Data, and with what resources.

Scoring and evaluation both run a model-per-actor callable class over a Ray Dataset with
``map_batches``. On a cluster with GPUs: one actor per GPU (``num_gpus=1``), scaling from 1
up to the GPUs the cluster has or may autoscale to. On CPU only: a few actors, each with
several threads, so the torch kernels use the cores without oversubscribing them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ActorPlan:
    device: str  # "cuda" or "cpu"
    num_gpus: float
    num_cpus: float
    min_actors: int
    max_actors: int
    threads: int  # torch threads per actor

    def map_batches_kwargs(self) -> dict:
        """Keyword arguments for ``Dataset.map_batches`` with a callable class."""
        from ray.data import ActorPoolStrategy

        if self.min_actors == self.max_actors:
            compute = ActorPoolStrategy(size=self.max_actors)
        else:
            compute = ActorPoolStrategy(min_size=self.min_actors, max_size=self.max_actors)
        kw = {"compute": compute, "num_cpus": self.num_cpus}
        if self.num_gpus:
            kw["num_gpus"] = self.num_gpus
        return kw


def plan_actors(device: str = "auto", max_actors: int | None = None) -> ActorPlan:
    """Decide actor resources from the running Ray cluster's resources.

    ``device``: auto (GPU actors when the cluster has GPUs), cuda or cpu.
    ``max_actors``: an upper bound (None: as many as the resources allow).
    """
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if device == "cuda" and gpus == 0:
        raise RuntimeError("device is cuda but the Ray cluster has no GPU resources")
    if gpus and device in ("auto", "cuda"):
        n = gpus if max_actors is None else max(1, min(gpus, max_actors))
        return ActorPlan("cuda", 1.0, 1.0, 1, n, threads=1)
    # CPU: leave a core for the driver / data operators on small machines.
    usable = max(1, cpus - 1) if cpus > 2 else cpus
    n = 1 if max_actors is None else max(1, min(max_actors, usable))
    if max_actors is None:
        n = max(1, usable // 4) if usable >= 8 else 1
    threads = max(1, usable // n)
    # Reserve one logical CPU per actor even when it runs several threads: Ray Data's own
    # read and write tasks need a CPU too, and on a 2-core machine reserving both would
    # starve them.
    return ActorPlan("cpu", 0.0, 1.0, n, n, threads=threads)
