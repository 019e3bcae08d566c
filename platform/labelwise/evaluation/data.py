"""Where benchmark data lives, the error that shows the expected layout when it is missing, and
the short digests of data files that benchmark protocols record."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

LAYOUTS = {
    "mmlu": """\
  mmlu/
    dev/<subject>_dev.csv     5 few-shot examples per subject
    test/<subject>_test.csv   the questions
  each CSV: header question,choice0,choice1,choice2,choice3,answer (answer = index 0-3)""",
    "bbh": """\
  bbh/
    tasks/<task>.json         {"examples": [{"input": ..., "target": ...}, ...]}
    cot-prompts/<task>.txt    the standard 3-shot chain-of-thought prompt of the task""",
    "winrate": """\
  alpaca_eval/gpt4_model_outputs.json
    a JSON list (or JSONL) of {"instruction": ..., "output": <reference answer, optional>}""",
}


def data_root(configured: str | None = None) -> Path:
    """evaluate.data_dir, else $LABELWISE_DATA_DIR, else <repo>/../shared/data."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("LABELWISE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data"


def missing(benchmark: str, path: Path, what: str = "") -> FileNotFoundError:
    """A FileNotFoundError naming the path and showing the layout the benchmark expects."""
    detail = f" ({what})" if what else ""
    return FileNotFoundError(
        f"{benchmark}: data not found at {path}{detail}. Expected layout under the data folder "
        f"(evaluate.data_dir or $LABELWISE_DATA_DIR, or evaluate.{benchmark}.path):\n"
        f"{LAYOUTS[benchmark]}"
    )


def sample(rows: list[dict], cap: int | None, seed: int, key: str) -> list[dict]:
    """At most ``cap`` rows, the same for the same (seed, key), in file order."""
    if cap is None or len(rows) <= cap:
        return rows
    digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    picked = sorted(random.Random(int(digest[:16], 16)).sample(range(len(rows)), cap))
    return [rows[i] for i in picked]


def file_hash(path: Path) -> str:
    from labelwise.runio import sha256_file

    return sha256_file(path)[:16]


def files_hash(root: Path, files: list[Path]) -> str:
    """Content hash of a benchmark's data files (names relative to ``root``, and bytes)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(Path(f).relative_to(root)).encode())
        h.update(file_hash(f).encode())
    return h.hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
