"""Evaluate stage configuration.

    evaluate:
      benchmarks: [heldout, mmlu, bbh, winrate]
      use_ray: auto          # auto: Ray Data when a benchmark has >= ray_min_requests requests
      mmlu:    {shots: 5, per_subject_cap: 20}
      bbh:     {cot: true, per_task_cap: 10}
      heldout: {per_task_cap: null}
      winrate: {max_prompts: 64, reference: dataset, judge: {kind: local, model: smollm2-135m-instruct}}

Every benchmark's settings that change its numbers are recorded as its ``protocol`` in
metrics.json; a rerun skips a benchmark whose stored protocol is the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from labelwise.chat_endpoint import EndpointConfig
from labelwise.config import check
from labelwise.evaluation.benchmarks import NAMES as KNOWN_BENCHMARKS


@dataclasses.dataclass
class MMLUConfig:
    path: str | None = None
    """Folder with dev/*.csv and test/*.csv (default: <data_dir>/mmlu), a folder in the hub
    layout <subject>/{dev,test}-*.parquet, or hf:cais/mmlu (downloaded once, when online)."""
    shots: int = 5
    """Few-shot examples from the subject's dev split (0-5), the first k as in lm-eval-harness."""
    split: Literal["test", "dev"] = "test"
    per_subject_cap: int | None = None
    """At most this many questions per subject, sampled with the job seed (null: all)."""
    subjects: list[str] | None = None
    """Only these subjects (null: all found in the folder)."""
    chat_template: bool = False
    """False: the plain lm-eval-harness prompt. True: the prompt as one chat user turn."""

    def __post_init__(self):
        check(0 <= self.shots <= 5, "shots", "must be between 0 and 5 (the dev split has 5 per subject)")
        check(
            self.split != "dev" or self.shots == 0,
            "split",
            f"dev with shots={self.shots}: the shots come from the dev split, so questions would be "
            "shown their own answers; evaluate split: dev with shots: 0 (or split: test)",
        )
        check(self.per_subject_cap is None or self.per_subject_cap > 0, "per_subject_cap", "must be positive or null")


@dataclasses.dataclass
class BBHConfig:
    path: str | None = None
    """Folder with tasks/*.json and cot-prompts/*.txt (default: <data_dir>/bbh)."""
    cot: bool = True
    """True: the standard 3-shot chain-of-thought prompts; False: the same shots, answers only."""
    shots: int = 3
    per_task_cap: int | None = None
    tasks: list[str] | None = None
    max_new_tokens: int | None = None
    """Generation length (null: 256 with chain of thought, 32 without)."""
    chat_template: bool = False

    def __post_init__(self):
        check(0 <= self.shots <= 3, "shots", "must be between 0 and 3 (the standard prompts have 3)")
        check(self.per_task_cap is None or self.per_task_cap > 0, "per_task_cap", "must be positive or null")
        check(self.max_new_tokens is None or self.max_new_tokens > 0, "max_new_tokens", "must be positive")

    @property
    def generation_tokens(self) -> int:
        return self.max_new_tokens or (256 if self.cot else 32)


@dataclasses.dataclass
class HeldoutConfig:
    per_task_cap: int | None = None
    """At most this many test examples per task, sampled with the job seed (null: all)."""
    exact_match: bool = True
    em_max_words: int = 5
    """Exact match is computed on examples whose gold response has at most this many words."""
    max_new_tokens: int = 32

    def __post_init__(self):
        check(self.per_task_cap is None or self.per_task_cap > 0, "per_task_cap", "must be positive or null")
        check(self.em_max_words > 0, "em_max_words", "must be positive")
        check(self.max_new_tokens > 0, "max_new_tokens", "must be positive")


@dataclasses.dataclass
class JudgeConfig(EndpointConfig):
    """The pairwise judge: kind local scores the letters A / B with a Hugging Face model;
    kind openai asks an OpenAI-compatible chat endpoint (labelwise.chat_endpoint)."""

    tie_margin: float = 0.0
    """local: |log p(A) - log p(B)| <= tie_margin is a tie."""
    max_answer_chars: int = 2000
    """Answers are cut to this many characters in the judge prompt."""

    def __post_init__(self):
        super().__post_init__()
        check(self.tie_margin >= 0, "tie_margin", "must be >= 0")
        check(self.max_answer_chars > 0, "max_answer_chars", "must be positive")


@dataclasses.dataclass
class WinrateConfig:
    prompts: str | None = None
    """JSON list or JSONL of {instruction, output?} (default: <data_dir>/alpaca_eval/gpt4_model_outputs.json)."""
    max_prompts: int | None = 64
    """Sample this many prompts with the job seed (null: all)."""
    reference: str = "dataset"
    """Model B: 'dataset' (the prompt file's output field), 'base' (the job's base model) or a model name."""
    max_new_tokens: int = 256
    judge: JudgeConfig = dataclasses.field(default_factory=JudgeConfig)

    def __post_init__(self):
        check(self.max_prompts is None or self.max_prompts > 0, "max_prompts", "must be positive or null")
        check(bool(self.reference.strip()), "reference", "must not be empty")
        check(self.max_new_tokens > 0, "max_new_tokens", "must be positive")


@dataclasses.dataclass
class EvaluateConfig:
    benchmarks: list[str] = dataclasses.field(default_factory=lambda: ["heldout"])
    engine: Literal["auto", "hf", "vllm"] = "auto"
    """hf: labelwise's HF runner; vllm: vLLM through ray.data.llm (log-likelihoods from
    prompt_logprobs, answers from greedy generation; an adapter is a LoRA request); auto: vllm
    when installed (LABELWISE_ENGINE decides instead). labelwise/engines.py."""
    engine_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """vllm: engine arguments passed through (see score.engine_kwargs)."""
    data_dir: str | None = None
    """Root of the benchmark data (null: $LABELWISE_DATA_DIR, else <repo>/../shared/data)."""
    use_ray: bool | Literal["auto"] = "auto"
    ray_min_requests: int = 256
    """With use_ray: auto, a benchmark with at least this many model requests runs on Ray Data."""
    max_actors: int | None = None
    max_restarts: int = 3
    """Ray: times a crashed evaluation actor is restarted (-1: forever, Ray Data's own
    default, which never gives up on a batch that kills its actor every time)."""
    max_task_retries: int = -1
    """Ray: times a batch whose actor died or became unreachable is retried; -1 (default):
    until the actor is gone for good (after max_restarts restarts), as score.max_task_retries
    (a lost node's calls use up a finite count before Ray declares the node dead)."""
    batch_size: int = 8
    max_batch_tokens: int = 16384
    """Cap on padded tokens per forward pass (batch rows x longest row)."""
    max_length: int | None = None
    """Longest input in tokens; longer contexts lose their beginning (null: the model's limit)."""
    threads: int | None = None
    """Torch threads when evaluating in this process (null: torch's default). A sweep trial
    sets it to its whole CPU reservation."""
    mmlu: MMLUConfig = dataclasses.field(default_factory=MMLUConfig)
    bbh: BBHConfig = dataclasses.field(default_factory=BBHConfig)
    heldout: HeldoutConfig = dataclasses.field(default_factory=HeldoutConfig)
    winrate: WinrateConfig = dataclasses.field(default_factory=WinrateConfig)

    def __post_init__(self):
        unknown = [b for b in self.benchmarks if b not in KNOWN_BENCHMARKS]
        check(
            not unknown,
            "benchmarks",
            f"unknown benchmark {unknown[0] if unknown else ''!r} (known: {', '.join(KNOWN_BENCHMARKS)})",
        )
        check(len(set(self.benchmarks)) == len(self.benchmarks), "benchmarks", "lists a benchmark twice")
        check(self.ray_min_requests > 0, "ray_min_requests", "must be positive")
        check(self.max_actors is None or self.max_actors > 0, "max_actors", "must be positive or null")
        check(self.max_restarts >= -1, "max_restarts", "must be >= -1 (-1: forever)")
        check(self.max_task_retries >= -1, "max_task_retries", "must be >= -1 (-1: forever)")
        check(self.batch_size > 0, "batch_size", "must be positive")
        check(self.threads is None or self.threads > 0, "threads", "must be positive (or null)")
        check(self.max_batch_tokens > 0, "max_batch_tokens", "must be positive")
        check(self.max_length is None or self.max_length > 16, "max_length", "must be > 16 or null")
