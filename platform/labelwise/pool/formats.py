"""Format adapters: the datasets users bring, turned into :class:`Raw` records.

=============  ==========================================================================
format         what it reads (prompt / response / task by default)
=============  ==========================================================================
table          any JSONL/JSON/CSV/TSV/Parquet/HF-saved table: columns prompt, response, task
dolly          databricks-dolly-15k: "{instruction}\\n\\n{context}" / response / category
alpaca         Alpaca: "{instruction}\\n\\n{input}" / output / (no task: set task or infer_tasks)
alpaca_eval    AlpacaEval's prompt file (JSON list): instruction / output / dataset
flan_cot       FLAN v2 CoT TSVs (question, answer, rationale; no header): task from the file
               name (cot_gsm8k_train.tsv -> cot_gsm8k); literal "\\n" becomes a newline
flan           processed FLAN JSONL: Tulu-style {"messages": [...]} or {"inputs", "targets"};
               task from _task_name / task_name / task
sni            Super-NaturalInstructions task files (task123_x.json): "{definition}\\n\\n{input}"
               / first output / the file name
niv2           niv2_lite.jsonl (one example per SNI task): definition + input / output / category
=============  ==========================================================================

``pool.columns`` and ``pool.prompt_template`` / ``response_template`` override the defaults;
``pool.task`` gives every row one task.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from labelwise.pool import readers
from labelwise.pool.config import PoolConfig
from labelwise.pool.records import Mapper, Raw, map_rows, text

# format -> (prompt_template, response_template, task column)
DEFAULTS = {
    "table": ("{prompt}", "{response}", "task"),
    "dolly": ("{instruction}\n\n{context}", "{response}", "category"),
    "alpaca": ("{instruction}\n\n{input}", "{output}", None),
    "alpaca_eval": ("{instruction}", "{output}", "dataset"),
    "flan_cot": ("{question}", "{answer}", "task"),
    "flan": ("{prompt}", "{response}", "task"),
    "sni": ("{definition}\n\n{input}", "{output}", "task"),
    "niv2": ("{definition}\n\n{input}", "{output}", "category"),
}
FLAN_COT_COLUMNS = ["question", "answer", "rationale"]
SNI_FILE = re.compile(r"^task\d+_.*\.json$")
FLAN_COT_FILE = re.compile(r"^cot_.*\.tsv$")


def detect_format(fs, path: str, files: list[str]) -> str:
    """Guess the format from file names, then from the keys of the first record."""
    names = [os.path.basename(f) for f in files]
    if any(FLAN_COT_FILE.match(n) for n in names):
        return "flan_cot"
    if any(SNI_FILE.match(n) for n in names):
        return "sni"
    first = next(iter(readers.read_table_file(fs, files[0])), None)
    keys = set(first[1]) if first else set()
    if {"instruction", "context", "response", "category"} <= keys:
        return "dolly"
    if {"instruction", "input", "output"} <= keys:
        return "alpaca"
    if {"instruction", "output", "dataset"} <= keys:
        return "alpaca_eval"
    if "messages" in keys or {"inputs", "targets"} <= keys:
        return "flan"
    if {"definition", "input", "output", "category"} <= keys:
        return "niv2"
    return "table"


def format_files(fmt: str, files: list[str]) -> tuple[list[str], list[str]]:
    """(files the format reads, files of the folder it ignores): a FLAN CoT folder also
    holds flan_collection_info.csv, an SNI folder may hold a README."""
    pattern = {"flan_cot": FLAN_COT_FILE, "sni": SNI_FILE}.get(fmt)
    if pattern is None or len(files) == 1:
        return files, []
    used = [f for f in files if pattern.match(os.path.basename(f))]
    if not used:
        raise ValueError(f"format {fmt}: no files named like {pattern.pattern} among {', '.join(files)}")
    return used, [f for f in files if f not in used]


def mapper_for(fmt: str, cfg: PoolConfig, first_keys: set[str] | None) -> Mapper:
    prompt_t, response_t, task_col = DEFAULTS[fmt]
    cols = cfg.columns
    if "prompt" in cols:
        prompt_t = "{" + cols["prompt"] + "}"
    if cfg.prompt_template:
        prompt_t = cfg.prompt_template
    if "response" in cols:
        response_t = "{" + cols["response"] + "}" if cols["response"] else None
    if cfg.response_template:
        response_t = cfg.response_template
    if "task" in cols:
        task_col = cols["task"] or None
    fixed = cfg.task
    if fixed is not None:
        task_col = None
    elif (task_col and cfg.infer_tasks and first_keys is not None and task_col not in first_keys
          and "task" not in cols and fmt in ("table", "flan")):
        task_col = None  # tasks are inferred and this table has no task column
    # Without task inference the task column stays mapped even when the first row lacks it:
    # rows without it count as "no task", and a file where no row has it is an error.
    if task_col is None and fixed is None and cfg.infer_tasks == 0:
        raise ValueError(
            f"{cfg.source}: the data has no task column; set pool.columns.task, pool.task "
            "(one task for all rows) or pool.infer_tasks (k-means clusters)"
        )
    return Mapper(
        prompt=None,
        response=None,
        task=task_col,
        prompt_template=prompt_t,
        response_template=response_t,
        fixed_task=fixed,
        numeric_responses=cfg.numeric_responses,
    )


# ---- per-format record streams --------------------------------------------------------------

def flan_cot_records(fs, path: str) -> Iterator[tuple[str, dict]]:
    stem = os.path.basename(path).rsplit(".", 1)[0]
    task = stem[: -len("_train")] if stem.endswith("_train") else stem
    for where, row in readers.read_csv(fs, path, delimiter="\t", fieldnames=FLAN_COT_COLUMNS):
        row = {k: v.replace("\\n", "\n") for k, v in row.items()}
        row["task"] = task
        yield where, row


def sni_records(fs, path: str) -> Iterator[tuple[str, dict]]:
    import json

    try:
        data = json.loads(readers.read_text(fs, path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    found = ", ".join(data) if isinstance(data, dict) else type(data).__name__
    if not isinstance(data, dict) or "Instances" not in data or "Definition" not in data:
        raise ValueError(f"{path}: not a Super-NaturalInstructions task file (expected Definition and Instances; found {found})")
    task = os.path.basename(path).rsplit(".", 1)[0]
    definition = text(data["Definition"])
    for i, inst in enumerate(data["Instances"], 1):
        if not isinstance(inst, dict) or "input" not in inst:
            raise ValueError(f"{path}: Instances[{i - 1}]: expected an object with input and output")
        yield f"{path}:instance {i}", {
            "definition": definition,
            "input": inst.get("input"),
            "output": text(inst.get("output")),  # a list of accepted outputs: the first
            "task": task,
        }


def flan_records(fs, path: str) -> Iterator[tuple[str, dict]]:
    for where, row in readers.read_table_file(fs, path):
        out = dict(row)
        messages = row.get("messages")
        if messages is not None:
            if not isinstance(messages, list):
                raise ValueError(f"{where}: messages must be a list of {{role, content}}")
            user = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
            reply = next((m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"), None)
            out["prompt"], out["response"] = user or "", reply or ""
        else:
            if "inputs" not in row:
                raise ValueError(f"{where}: expected 'messages' or 'inputs'/'targets'; keys found: {', '.join(row)}")
            out["prompt"], out["response"] = row.get("inputs"), row.get("targets")
        for key in ("_task_name", "task_name", "task"):
            if row.get(key):
                out["task"] = row[key]
                break
        yield where, out


def source_records(cfg: PoolConfig) -> tuple[Iterator[Raw], dict]:
    """All records of a user source (not a built-in), with info for the pool metadata."""
    if cfg.source.startswith("hf:"):
        name = cfg.source[3:]
        fmt = "table" if cfg.format == "auto" else cfg.format
        rows = readers.read_hf_hub(name, cfg.split)
        first = next(rows, None)
        mapper = mapper_for(fmt, cfg, set(first[1]) if first else set())
        source = cfg.source_name or name

        def hub_rows():
            if first is not None:
                yield first
            yield from rows

        return map_rows(hub_rows(), mapper, source, cfg.source), {"format": fmt, "files": [cfg.source]}

    fs, path = readers.open_source(cfg.source)
    if readers.is_dir(fs, path) and readers.is_hf_saved(fs, path):
        files, ignored = [path], []
        fmt = "table" if cfg.format == "auto" else cfg.format
        streams = lambda f: readers.read_hf_saved(fs, f, cfg.split)  # noqa: E731
    else:
        files = readers.list_files(fs, path)
        fmt = detect_format(fs, path, files) if cfg.format == "auto" else cfg.format
        files, ignored = format_files(fmt, files)
        streams = {
            "flan_cot": lambda f: flan_cot_records(fs, f),
            "sni": lambda f: sni_records(fs, f),
            "flan": lambda f: flan_records(fs, f),
        }.get(fmt, lambda f: readers.read_table_file(fs, f))

    first = next(iter(streams(files[0])), None)
    if first is None:
        raise ValueError(f"{files[0]}: no records")
    mapper = mapper_for(fmt, cfg, set(first[1]))

    def gen():
        # map_rows checks, at the end of each file, that every mapped column appears in it
        for f in files:
            source = cfg.source_name or os.path.basename(f.rstrip("/"))
            yield from map_rows(streams(f), mapper, source, f)

    return gen(), {"format": fmt, "files": files, "ignored_files": ignored}
