"""Text inputs as real users' tools write them: Excel's "CSV UTF-8" (a byte-order mark),
bytes that are not UTF-8, CRLF line endings (issue 15)."""

from __future__ import annotations

import codecs
import json

import pytest

from labelwise import config, contracts, runio, textio
from labelwise.annotate.answers import read_answers
from labelwise.annotate.stage import annotate
from labelwise.job import JobConfig, load_job
from labelwise.pool.build import build_tables
from labelwise.pool.config import PoolConfig
from labelwise.pool.formats import source_records

BOM = codecs.BOM_UTF8
ROWS = [("first prompt", "one", "t0"), ("second prompt", "two", "t1"), ("third, with comma", "three", "t0")]


def load_pool(path, **kw):
    cfg = config.build(PoolConfig, {"source": str(path), "test_fraction": 0, **kw}, "job.yaml: pool")
    records, info = source_records(cfg)
    pool, _, _ = build_tables(cfg, records, info)
    return pool


def csv_bytes(rows=ROWS) -> bytes:
    lines = ["prompt,response,task"] + [f'"{p}",{r},{t}' for p, r, t in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def jsonl_bytes(rows=ROWS) -> bytes:
    return "".join(json.dumps({"prompt": p, "response": r, "task": t}) + "\n" for p, r, t in rows).encode()


@pytest.mark.parametrize("suffix,data", [(".csv", csv_bytes()), (".jsonl", jsonl_bytes())])
def test_pool_files_with_a_byte_order_mark_read_like_without(tmp_path, suffix, data):
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"excel{suffix}"
    plain.write_bytes(data)
    marked.write_bytes(BOM + data)
    a = load_pool(plain, source_name="s")
    b = load_pool(marked, source_name="s")
    assert sorted(b["prompt"]) == sorted(p for p, _, _ in ROWS)
    assert a.sort_values("id").to_dict("records") == b.sort_values("id").to_dict("records")


def make_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"id": f"id{i}", "task": "t", "prompt": f"line one\nline two {i}"} for i in range(3)]
    runio.write_jsonl(run / contracts.TO_ANNOTATE, rows)
    job = config.build(JobConfig, {"run_dir": str(run), "annotate": {"simulate": False}}, "test")
    return job, rows


def test_answers_csv_from_excel_with_a_byte_order_mark(tmp_path):
    job, rows = make_run(tmp_path)
    path = tmp_path / "answers.csv"
    body = "id,response\r\n" + "".join(f"{r['id']},answer {r['id']}\r\n" for r in rows)
    path.write_bytes(BOM + body.encode())
    assert [a.id for a in read_answers(path)] == ["id0", "id1", "id2"]
    annotate(job, answers=path)
    assert [r["response"] for r in textio.read_jsonl(job.run_path / contracts.LABELED)] == ["answer id0", "answer id1", "answer id2"]


def test_answers_jsonl_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(BOM + b'{"id": "a", "response": "yes"}\n')
    assert [(a.id, a.response) for a in read_answers(path)] == [("a", "yes")]


def test_job_file_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_bytes(BOM + b"run_dir: runs/x\nselect:\n  budget: 7\n")
    job = load_job(path, check_paths=False)
    assert job.select.budget == 7 and job.run_dir == "runs/x"


BAD = b"\xff"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_invalid_utf8_in_a_pool_names_file_and_line(tmp_path, suffix):
    data = (csv_bytes() if suffix == ".csv" else jsonl_bytes()).split(b"\n")
    data[2] = data[2][:5] + BAD + data[2][5:]  # line 3, column 6
    path = tmp_path / f"latin{suffix}"
    path.write_bytes(b"\n".join(data))
    with pytest.raises(ValueError, match=rf"{path}:3: not valid UTF-8 \(byte 0xff at column 6\)"):
        load_pool(path)


def test_invalid_utf8_in_a_json_pool_names_file_and_line(tmp_path):
    path = tmp_path / "list.json"
    path.write_bytes(b'[\n{"prompt": "a", "response": "b", "task": "t"},\n{"prompt": "\xe9", "response": "b", "task": "t"}\n]\n')
    with pytest.raises(ValueError, match=rf"{path}:3: not valid UTF-8 \(byte 0xe9 at column 13\)"):
        load_pool(path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_invalid_utf8_in_answers_names_file_and_line(tmp_path, suffix):
    path = tmp_path / f"answers{suffix}"
    if suffix == ".csv":
        path.write_bytes(b"id,response\nid0,fine\nid1,caf" + BAD + b"\n")
    else:
        path.write_bytes(b'{"id": "id0", "response": "fine"}\n{"id": "id1", "response": "caf' + BAD + b'"}\n')
    line = 3 if suffix == ".csv" else 2
    with pytest.raises(ValueError, match=rf"{path}:{line}: not valid UTF-8 \(byte 0xff"):
        read_answers(path)


def test_invalid_utf8_in_a_job_file_is_a_config_error_naming_file_and_line(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_bytes(b"run_dir: runs/x\n# caf\xe9 in Latin-1\n")
    with pytest.raises(config.ConfigError, match=rf"{path}:2: not valid UTF-8 \(byte 0xe9 at column 6\)"):
        load_job(path, check_paths=False)


def test_a_list_prompt_cell_is_an_error_naming_file_row_and_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"prompt": [[1, 2], [1, 3]], "response": ["a", "b"], "task": ["t", "t"]}), path)
    with pytest.raises(ValueError, match=rf"{path}:row 1: column 'prompt' holds list \[1, 2\], not text"):
        load_pool(path)


def test_a_numeric_response_is_refused_unless_asked_for(tmp_path):
    path = tmp_path / "numbers.jsonl"
    rows = [{"prompt": "2 + 2?", "response": 4, "task": "math"}, {"prompt": "half of 3?", "response": 1.5, "task": "math"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=rf"{path}:1: column 'response' holds int 4, not text.*numeric_responses: true"):
        load_pool(path)
    pool = load_pool(path, numeric_responses=True)
    assert sorted(pool["response"]) == ["1.5", "4"]
    # Numbers as prompts are refused even then.
    path.write_text(json.dumps({"prompt": 7, "response": "seven", "task": "t"}) + "\n")
    with pytest.raises(ValueError, match=r":1: column 'prompt' holds int 7"):
        load_pool(path, numeric_responses=True)


def test_hub_datasets_are_loaded_with_trust_remote_code_false(monkeypatch):
    import sys
    import types

    from labelwise.pool import readers

    calls = []

    def load_dataset(path, name=None, split=None, trust_remote_code=None, **kw):  # datasets 2.16 .. 3.x
        calls.append({"path": path, "split": split, "trust_remote_code": trust_remote_code, **kw})
        return [{"prompt": "p", "response": "r", "task": "t"}]

    def load_dataset_v4(path, name=None, split=None, **config_kwargs):  # datasets 4: no such argument
        if config_kwargs:
            raise TypeError(f"unexpected {sorted(config_kwargs)}")
        calls.append({"path": path, "split": split})
        return [{"prompt": "p", "response": "r", "task": "t"}]

    for fn in (load_dataset, load_dataset_v4):
        monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fn))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.delenv("LABELWISE_OFFLINE", raising=False)
        assert [row for _, row in readers.read_hf_hub("org/data")] == [{"prompt": "p", "response": "r", "task": "t"}]
    assert calls == [{"path": "org/data", "split": "train", "trust_remote_code": False}, {"path": "org/data", "split": "train"}]
