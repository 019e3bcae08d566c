"""pool.sources: several sources, each read its own way, make one pool."""

from __future__ import annotations

import json
import types

import pytest

from labelwise import config
from labelwise.config import ConfigError
from labelwise.job import JobConfig, load_job
from labelwise.pool import stage
from labelwise.pool.config import PoolConfig


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_two_sources_with_their_own_columns_make_one_pool(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"q": f"add {i}+1", "a": str(i + 1), "kind": "add"} for i in range(6)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"instruction": f"say {w}", "input": "", "output": w} for w in "xyzuvw"])
    cfg = config.build(PoolConfig, {
        "sources": [
            {"source": str(a), "columns": {"prompt": "q", "response": "a", "task": "kind"}},
            {"source": str(b), "format": "alpaca", "task": "echo", "source_name": "echoes"},
        ],
        "test_fraction": 0.0,
    }, "job.yaml: pool")
    job = types.SimpleNamespace(run_dir=str(tmp_path / "run"), pool=cfg)
    run = stage.build_pool(job).parent
    pool, meta = stage.read_pool(run), stage.read_meta(run)
    assert pool.groupby("task").size().to_dict() == {"add": 6, "echo": 6}
    assert set(pool.loc[pool.task == "echo", "source"]) == {"echoes"}
    assert [s["format"] for s in meta["source"]["sources"]] == ["table", "alpaca"]
    assert meta["source"]["files"] == [str(a), str(b)]
    from labelwise.pool.summary import format_summary

    assert format_summary(meta).splitlines()[0] == f"pool sources: {a} (format: table) + {b} (format: alpaca)"


def test_bad_entries_are_config_errors_naming_the_entry(tmp_path):
    def load(sources):
        path = tmp_path / "job.yaml"
        path.write_text(json.dumps({"run_dir": str(tmp_path / "r"), "pool": {"sources": sources}}))
        return load_job(path, command="pool")

    with pytest.raises(ConfigError, match=r"pool.sources\[1\].colums: not a reading key"):
        load([{"source": "builtin:skills"}, {"source": "builtin:skills", "colums": {}}])
    with pytest.raises(ConfigError, match=r"pool.sources\[0\].source: is required"):
        load([{"format": "dolly"}])
    with pytest.raises(ConfigError, match=r"pool.sources\[0\].source: unknown built-in pool"):
        load([{"source": "builtin:nope"}])
    with pytest.raises(ConfigError, match=r"pool.sources\[1\].source: .*missing.jsonl.*not found"):
        load([{"source": "builtin:skills"}, {"source": str(tmp_path / "missing.jsonl")}])
    job = config.build(JobConfig, {"pool": {"sources": [{"source": "builtin:skills"}]}}, "x")
    assert [c.source for c in job.pool.source_configs()] == ["builtin:skills"]
