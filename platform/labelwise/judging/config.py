"""Judge stage configuration (the ``judge:`` section of a job YAML).

    judge:
      kind: openai                       # or local (a Hugging Face model run by labelwise)
      model: Qwen/Qwen3-32B              # local: a folder or packaged alias
      base_url: https://judge.example/v1
      api_key_env: JUDGE_API_KEY
      with_answer: false                 # show the Bloom judge the base model's greedy answer
      mode: free                         # or choice: score fixed options by log-likelihood

``mode: choice`` (judging/choice.py) needs the local engine or an endpoint that returns
``logprobs`` / ``top_logprobs``; ``free`` asks for JSON replies and parses them.

The endpoint fields (kind ... concurrency) are the evaluation judge's
(labelwise.chat_endpoint.EndpointConfig), with the same security rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from labelwise.chat_endpoint import EndpointConfig
from labelwise.config import check


@dataclasses.dataclass
class JudgeStageConfig(EndpointConfig):
    mode: Literal["free", "choice"] = "free"
    """free: the judge writes JSON that is parsed (any chat endpoint); choice: each question's fixed
    options are scored by log-likelihood and the score is their expected value (every prompt
    gets a judgment; needs the local engine or an endpoint returning logprobs)."""
    top_logprobs: int = 20
    """choice mode on an endpoint: how many first-token alternatives to ask for (OpenAI allows 20)."""
    with_answer: bool = False
    """Show the Bloom judge the base model's greedy answer from scores.parquet (when it exists)."""
    max_new_tokens: int = 256
    """Longest judge reply per part (a reasoning judge needs more)."""
    description_max_new_tokens: int = 200
    """Longest discipline description."""
    max_prompt_chars: int = 4000
    """Pool prompts (and answers) are cut to this many characters in the judge's instruction."""
    shard_prompts: int = 64
    """Prompts judged per round; each round's judgments are cached (a killed run loses at most one round)."""
    use_ray: bool | Literal["auto"] = "auto"
    """local judge: Ray Data model actors (true), this process (false), or by size (auto)."""
    ray_min_requests: int = 64
    """With use_ray: auto, a round with at least this many requests runs on Ray Data."""
    max_actors: int | None = None
    batch_size: int = 8
    max_batch_tokens: int = 16384
    max_length: int | None = None
    """local judge: longest input in tokens (null: the model's limit)."""
    engine: Literal["auto", "hf", "vllm"] = "auto"
    """local judge: hf (labelwise's HF runner), vllm (ray.data.llm), or auto: vllm when installed
    (LABELWISE_ENGINE decides instead). labelwise/engines.py."""
    engine_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """local judge on vllm: engine arguments passed through."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("max_new_tokens", "description_max_new_tokens", "max_prompt_chars", "shard_prompts",
                     "ray_min_requests", "batch_size", "max_batch_tokens"):
            check(getattr(self, name) > 0, name, "must be positive")
        check(1 <= self.top_logprobs <= 20, "top_logprobs", "must be between 1 and 20")
        check(self.max_actors is None or self.max_actors > 0, "max_actors", "must be positive or null")
        check(self.max_length is None or self.max_length > 16, "max_length", "must be > 16 or null")

    def settings(self) -> dict:
        """What a judgment depends on (the cache key, with the judge's fingerprint): not the
        concurrency, batching, timeouts or where it runs."""
        found = {
            "kind": self.kind,
            "model": self.model,
            "base_url": self.base_url if self.kind == "openai" else None,
            "chat_template": self.chat_template,
            "with_answer": self.with_answer,
            "max_new_tokens": self.max_new_tokens,
            "description_max_new_tokens": self.description_max_new_tokens,
            "max_prompt_chars": self.max_prompt_chars,
        }
        if self.kind == "local":  # the engine joins the key only as vllm (hf keys stay valid)
            from labelwise import engines

            if engines.resolve(self.engine, "judge.engine") == "vllm":
                found["engine"] = "vllm"
        if self.mode == "choice":  # free mode keeps the key it had before modes existed (its caches stay valid)
            found["mode"] = "choice"
            found["top_logprobs"] = self.top_logprobs if self.kind == "openai" else None
            for k in ("max_new_tokens", "description_max_new_tokens"):  # no generation in choice mode
                found.pop(k)
        return found
