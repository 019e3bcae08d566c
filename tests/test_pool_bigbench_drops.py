"""builtin:bigbench on a small sdist in the real layout (given by LABELWISE_BIGBENCH): every
example the index leaves out is counted by reason and reaches pool_meta.json and the pool
summary."""

from __future__ import annotations

import io
import json
import tarfile
import types

from labelwise.config import build
from labelwise.pool import bigbench, stage
from labelwise.pool.config import PoolConfig
from labelwise.pool.summary import format_summary

ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"


def add_json(tar: tarfile.TarFile, name: str, obj: dict) -> None:
    data = json.dumps(obj).encode()
    info = tarfile.TarInfo(f"{ROOT}/{name}/task.json")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def fake_sdist(path):
    good = [{"input": f"What is {i} + 1?", "target": str(i + 1)} for i in range(bigbench.MAX_EXAMPLES + 3)]
    bad = [
        {"input": "   ", "target": "x"},  # empty input
        {"input": "No answer."},  # no target
        {"input": "Long answer?", "target": "y" * (bigbench.MAX_TARGET_CHARS + 1)},
        {"input": "z" * (bigbench.MAX_INPUT_CHARS + 1), "target": "ok"},
        {"input": "Tie?", "target_scores": {"a": 1, "b": 1, "c": 0}},
        {"input": "One choice?", "target_scores": {"a": 1}},
        {"input": "Pick one.", "target_scores": {"left": 0, "right": 1}},  # kept
    ]
    with tarfile.open(path, "w:gz") as tar:
        add_json(tar, "counting", {"keywords": ["arithmetic"], "examples": good})
        add_json(tar, "messy", {"keywords": ["logic"], "examples": bad})
        add_json(tar, "pictures", {"keywords": ["non-language"], "examples": [{"input": "#", "target": "a"}]})
        add_json(tar, "navigate", {"keywords": [], "examples": [{"input": "Go?", "target": "yes"}]})  # BBH
    return path


def test_left_out_examples_are_counted_by_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LABELWISE_BIGBENCH_SDIST", raising=False)
    monkeypatch.setenv("LABELWISE_BIGBENCH", str(fake_sdist(tmp_path / "bigbench-1.0.0.tar.gz")))
    pool_cfg = build(PoolConfig, {"source": "builtin:bigbench", "test_fraction": 0}, "job.yaml: pool")
    job = types.SimpleNamespace(run_dir=str(tmp_path / "run"), pool=pool_cfg)
    run = stage.build_pool(job, log=lambda *_: None).parent
    meta = stage.read_meta(run)

    d = meta["dropped"]
    assert d[bigbench.DROP_INPUT]["count"] == 1 and d[bigbench.DROP_INPUT]["examples"] == ["messy example 1"]
    assert d[bigbench.DROP_NO_TARGET]["count"] == 1
    assert d[bigbench.DROP_LONG_TARGET]["count"] == 1
    assert d[bigbench.DROP_LONG_INPUT]["count"] == 1
    assert d[bigbench.DROP_TIE] == {"count": 1, "examples": ["messy example 5"]}
    assert d[bigbench.DROP_CHOICES]["count"] == 1
    assert d[bigbench.DROP_CAP]["count"] == 3
    assert d[bigbench.DROP_NON_LANGUAGE]["count"] == 1
    assert meta["n_dropped_at_source"] == 10 == meta["n_dropped"]
    assert meta["n_pool"] == bigbench.MAX_EXAMPLES + 1
    # read = kept + dropped, the source's own drops included
    assert meta["n_read"] == meta["n_pool"] + meta["n_test"] + meta["n_dropped"]
    assert meta["source"]["skipped_tasks"]["navigate"] == "evaluated by BIG-Bench-Hard"

    text = format_summary(meta)
    assert "rows dropped: 10 (10 by the source itself)" in text
    assert "multiple choice with a tie for the best choice" in text
    assert bigbench.available_tasks()["messy"] == {"examples": 1, "available": 1, "dropped": 6, "keywords": ["logic"]}
