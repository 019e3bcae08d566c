"""The run folder's files: every name, what each holds, and one reader for the record files
several stages read. Stages meet only at these files (ARCHITECTURE.md); a name is defined
here and nowhere else, and read as ``contracts.NAME``. This module imports nothing of ours.

Column types live here too: ``scores_schema()`` is scores.parquet's (the scorer writes it,
selectors read its ``SCORE_METRICS``), JUDGMENTS_COLUMNS judgments.parquet's (read with
:func:`read_judgments`; disciplines.parquet's are judging/schema.py's), and the selector
minimums the pool stage reports (``MIN_PROMPTS``, ``MIN_TASKS_TASK_AWARE``) are the ones
every selector enforces.
"""

from __future__ import annotations

from pathlib import Path

# pool: the pool, its held-out test split, and what was read and dropped
POOL = "pool.parquet"
TEST = "test.parquet"
POOL_META = "pool_meta.json"
POOL_COLUMNS = ["id", "task", "prompt", "response", "source"]  # pool.parquet and test.parquet

# score: scores.parquet, its summary, the resumable shard cache
SCORES = "scores.parquet"
SCORE_FLOATS = ["logconf", "mean_logprob", "mean_entropy", "mean_margin", "min_margin"]
SCORE_METRICS = ("logconf", "n_tokens", "mean_logprob", "mean_entropy", "mean_margin", "min_margin")  # what selectors read
SCORE_COLUMNS = ["id", "task", "logconf", "n_tokens", *SCORE_FLOATS[1:], "eos", "answer", "error"]  # + optional embedding
SCORE_SUMMARY = "score_summary.json"
SCORE_SHARDS = "score_shards"


def scores_schema(embeddings: bool):
    """scores.parquet's pyarrow schema: SCORE_COLUMNS typed, plus ``embedding`` when scored."""
    import pyarrow as pa

    types = {"id": pa.string(), "task": pa.string(), "n_tokens": pa.int64(), "eos": pa.bool_(),
             "answer": pa.string(), "error": pa.string(), **{k: pa.float64() for k in SCORE_FLOATS}}
    fields = [pa.field(name, types[name]) for name in SCORE_COLUMNS]
    if embeddings:
        fields.append(pa.field("embedding", pa.list_(pa.float32())))
    return pa.schema(fields)


# judge (optional: runs when the job has a judge: section or the selector needs judgments): per
# prompt the LLM judge's Bloom level and score, disciplines, their spread and a quality score
# (judgments.parquet; thtb and within_task: hardness read it); per discipline its description
# and MiniLM embedding; the summary (parse counts); the resumable reply cache
JUDGMENTS = "judgments.parquet"
# column -> pyarrow type name; bloom_score 1..21, quality in [0, 1], discipline_spread the mean
# pairwise cosine distance of the disciplines' description embeddings (0 with one discipline);
# a row whose judgment failed has ``error`` set (and may have nulls), never dropped
JUDGMENTS_COLUMNS = {
    "id": "string",
    "task": "string",
    "bloom_level": "string",
    "bloom_score": "float64",
    "disciplines": "list<string>",
    "discipline_count": "int64",
    "discipline_spread": "float64",
    "quality": "float64",
    "error": "string",
    "judge": "string",
}
# written beside them by the judge stage, not read by selectors: how it judged (judge.mode:
# free or choice) and, in choice mode, each question's option probabilities (bloom 1..6,
# quality 0..9, P(yes) per discipline in disciplines.parquet's order); null in free mode
JUDGMENTS_MODE_COLUMNS = {
    "mode": "string",
    "bloom_probs": "list<float64>",
    "quality_probs": "list<float64>",
    "discipline_probs": "list<float64>",
}
DISCIPLINES = "disciplines.parquet"
DISCIPLINE_COLUMNS = ["discipline", "description", "embedding"]
JUDGE_SUMMARY = "judge_summary.json"
JUDGE_SHARDS = "judge_shards"

# select; every selector needs at least MIN_PROMPTS usable prompts, and the task-aware ones
# (spreading the budget over tasks) at least MIN_TASKS_TASK_AWARE tasks
SELECTION = "selection.parquet"
MIN_PROMPTS = 2
MIN_TASKS_TASK_AWARE = 2
TASK_AWARE_SELECTORS = ("task_diversity", "weighted_task_diversity", "activeit")
SELECTION_COLUMNS = ["id", "task", "rank"]  # then per-pick scores of thtb and within_task (float64; thtb's stage a string)
ALLOCATION = "allocation.csv"
ALLOCATION_COLUMNS = ["task", "pool_size", "confidence", "allocated", "selected"]
ALLOCATION_PNG = "allocation.png"
SELECTION_JSON = "selection.json"
TO_ANNOTATE = "to_annotate.jsonl"
TO_ANNOTATE_FIELDS = ["id", "task", "prompt"]

# annotate
LABELED = "labeled.jsonl"
LABELED_FIELDS = ["id", "task", "prompt", "response"]
LABELED_PROVENANCE = ["annotators", "answered_at"]  # optional: who answered (a list) and when (ISO 8601)
LABEL_STUDIO_ANSWERS = "label_studio_answers.jsonl"  # what `annotate --pull` read from Label Studio

# train
ADAPTER = "adapter"
ADAPTER_CONFIG = "adapter_config.json"  # in an adapter folder: what makes it a PEFT adapter
TRAIN_LOG = "train_log.csv"
TRAIN_LOG_COLUMNS = ["step", "epoch", "loss", "lr", "examples", "tokens", "response_tokens", "seconds"]
LOSS_PNG = "loss.png"
TRAIN_SUMMARY = "train_summary.json"
TRAIN_DATA = "train_data.jsonl"  # a round's training labels (labelwise.rounds), as trained on

# evaluate: metrics_<label>.json per label, gathered into metrics.json (winrate_<label>.jsonl
# beside it when the win rate ran); the per-benchmark cache
METRICS = "metrics.json"
EVAL_CACHE = "eval_cache"


def metrics_file(label: str) -> str:
    return f"metrics_{label}.json"


def winrate_file(label: str) -> str:
    """The pairwise win rate's per-prompt judgments of evaluate-<label>."""
    return f"winrate_{label}.jsonl"


# run and sweep
RUN_SUMMARY = "summary.json"
RESULTS = "results.csv"  # one row per trial; columns described in report/table.py
RESULTS_REQUIRED = ("strategy", "budget", "seed")
FULL = "full"  # results.csv: the strategy of the full-pool reference trials
BASE_PREFIX = "base_model."  # base_model.<bench>.<metric>: the untrained model's value
TASK_PREFIX = "task:"  # task:<task>:<bench>.<metric> and task:<task>:selected
ROUND_PREFIX = "round:"  # trials of several rounds: round:<r>:labels and round:<r>:<bench>.<metric>
SWEEP_PLAN = "sweep_plan.json"
SWEEP_DECISIONS = "decisions.json"  # sweep.decide: settings, and per comparison its verdict and path over the looks
TRIALS = "trials"
TRIAL_RESULT = "trial_result.json"

# rounds (labelwise.rounds): run_dir/rounds/r<N>/ holds a round's files under the names above
ROUNDS = "rounds"
ROUND_CURVE = "curve.csv"  # run_dir/rounds/: per round, labels so far and the adapted model's metrics
ROUND_ALLOCATION = "allocation.csv"  # run_dir/rounds/: every round's allocation.csv with a round column


def round_folder(r: int) -> str:
    """A round's folder, relative to the run folder."""
    return f"{ROUNDS}/r{r}"


# labelwise.manifest's folders
MANIFESTS = ".manifests"
STAGING = ".staging"


def read_records(path: str | Path, fields: list[str], missing: str) -> list[dict]:
    """The records of a JSONL file, each with ``fields`` (ids read as strings); ``missing``
    is the hint when the file does not exist. (Read here, not with textio.read_jsonl: this
    module imports nothing of ours.)"""
    import json

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {missing}")
    with open(path) as f:
        lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
    rows = []
    for n, line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    for i, row in enumerate(rows, 1):
        lacking = [k for k in fields if k not in row]
        if lacking:
            raise ValueError(f"{path}: record {i} lacks {', '.join(lacking)}")
        row["id"] = str(row["id"])
        for key in fields[1:]:
            if not isinstance(row[key], str):
                raise ValueError(f"{path}: record {i}: {key} must be a string")
    return rows


def judgments_schema():
    """The pyarrow schema of judgments.parquet (JUDGMENTS_COLUMNS)."""
    import pyarrow as pa

    types = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "list<string>": pa.list_(pa.string())}
    return pa.schema([pa.field(name, types[kind]) for name, kind in JUDGMENTS_COLUMNS.items()])


def read_judgments(path: str | Path):
    """judgments.parquet as a pyarrow Table with exactly the contract's columns and types."""
    return read_typed(path, judgments_schema(), "judge the pool first (`labelwise judge JOB.yaml`)")


def read_typed(path: str | Path, schema, missing: str):
    """A run-folder parquet file as a pyarrow Table with exactly ``schema``'s columns and
    types; a missing file (``missing`` is the hint), a missing column or a column that does
    not cast is an error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {missing}")
    table = pq.read_table(path)
    lacking = [c for c in schema.names if c not in table.column_names]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {', '.join(lacking)} (have: {', '.join(table.column_names)})")
    columns = []
    for field in schema:
        try:
            columns.append(table[field.name].cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"{path}: column {field.name!r} is {table[field.name].type}, not {field.type} ({e})") from None
    return pa.Table.from_arrays(columns, schema=schema)


def read_to_annotate(path: str | Path) -> list[dict]:
    return read_records(path, TO_ANNOTATE_FIELDS, "run `labelwise select` first")


def read_labeled(path: str | Path) -> list[dict]:
    return read_records(path, LABELED_FIELDS, "run `labelwise annotate` first")


def read_frame(path: str | Path, columns, missing: str):
    """A run-folder table (.csv or .parquet) as a DataFrame, with ``columns`` checked;
    ``missing`` is the hint when the file does not exist."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {missing}")
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {', '.join(lacking)} (expected {', '.join(columns)}; "
                         f"found {', '.join(map(str, df.columns))})")
    return df


def read_allocation(path: str | Path):
    return read_frame(path, ALLOCATION_COLUMNS, "run `labelwise select` first")


def read_train_log(path: str | Path, columns=("step", "epoch", "loss")):
    """train_log.csv; ``columns`` are the ones the caller needs (logs written before a
    column was added still read), TRAIN_LOG_COLUMNS is what training writes."""
    return read_frame(path, columns, "run `labelwise train` first")
