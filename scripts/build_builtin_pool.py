"""Build the packaged default pool ``builtin:multitask`` from ../shared/data.

    python scripts/build_builtin_pool.py [--data-dir ../shared/data] [--out platform/labelwise/pool/data]

Reads FLAN v2 CoT (7 tasks, worked solutions), full Super-NaturalInstructions task files
(4 tasks) and the English tasks of niv2_lite grouped by category (one example per SNI task;
11 categories): Apache-2.0 data only. MMLU, BBH and alpaca_eval are evaluation sets and stay
out. Each source is read through labelwise's own format adapters (flan_cot, sni, niv2), so a
packaged row is exactly what ``pool.sources`` would read from the same files.

Writes, deterministically (the same data gives the same bytes):
  multitask.jsonl.gz   one row per prompt: task, source, prompt, response, origin (file:row)
  multitask.json       provenance: every source file read with its sha256, per-task counts,
                       the filters, and this script's settings
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from labelwise.runio import sha256_file  # noqa: E402

SEED = "labelwise-multitask-v1"
MAX_PROMPT_CHARS = 1500
MAX_RESPONSE_CHARS = 700
NAME = "multitask"

# (source folder, format, extra reading keys, {task in the data: rows}); a niv2 category
# ("Question Answering") becomes a snake_case task name (question_answering), other tasks keep
# their names. Sizes are deliberately unequal (120 down to 5: 24x), as real pools are.
SOURCES = [
    ("flan_v2_cot", "flan_cot", {"response_template": "{rationale} So the answer is {answer}."}, {
        "cot_gsm8k": 120, "cot_creak": 40, "cot_strategyqa": 30, "cot_ecqa": 24,
        "cot_sensemaking": 16, "cot_qasc": 12, "cot_aqua": 6,
    }),
    ("sni", "sni", {}, {
        "task1393_superglue_copa_text_completion": 44,
        "task1435_ro_sts_parallel_language_translation_ro_to_en": 32,
        "task648_answer_generation": 20,
        "task957_e2e_nlg_text_generation_generate": 12,
    }),
    ("niv2", "niv2", {}, {
        "Question Answering": 48, "Program Execution": 40, "Sentiment Analysis": 32,
        "Question Generation": 24, "Text Categorization": 20, "Toxic Language Detection": 16,
        "Named Entity Recognition": 12, "Title Generation": 8, "Summarization": 6, "Word Analogy": 5,
    }),
]
LICENSES = {
    "flan_v2_cot": "Apache-2.0 (FLAN collection, Longpre et al. 2023)",
    "sni": "Apache-2.0 (Super-NaturalInstructions, Wang et al. 2022)",
    "niv2": "Apache-2.0 (Super-NaturalInstructions via the FLAN collection)",
}


def english_niv2(path: Path, keep: set[str]) -> tuple[Path, dict[int, str]]:
    """niv2_lite rows whose only language is English, of the categories kept, as a temporary
    JSONL the niv2 adapter reads (the adapter itself does not filter by language); and, per
    line of it, the original line and SNI task ("niv2/niv2_lite.jsonl:12 (task001_...)")."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"niv2_english_{os.getpid()}.jsonl"
    origins: dict[int, str] = {}
    with open(path, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as w:
        for number, line in enumerate(f, 1):
            row = json.loads(line)
            if row.get("languages") == "['English']" and row.get("category") in keep:
                w.write(json.dumps(row, ensure_ascii=False) + "\n")
                origins[len(origins) + 1] = f"niv2/{path.name}:{number} ({row.get('task')})"
    return out, origins


def read_source(data_dir: Path, folder: str, fmt: str, keys: dict, tasks: dict) -> tuple[dict, list[Path]]:
    """task in the data -> [(prompt, response, origin)], and the files read."""
    from labelwise.pool.config import PoolConfig
    from labelwise.pool.formats import source_records

    src = data_dir / folder
    tmp = None
    if fmt == "niv2":
        files = [src / "niv2_lite.jsonl"]
        tmp, origins = english_niv2(files[0], set(tasks))
        reads = [tmp]
    else:  # one file per task: read only the files of the tasks kept
        files = [src / (f"{t}.json" if fmt == "sni" else f"{t}_train.tsv") for t in sorted(tasks)]
        reads = files
    rows: dict[str, list[tuple[str, str, str]]] = {}
    try:
        for path in reads:
            records, _ = source_records(PoolConfig(source=str(path), format=fmt, source_name=folder, **keys))
            for r in records:
                if r.task not in tasks:
                    continue
                where = origins[int(r.where.rsplit(":", 1)[1])] if tmp else os.path.relpath(r.where, data_dir)
                rows.setdefault(r.task, []).append((r.prompt.strip(), r.response.strip(), where))
    finally:
        if tmp:
            tmp.unlink(missing_ok=True)
    return rows, files


def pick(rows: list[tuple[str, str, str]], n: int, task: str) -> tuple[list[tuple[str, str, str]], dict]:
    """n rows of a task: usable ones (non-empty, within the length limits, first of equal
    prompts), in a seeded hash order that does not depend on the file's order."""
    seen, usable, counts = set(), [], {"read": len(rows), "empty": 0, "too_long": 0, "duplicate_prompt": 0}
    for prompt, response, origin in rows:
        if not prompt or not response:
            counts["empty"] += 1
        elif len(prompt) > MAX_PROMPT_CHARS or len(response) > MAX_RESPONSE_CHARS:
            counts["too_long"] += 1
        elif prompt in seen:
            counts["duplicate_prompt"] += 1
        else:
            seen.add(prompt)
            usable.append((prompt, response, origin))
    if len(usable) < n:
        raise SystemExit(f"{task}: only {len(usable)} usable rows, {n} wanted")
    rank = lambda r: hashlib.sha256(f"{SEED}\x00{task}\x00{r[0]}".encode()).hexdigest()  # noqa: E731
    counts["usable"] = len(usable)
    return sorted(usable, key=rank)[:n], counts


def build(data_dir: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    packaged, tasks_info, files_read = [], {}, []
    for folder, fmt, keys, tasks in SOURCES:
        rows, files = read_source(data_dir, folder, fmt, keys, tasks)
        files_read += files
        for name in tasks:
            n = tasks[name]
            packaged_name = name.lower().replace(" ", "_") if fmt == "niv2" else name
            chosen, counts = pick(rows.get(name, []), n, name)
            tasks_info[packaged_name] = {"rows": n, "source": folder, "format": fmt, "task_in_source": name,
                                         "license": LICENSES[folder], **counts}
            packaged += [{"task": packaged_name, "source": folder, "prompt": p, "response": r, "origin": o}
                         for p, r, o in chosen]
    packaged.sort(key=lambda r: (r["task"], r["origin"]))
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in packaged).encode()
    data_file = out / f"{NAME}.jsonl.gz"
    with open(data_file, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(body)
    info = {
        "name": f"builtin:{NAME}",
        "made_by": "scripts/build_builtin_pool.py",
        "seed": SEED,
        "filters": {"max_prompt_chars": MAX_PROMPT_CHARS, "max_response_chars": MAX_RESPONSE_CHARS,
                    "niv2": "rows whose languages are ['English'] only; task = category",
                    "duplicates": "the first of equal prompts within a task"},
        "rows": len(packaged),
        "tasks": tasks_info,
        "data_file": {"name": data_file.name, "sha256": sha256_file(data_file), "bytes": data_file.stat().st_size},
        "source_files": [{"path": os.path.relpath(p, data_dir), "sha256": sha256_file(p), "bytes": p.stat().st_size}
                         for p in sorted(set(files_read))],
        "excluded": "MMLU, BBH (evaluation benchmarks) and alpaca_eval (evaluation only, CC BY-NC 4.0)",
    }
    (out / f"{NAME}.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("LABELWISE_DATA_DIR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--out", default=str(REPO / "platform" / "labelwise" / "pool" / "data"))
    args = p.parse_args(argv)
    data_dir = Path(args.data_dir).resolve()
    if not (data_dir / "flan_v2_cot").is_dir():
        p.error(f"--data-dir {data_dir}: no flan_v2_cot folder (the shared data folder, see ../shared/data/README.md)")
    info = build(data_dir, Path(args.out))
    print(f"wrote {info['rows']} rows in {len(info['tasks'])} tasks to {Path(args.out) / info['data_file']['name']} "
          f"({info['data_file']['bytes']:,} bytes, sha256 {info['data_file']['sha256'][:12]}) from {len(info['source_files'])} source files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
