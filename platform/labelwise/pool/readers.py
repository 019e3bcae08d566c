"""Read records from JSONL / JSON / CSV / TSV / Parquet files and saved HF datasets.

Local paths and pyarrow filesystem URIs (``s3://bucket/x.jsonl``, ``gs://``, ``file://``)
both work. Each reader yields ``(where, record)`` where ``where`` is ``file:line`` (or
``file:row N``), so every later error can name the place. A malformed line is an error
naming the file and the line. Text files are UTF-8 with or without a byte-order mark; a
byte that is not UTF-8 is an error naming the file and the line (:mod:`labelwise.textio`).
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Iterator

from labelwise import textio

TABLE_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".arrow")


def data_dir() -> str:
    """``$LABELWISE_DATA_DIR``, default ``<repository>/../shared/data``."""
    from pathlib import Path

    default = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return os.environ.get("LABELWISE_DATA_DIR") or str(default)


def expand(source: str) -> str:
    """Expand ``$VARS`` (``${LABELWISE_DATA_DIR}`` has a default) and ``~``."""
    if "LABELWISE_DATA_DIR" in source and not os.environ.get("LABELWISE_DATA_DIR"):
        source = source.replace("${LABELWISE_DATA_DIR}", data_dir()).replace("$LABELWISE_DATA_DIR", data_dir())
    return os.path.expanduser(os.path.expandvars(source))


def open_source(source: str):
    """Return (pyarrow filesystem, path) for a local path or a filesystem URI."""
    from pyarrow import fs as pafs

    source = expand(source)
    if "://" in source:
        try:
            return pafs.FileSystem.from_uri(source)
        except Exception as e:  # unknown scheme, missing credentials...
            raise FileNotFoundError(f"{source}: cannot open this filesystem URI ({e})") from None
    return pafs.LocalFileSystem(), os.path.abspath(source)


def is_dir(fs, path: str) -> bool:
    from pyarrow import fs as pafs

    return fs.get_file_info(path).type == pafs.FileType.Directory


def exists(fs, path: str) -> bool:
    from pyarrow import fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_files(fs, path: str, extensions=TABLE_EXTENSIONS) -> list[str]:
    """The data files of ``path``: itself, or the files of a folder (sorted, not hidden)."""
    from pyarrow import fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{path}: pool source not found")
    if info.type != pafs.FileType.Directory:
        return [path]
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    files = sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and not os.path.basename(i.path).startswith(".")
        and i.path.lower().endswith(tuple(extensions))
    )
    if not files:
        raise FileNotFoundError(f"{path}: folder has no data files ({', '.join(extensions)})")
    return files


def read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return textio.decode(f.read(), path)


def read_jsonl(fs, path: str) -> Iterator[tuple[str, dict]]:
    with fs.open_input_stream(path) as raw:
        stream = textio.text_stream(raw)
        for i, line in enumerate(textio.check_lines(stream, path), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
            yield f"{path}:{i}", obj


def read_json(fs, path: str, key: str | None = None) -> Iterator[tuple[str, dict]]:
    """A JSON file holding a list of objects (or an object whose ``key`` is that list)."""
    try:
        data = json.loads(read_text(fs, path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if key is None and isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            key = lists[0]
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise ValueError(f"{path}: expected a JSON object with a {key!r} list")
        data = data[key]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records (or use a .jsonl file)")
    for i, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: record {i}: expected a JSON object, got {type(obj).__name__}")
        yield f"{path}:record {i}", obj


def read_csv(fs, path: str, delimiter: str = ",", fieldnames: list[str] | None = None) -> Iterator[tuple[str, dict]]:
    """CSV/TSV with a header row (or ``fieldnames``); a row with the wrong number of fields
    is an error naming the line."""
    with fs.open_input_stream(path) as raw:
        stream = textio.check_lines(textio.text_stream(raw, newline=""), path)
        reader = csv.reader(stream, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        header = fieldnames
        try:
            for fields in reader:
                line = reader.line_num
                if header is None:
                    header = [h.strip() for h in fields]
                    continue
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if len(fields) != len(header):
                    raise ValueError(
                        f"{path}:{line}: {len(fields)} fields, expected {len(header)} ({', '.join(header)})"
                    )
                yield f"{path}:{line}", dict(zip(header, fields))
        except csv.Error as e:
            raise ValueError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def read_parquet(fs, path: str) -> Iterator[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, filesystem=fs)
    except Exception as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"{path}:row {i}", row


def read_arrow_stream(fs, path: str) -> Iterator[tuple[str, dict]]:
    import pyarrow as pa

    with fs.open_input_stream(path) as f:
        table = pa.ipc.open_stream(f).read_all()
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"{path}:row {i}", row


def read_table_file(fs, path: str) -> Iterator[tuple[str, dict]]:
    """Dispatch on the file extension."""
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return read_jsonl(fs, path)
    if lower.endswith(".json"):
        return read_json(fs, path)
    if lower.endswith(".csv"):
        return read_csv(fs, path)
    if lower.endswith(".tsv"):
        return read_csv(fs, path, delimiter="\t")
    if lower.endswith(".parquet"):
        return read_parquet(fs, path)
    if lower.endswith(".arrow"):
        return read_arrow_stream(fs, path)
    raise ValueError(f"{path}: unknown file type (expected one of {', '.join(TABLE_EXTENSIONS)})")


# ---- Hugging Face datasets ----------------------------------------------------------------

def is_hf_saved(fs, path: str) -> bool:
    return exists(fs, path + "/state.json") or exists(fs, path + "/dataset_dict.json")


def read_hf_saved(fs, path: str, split: str = "train") -> Iterator[tuple[str, dict]]:
    """A dataset written by ``Dataset.save_to_disk`` (or a DatasetDict: ``split`` is read).

    Uses ``datasets.load_from_disk`` when the library is installed, else reads the Arrow
    files listed in state.json directly with pyarrow (same data, no extra dependency)."""
    if exists(fs, path + "/dataset_dict.json"):
        splits = json.loads(read_text(fs, path + "/dataset_dict.json")).get("splits", [])
        if split not in splits:
            raise ValueError(f"{path}: split {split!r} not found; splits: {', '.join(splits)} (set pool.split)")
        path = f"{path}/{split}"
    try:
        import datasets  # noqa: F401
    except ImportError:
        datasets = None
    if datasets is not None and "://" not in path and not path.startswith("s3"):
        ds = datasets.load_from_disk(path)
        for i, row in enumerate(ds, 1):
            yield f"{path}:row {i}", row
        return
    state = json.loads(read_text(fs, path + "/state.json"))
    files = [f["filename"] for f in state.get("_data_files", [])]
    if not files:
        raise ValueError(f"{path}/state.json: lists no _data_files")
    n = 0
    for name in files:
        for _, row in read_arrow_stream(fs, f"{path}/{name}"):
            n += 1
            yield f"{path}:row {n}", row


def no_remote_code(load_dataset) -> dict:
    """``trust_remote_code=False``, said explicitly, where ``load_dataset`` takes it (datasets
    2.16 to 3.x; datasets 4 runs no dataset scripts and has no such argument)."""
    import inspect

    try:
        params = inspect.signature(load_dataset).parameters
    except (TypeError, ValueError):
        return {"trust_remote_code": False}
    return {"trust_remote_code": False} if "trust_remote_code" in params else {}


def read_hf_hub(name: str, split: str = "train") -> Iterator[tuple[str, dict]]:
    from labelwise.models import network_allowed

    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(
            f"hf:{name}: the `datasets` library is not installed: pip install 'labelwise[hf]' "
            "(or pip install 'datasets>=2.16'); or save the dataset with save_to_disk (or as "
            "JSONL/Parquet) and point pool.source at the folder"
        ) from None
    if not network_allowed():
        raise FileNotFoundError(
            f"hf:{name}: hub datasets need the network (offline now); point pool.source at a "
            "local copy (save_to_disk folder, JSONL, CSV or Parquet)"
        )
    ds = datasets.load_dataset(name, split=split, **no_remote_code(datasets.load_dataset))
    for i, row in enumerate(ds, 1):
        yield f"hf:{name}:row {i}", row
