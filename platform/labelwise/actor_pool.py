"""How many model actors to run on Ray Data, and with what resources.

Scoring and evaluation both run a model-per-actor callable class over a Ray Dataset with
``map_batches``. On a cluster with GPUs: one actor per GPU (``num_gpus=1``), scaling from 1
up to the GPUs the cluster has (or up to ``max_actors`` on a cluster that can add GPU nodes).
On CPU only: a few actors, each with several threads and as many CPUs reserved, so the torch
kernels use the cores without oversubscribing a node.
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

    def map_batches(self, ds, fn, *, max_restarts: int, max_task_retries: int, **kwargs):
        """``ds.map_batches(fn, ...)`` on this plan's actor pool; a crashed actor is restarted
        up to ``max_restarts`` times and its batch retried up to ``max_task_retries`` times."""
        import warnings

        with warnings.catch_warnings():
            # Ray 2.60 takes actor restart options only through **ray_remote_args, and warns
            # that those are deprecated; it has no named parameter for them yet.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return ds.map_batches(
                fn, max_restarts=max_restarts, max_task_retries=max_task_retries,
                **kwargs, **self.map_batches_kwargs(),
            )


def plan_actors(device: str = "auto", max_actors: int | None = None) -> ActorPlan:
    """Decide actor resources from the running Ray cluster's resources (see :func:`plan_for`)."""
    import ray

    from labelwise.ray_start import started_locally

    resources = ray.cluster_resources()
    node_cpus = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return plan_for(
        device,
        cpus=int(resources.get("CPU", 1)),
        gpus=int(resources.get("GPU", 0)),
        max_actors=max_actors,
        can_grow=not started_locally(),
        node_cpus=int(max(node_cpus, default=0)) or None,
    )


def plan_for(
    device: str,
    cpus: int,
    gpus: int,
    max_actors: int | None = None,
    can_grow: bool = False,
    node_cpus: int | None = None,
) -> ActorPlan:
    """The actor plan for a cluster with ``cpus`` and ``gpus`` now.

    ``device``: auto (GPU actors when the cluster has GPUs), cuda or cpu.
    ``max_actors``: an upper bound (None: as many as the resources allow).
    ``can_grow``: the cluster may add nodes (a joined cluster, autoscaling or not): with
    ``device: cuda`` and no GPU up yet, GPU actors are still planned (the autoscaler starts
    GPU nodes for them), and ``max_actors`` may exceed the GPUs up now. A local Ray cannot
    grow: asking it for CUDA without a GPU is an error at once rather than a wait forever.
    ``node_cpus``: CPUs of the largest node (None: one node holds them all); an actor's
    threads never exceed it, so every actor fits on some node.
    """
    cpus = max(1, cpus)
    if device == "cuda" and gpus == 0 and not can_grow:
        raise RuntimeError("device is cuda but the Ray cluster has no GPU resources")
    if device == "cuda" or (device == "auto" and gpus):
        if max_actors is None:
            n = max(1, gpus)
        else:
            n = max(1, max_actors if can_grow else min(gpus, max_actors))
        return ActorPlan("cuda", 1.0, 1.0, 1, n, threads=1)
    # CPU: leave a core for the driver / data operators on small machines.
    usable = max(1, cpus - 1) if cpus > 2 else cpus
    n = 1 if max_actors is None else max(1, min(max_actors, usable))
    if max_actors is None:
        n = max(1, usable // 4) if usable >= 8 else 1
    threads = max(1, min(usable // n, node_cpus or usable))
    if max_actors is None and threads * n < usable:  # small nodes: more actors, fewer threads
        n = max(1, usable // threads)
    # Each actor reserves the CPUs its threads use, so Ray never packs more threads onto a
    # node than it has cores. On a machine of 2 CPUs or fewer it reserves one: Ray Data's own
    # read and write tasks need a CPU too, and reserving both would starve them.
    reserve = float(threads) if cpus > 2 else 1.0
    return ActorPlan("cpu", 0.0, reserve, n, n, threads=threads)
