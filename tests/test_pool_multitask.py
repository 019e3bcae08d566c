"""builtin:multitask, the packaged default pool (issue 23): its shape, its provenance and
licences, that it is in the wheel, and that the script in the repo rebuilds it byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from labelwise.config import build
from labelwise.pool import multitask
from labelwise.pool.config import PoolConfig

REPO = Path(__file__).resolve().parents[1]


def rows() -> list[dict]:
    with gzip.open(multitask.ROWS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_packaged_pool_has_the_shape_a_demo_needs():
    data = rows()
    sizes: dict[str, int] = {}
    answers: dict[str, list[int]] = {}
    for r in data:
        sizes[r["task"]] = sizes.get(r["task"], 0) + 1
        answers.setdefault(r["task"], []).append(len(r["response"]))
    assert len(sizes) >= 12
    assert max(sizes.values()) >= 20 * min(sizes.values())
    medians = sorted(sorted(v)[len(v) // 2] for v in answers.values())
    assert medians[0] <= 2  # one-letter / one-word answers ...
    assert medians[-1] >= 200 and any("So the answer is" in r["response"] and len(r["response"]) > 300 for r in data)
    assert multitask.ROWS.stat().st_size <= 2_000_000
    assert all(r["prompt"].strip() and r["response"].strip() and r["origin"] for r in data)
    assert {r["source"] for r in data} == {"flan_v2_cot", "sni", "niv2"}  # no MMLU, BBH, alpaca_eval


def test_every_task_keeps_held_out_rows_in_the_main_job(tmp_path):
    """The quickstart's split of the packaged pool: every task is in the pool and in test."""
    from labelwise.job import load_job
    from labelwise.pool.stage import build_pool, read_pool, read_test

    job = load_job(REPO / "jobs" / "quickstart.yaml", [f"run_dir={tmp_path}"])
    assert job.pool.source == "builtin:multitask" and PoolConfig().source == "builtin:multitask"
    run = build_pool(job, log=lambda *a: None).parent
    pool, test = read_pool(run), read_test(run)
    assert len(pool) + len(test) == len(rows())  # nothing dropped
    assert set(test["task"]) == set(pool["task"]) and len(set(pool["task"])) == len(multitask.info()["tasks"])
    assert not set(pool["id"]) & set(test["id"])
    meta = json.loads((run / "pool_meta.json").read_text())
    assert meta["source"]["builtin"] == "multitask" and meta["source"]["sha256"] == multitask.info()["data_file"]["sha256"]


def test_provenance_licence_and_attribution_ship_beside_the_data():
    info = multitask.info()
    assert info["data_file"]["sha256"] == hashlib.sha256(multitask.ROWS.read_bytes()).hexdigest()
    assert info["rows"] == len(rows()) and sum(t["rows"] for t in info["tasks"].values()) == info["rows"]
    assert info["source_files"] and all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in info["source_files"])
    assert not any(k in f["path"].lower() for f in info["source_files"] for k in ("mmlu", "bbh", "alpaca"))
    licence = (multitask.DATA / "LICENSE-Apache-2.0.txt").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    notice = (multitask.DATA / "NOTICE.md").read_text()
    for task in info["tasks"]:
        assert f"`{task}`" in notice, f"NOTICE.md does not attribute {task}"


def test_packaged_pool_is_in_the_wheel(tmp_path):
    """Built offline with the venv's setuptools from a copy of the sources."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "platform", src / "platform", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("labelwise-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("multitask.jsonl.gz", "multitask.json", "NOTICE.md", "LICENSE-Apache-2.0.txt"):
        assert f"labelwise/pool/data/{f}" in names


def test_the_script_rebuilds_the_packaged_pool_byte_for_byte(tmp_path, shared_data):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_builtin_pool.py"), "--data-dir", str(shared_data),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "multitask.jsonl.gz").read_bytes() == multitask.ROWS.read_bytes()
    assert json.loads((tmp_path / "multitask.json").read_text()) == multitask.info()


def test_unknown_builtin_names_the_choices():
    from labelwise.config import ConfigError

    with pytest.raises(ConfigError, match="pool.source: unknown built-in pool 'builtin:bigbenchh'.*builtin:multitask"):
        build(PoolConfig, {"source": "builtin:bigbenchh"}, "job.yaml: pool")
