"""Built-in pool ``builtin:multitask``: real instruction data shipped inside the package.

21 tasks from FLAN v2 chain-of-thought and Super-NaturalInstructions (Apache-2.0), 567
prompts with gold answers, task sizes from 120 down to 5, answers from one letter to a worked
math solution. ``data/multitask.jsonl.gz`` is made by ``scripts/build_builtin_pool.py`` from
``../shared/data``; ``data/multitask.json`` records how (the sha256 of every source file, the
per-task counts) and ``data/NOTICE.md`` the attributions. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from labelwise.pool.records import Raw

DATA = Path(__file__).with_name("data")
ROWS = DATA / "multitask.jsonl.gz"
INFO = DATA / "multitask.json"


def info() -> dict:
    """The provenance file: tasks with their sizes, sources and licences, source sha256s."""
    return json.loads(INFO.read_text(encoding="utf-8"))


def records() -> tuple[Iterator[Raw], dict]:
    if not ROWS.exists():
        raise FileNotFoundError(f"{ROWS}: the packaged pool is missing from this install (reinstall labelwise)")
    provenance = info()

    def gen():
        with gzip.open(ROWS, "rt", encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                    yield Raw(prompt=r["prompt"], response=r["response"], task=r["task"], source=r["source"],
                              where=f"{ROWS.name}:{line_number} ({r['origin']})")
                except (json.JSONDecodeError, KeyError) as e:
                    raise ValueError(f"{ROWS}:{line_number}: not a packaged pool row ({e})") from None

    meta = {
        "builtin": "multitask",
        "file": ROWS.name,
        "sha256": provenance["data_file"]["sha256"],
        "task_sizes": {t: v["rows"] for t, v in provenance["tasks"].items()},
        "licence": "Apache-2.0 (see labelwise/pool/data/NOTICE.md)",
    }
    return gen(), meta
