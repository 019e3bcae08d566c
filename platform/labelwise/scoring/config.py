"""Score stage configuration (the ``score:`` section of a job YAML)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from labelwise.config import check


@dataclasses.dataclass
class ScoreConfig:
    engine: Literal["auto", "hf", "vllm"] = "auto"
    """hf: labelwise's HF loop (the reference); vllm: vLLM through ray.data.llm; auto: vllm
    when installed (LABELWISE_ENGINE=hf|vllm decides instead). See labelwise/engines.py."""
    engine_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """vllm: engine arguments passed through (tensor_parallel_size, max_model_len,
    gpu_memory_utilization, kv_cache_memory_bytes, ...); on CPU the defaults are eager mode
    and a 1 GiB KV cache."""
    top_logprobs: int = 20
    """vllm: log-probabilities returned per generated token; mean_entropy is estimated from
    them (scoring/vllm_scorer.py). Part of the cache key with engine vllm."""
    max_new_tokens: int = 32
    """Greedy answer length limit (the answer also stops at EOS)."""
    batch_size: int = 16
    """Prompts per model call; prompts are sorted by length first (length bucketing)."""
    max_batch_tokens: int | None = None
    """Optional cap on batch_size x longest prompt in a batch (long prompts get smaller batches)."""
    embeddings: bool = True
    """Also store a mean-pooled penultimate-layer prompt embedding (from the same prefill)."""
    answers: bool = True
    """Also store the decoded greedy answer text (else the answer column is empty)."""
    max_prompt_tokens: int | None = None
    """Longest rendered prompt, in tokens (default: the model context minus max_new_tokens)."""
    overlong: Literal["truncate", "reject"] = "truncate"
    """A prompt longer than max_prompt_tokens: cut its start, keeping the end where the question
    usually is (truncate), or give it an error (reject)."""
    use_ray: bool | Literal["auto"] = "auto"
    """auto: Ray Data when the pending prompts exceed ray_threshold or a cluster address is set."""
    ray_threshold: int = 2000
    max_actors: int | None = None
    """Upper bound on scoring actors (None: what labelwise.actor_pool.plan_actors allows)."""
    threads: int | None = None
    """Torch threads per actor / in-process (None: from the actor plan, or all cores)."""
    max_restarts: int = 3
    """Ray: times a crashed scoring actor is restarted (on another node when its node is
    lost; an autoscaler starts one when none is free). -1: forever."""
    max_task_retries: int = -1
    """Ray: times a batch whose actor died or became unreachable is retried; -1 (default):
    until the actor is gone for good (after max_restarts restarts). A lost node makes its
    actor unreachable for some seconds before Ray declares it dead, and every call in that
    window uses up a retry: 3 retries were not enough to survive one node loss
    (tests/test_autoscaling.py). A batch that raises is not retried (it becomes error rows)."""

    def __post_init__(self):
        check(self.engine in ("auto", "hf", "vllm"), "engine", "must be auto, hf or vllm")
        check(isinstance(self.engine_kwargs, dict), "engine_kwargs", "must be a mapping")
        check(2 <= self.top_logprobs <= 100, "top_logprobs", "must be between 2 and 100")
        check(self.max_new_tokens > 0, "max_new_tokens", "must be positive")
        check(self.batch_size > 0, "batch_size", "must be positive")
        check(
            self.max_batch_tokens is None or self.max_batch_tokens > 0,
            "max_batch_tokens",
            "must be positive or null",
        )
        check(
            self.max_prompt_tokens is None or self.max_prompt_tokens > 0,
            "max_prompt_tokens",
            "must be positive or null",
        )
        check(self.ray_threshold >= 0, "ray_threshold", "must be >= 0")
        check(self.max_actors is None or self.max_actors > 0, "max_actors", "must be positive or null")
        check(self.threads is None or self.threads > 0, "threads", "must be positive or null")
        check(self.max_restarts >= -1, "max_restarts", "must be >= -1 (-1: forever)")
        check(self.max_task_retries >= -1, "max_task_retries", "must be >= -1 (-1: forever)")

    def settings(self) -> dict:
        """The settings that change a prompt's scores (part of the cache key).

        Batch size and actor counts only change how the work is cut, not what a prompt's
        greedy answer is, so they are left out: changing them reuses finished shards.
        """
        return {
            "max_new_tokens": self.max_new_tokens,
            "embeddings": self.embeddings,
            "answers": self.answers,
            "max_prompt_tokens": self.max_prompt_tokens,
            # "truncate" once cut the end of a prompt; scores cut that way are not reused
            "overlong": "truncate-keep-end" if self.overlong == "truncate" else self.overlong,
        }
