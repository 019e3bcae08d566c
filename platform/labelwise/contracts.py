"""The run folder's files: every name, what each holds, and one reader for the record files
several stages read. Stages meet only at these files (ARCHITECTURE.md); a name is defined
here and nowhere else (runio re-exports the common ones).

The column types of scores.parquet are scoring/schema.py's ``schema()``; those of
selection.parquet and allocation.csv are selection/table.py's (what selectors read); those of
judgments.parquet and disciplines.parquet are judging/schema.py's (``read_judgments`` checks them).
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

# judge (optional: runs when the job has a judge: section): per prompt the LLM judge's Bloom
# level and score, disciplines, their spread and a quality score; per discipline its
# description and MiniLM embedding; the summary (parse counts); the resumable reply cache
JUDGMENTS = "judgments.parquet"
JUDGMENT_COLUMNS = ["id", "task", "bloom_level", "bloom_score", "disciplines", "discipline_count",
                    "discipline_spread", "quality", "error", "judge"]
DISCIPLINES = "disciplines.parquet"
DISCIPLINE_COLUMNS = ["discipline", "description", "embedding"]
JUDGE_SUMMARY = "judge_summary.json"
JUDGE_SHARDS = "judge_shards"

# select
SELECTION = "selection.parquet"
SELECTION_COLUMNS = ["id", "task", "rank"]
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


def read_to_annotate(path: str | Path) -> list[dict]:
    return read_records(path, TO_ANNOTATE_FIELDS, "run `labelwise select` first")


def read_labeled(path: str | Path) -> list[dict]:
    return read_records(path, LABELED_FIELDS, "run `labelwise annotate` first")
