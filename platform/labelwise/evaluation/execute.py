"""Run evaluation requests in this process or sharded over Ray Data model actors.

The Ray layer is the scoring stage's pattern: ``labelwise.actor_pool.plan_actors`` decides the
actors (one per GPU, or a few CPU actors with several torch threads each), and
``Dataset.map_batches`` runs a callable class that loads the model once per actor. Requests
travel as JSON payloads with their index, so results come back in request order whatever
order Ray finishes them in.
"""

from __future__ import annotations

import json

from labelwise.evaluation.runner import ModelRunner, ModelSpec, RunSettings


class EvalActor:
    """Ray Data callable class: one model per actor, answering batches of requests."""

    def __init__(self, spec: dict, settings: dict, device: str, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.runner = ModelRunner.load(ModelSpec.from_dict(spec), RunSettings(**settings), device=device)

    def __call__(self, batch):
        kinds = set(batch["kind"])
        if len(kinds) != 1:
            raise ValueError(f"a batch mixes request kinds {sorted(kinds)}")
        payloads = [json.loads(p) for p in batch["payload"]]
        results = self.runner.run(kinds.pop(), payloads)
        return {"i": list(batch["i"]), "result": [json.dumps(r) for r in results]}


def should_use_ray(use_ray, n_requests: int, min_requests: int) -> bool:
    if use_ray == "auto":
        return n_requests >= min_requests
    return bool(use_ray)


def run_requests(
    kind: str,
    payloads: list[dict],
    spec: ModelSpec,
    settings: RunSettings,
    *,
    use_ray: bool = False,
    ray_config=None,
    max_actors: int | None = None,
    runner: ModelRunner | None = None,
    progress: str | None = None,
    max_restarts: int = 3,
    max_task_retries: int = 3,
    actor_cls=None,
    engine: str = "hf",
    engine_kwargs: dict | None = None,
) -> list[dict]:
    """Answer ``payloads`` (all of one ``kind``) with the model of ``spec``; results in order.

    In process, an already loaded ``runner`` is reused when given. On Ray, an actor whose
    process dies is restarted up to ``max_restarts`` times and its batch retried up to
    ``max_task_retries`` times (as the scoring stage's actors). ``actor_cls`` is for tests.
    ``engine="vllm"``: the requests run on vLLM through ray.data.llm (evaluation/vllm_requests.py)."""
    if not payloads:
        return []
    if engine == "vllm":  # always on Ray Data (ray.data.llm)
        from labelwise.evaluation.vllm_requests import run_on_vllm

        return run_on_vllm(kind, payloads, spec, settings, ray_config=ray_config, engine_kwargs=engine_kwargs,
                           max_replicas=max_actors)
    if not use_ray:
        runner = runner or ModelRunner.load(spec, settings)
        return runner.run(kind, payloads, progress=progress)
    return _run_on_ray(kind, payloads, spec, settings, ray_config, max_actors, max_restarts, max_task_retries, actor_cls)


def _run_on_ray(kind, payloads, spec, settings, ray_config, max_actors, max_restarts=3, max_task_retries=3, actor_cls=None) -> list[dict]:
    import dataclasses

    from labelwise.actor_pool import plan_actors
    from labelwise.ray_start import init_ray

    ray = init_ray(ray_config)
    plan = plan_actors(spec.model.device, max_actors)
    # Longest first, so each batch holds requests of similar length; loglik requests in the
    # order of their text instead, so that those that begin alike share a batch and its
    # prefill (shared_prefix.py; the runner packs each batch by length itself).
    if kind == "loglik" and settings.shared_prefix:
        order = sorted(range(len(payloads)), key=lambda i: payloads[i]["context"])
    else:
        order = sorted(range(len(payloads)), key=lambda i: -_size(payloads[i]))
    rows = [{"i": i, "kind": kind, "payload": json.dumps(payloads[i])} for i in order]
    n_blocks = max(1, min(len(rows) // max(1, settings.batch_size), plan.max_actors * 4))
    ds = ray.data.from_items(rows, override_num_blocks=n_blocks)
    out = plan.map_batches(
        ds,
        actor_cls or EvalActor,
        fn_constructor_kwargs={
            "spec": spec.to_dict(),
            "settings": dataclasses.asdict(settings),
            "device": spec.model.device,  # "auto" sees the actor's GPU; a declared-only GPU falls back to CPU
            "threads": plan.threads,
        },
        batch_size=settings.batch_size,
        batch_format="numpy",
        max_restarts=max_restarts,
        max_task_retries=max_task_retries,
    )
    results: list[dict | None] = [None] * len(payloads)
    for row in out.iter_rows():
        results[int(row["i"])] = json.loads(row["result"])
    lost = [i for i, r in enumerate(results) if r is None]
    if lost:
        raise RuntimeError(f"Ray Data returned no result for {len(lost)} of {len(payloads)} requests")
    return results


def _size(payload: dict) -> int:
    return len(payload.get("context") or payload.get("prompt") or "")
