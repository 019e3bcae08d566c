"""The run folder's files: every name, what each holds, and one reader for the record files
several stages read. Stages meet only at these files (ARCHITECTURE.md); a name is defined
here and nowhere else (runio re-exports the common ones).

The column types of scores.parquet are scoring/schema.py's ``schema()``; those of
selection.parquet and allocation.csv are selection/table.py's (what selectors read); those
of judgments.parquet are JUDGMENTS_COLUMNS here (read with :func:`read_judgments`).
"""

from __future__ import annotations

from pathlib import Path

# pool: the pool, its held-out test split, and what was read and dropped
POOL = "pool.parquet"
TEST = "test.parquet"
POOL_META = "pool_meta.json"
POOL_COLUMNS = ["id", "task", "prompt", "response", "source"]  # pool.parquet and test.parquet

# score: scores.parquet (scoring/schema.py), its summary, the resumable shard cache
SCORES = "scores.parquet"
SCORE_SUMMARY = "score_summary.json"
SCORE_SHARDS = "score_shards"

# judge: one row per pool prompt (the judge stage writes it; thtb and within_task: hardness read it)
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

# select
SELECTION = "selection.parquet"
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

# train
ADAPTER = "adapter"
TRAIN_LOG = "train_log.csv"
LOSS_PNG = "loss.png"
TRAIN_SUMMARY = "train_summary.json"

# evaluate: metrics_<label>.json per label, gathered into metrics.json; the per-benchmark cache
METRICS = "metrics.json"
EVAL_CACHE = "eval_cache"


def metrics_file(label: str) -> str:
    return f"metrics_{label}.json"


# run and sweep
RUN_SUMMARY = "summary.json"
RESULTS = "results.csv"
FULL = "full"  # results.csv: the strategy of the full-pool reference trials
SWEEP_PLAN = "sweep_plan.json"
TRIALS = "trials"
TRIAL_RESULT = "trial_result.json"

# labelwise.manifest's folders
MANIFESTS = ".manifests"
STAGING = ".staging"


def read_records(path: str | Path, fields: list[str], missing: str) -> list[dict]:
    """The records of a JSONL file, each with ``fields`` (ids read as strings); ``missing``
    is the hint when the file does not exist."""
    from labelwise.runio import read_jsonl

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {missing}")
    rows = read_jsonl(path)
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
    """judgments.parquet as a pyarrow Table with exactly the contract's columns and types; a
    missing file, a missing column or a column that does not cast is an error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: judge the pool first (`labelwise judge JOB.yaml`)")
    table = pq.read_table(path)
    lacking = [c for c in JUDGMENTS_COLUMNS if c not in table.column_names]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {', '.join(lacking)} (have: {', '.join(table.column_names)})")
    columns = []
    for field in judgments_schema():
        try:
            columns.append(table[field.name].cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"{path}: column {field.name!r} is {table[field.name].type}, not {field.type} ({e})") from None
    return pa.Table.from_arrays(columns, schema=judgments_schema())


def read_to_annotate(path: str | Path) -> list[dict]:
    return read_records(path, TO_ANNOTATE_FIELDS, "run `labelwise select` first")


def read_labeled(path: str | Path) -> list[dict]:
    return read_records(path, LABELED_FIELDS, "run `labelwise annotate` first")
