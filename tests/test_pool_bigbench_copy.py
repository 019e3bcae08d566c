"""builtin:bigbench reads a local copy and never downloads: the copy comes from
pool.bigbench_path or LABELWISE_BIGBENCH (config first), is an sdist or a folder of it (same
index), names its own index (another copy rebuilds the pool), and without one the error says
what to get and where to point it."""

from __future__ import annotations

import tarfile
import types

import pytest

from labelwise.config import ConfigError, build
from labelwise.pool import bigbench, stage
from labelwise.pool.config import PoolConfig
from test_pool_bigbench_drops import add_json
from test_pool_stage import _fake_sdist


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """No copy named by the environment, and the labelwise cache under tmp_path."""
    for name in (bigbench.ENV, *bigbench.ENV_SYNONYMS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LABELWISE_CACHE", str(tmp_path / "cache"))


def job(tmp_path, **pool):
    pool = {"source": "builtin:bigbench", "test_fraction": 0, **pool}
    return types.SimpleNamespace(run_dir=str(tmp_path / "run"), pool=build(PoolConfig, pool, "job.yaml: pool"))


def small_sdist(path, answer="4"):
    """An sdist with one task, whose answer tells copies apart."""
    with tarfile.open(path, "w:gz") as tar:
        add_json(tar, "adding", {"keywords": ["arithmetic"], "examples": [{"input": "2+2=", "target": answer}]})
    return path


def extract(sdist, into):
    with tarfile.open(sdist) as tar:
        tar.extractall(into, filter="data")
    return into


def quiet(*_):
    pass


def test_without_a_copy_one_error_says_what_to_get_and_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        stage.build_pool(job(tmp_path), log=quiet)
    text = str(e.value)
    assert "\n" not in text
    assert "builtin:bigbench reads a local copy of the BIG-bench tasks" in text
    for part in ("pool.bigbench_path", "LABELWISE_BIGBENCH=", "bigbench-1.0.0.tar.gz", bigbench.SHA256,
                 "github.com/google/BIG-bench", "builtin:multitask needs nothing"):
        assert part in text
    assert not (tmp_path / "run" / "pool.parquet").exists()
    assert not (tmp_path / "cache").exists()  # nothing fetched, nothing written
    # an sdist an earlier labelwise fetched into the cache is named, not used
    (tmp_path / "cache" / "bigbench").mkdir(parents=True)
    (tmp_path / "cache" / "bigbench" / "bigbench-1.0.0.tar.gz").write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match=r"a copy fetched by an earlier labelwise lies at .*bigbench-1.0.0.tar.gz"):
        bigbench.available_tasks()


def test_a_path_that_is_not_there_is_named(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"^pool.bigbench_path=.*nowhere.tar.gz: no such file or folder\. "
                                                r"builtin:bigbench reads a local copy"):
        stage.build_pool(job(tmp_path, bigbench_path=str(tmp_path / "nowhere.tar.gz")), log=quiet)
    monkeypatch.setenv("LABELWISE_BIGBENCH", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"^LABELWISE_BIGBENCH=.*gone: no such file or folder\. .*bigbench-1.0.0.tar.gz"):
        bigbench.available_tasks()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no BIG-bench tasks in this folder"):
        bigbench.locate(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(ValueError, match=r"notes.txt: not a tar archive"):
        bigbench.locate(str(tmp_path / "notes.txt"))


def test_an_empty_config_path_is_a_config_error():
    with pytest.raises(ConfigError, match=r"job.yaml: pool.bigbench_path: must not be empty"):
        build(PoolConfig, {"source": "builtin:bigbench", "bigbench_path": "  "}, "job.yaml: pool")


def test_config_path_beats_the_environment_and_the_old_name_still_works(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    config_copy = small_sdist(tmp_path / "a" / "bigbench-1.0.0.tar.gz", "4")
    env_copy = small_sdist(tmp_path / "env.tar.gz", "four")
    monkeypatch.setenv("LABELWISE_BIGBENCH", str(env_copy))
    run = stage.build_pool(job(tmp_path, bigbench_path=str(config_copy)), log=quiet).parent
    meta = stage.read_meta(run)
    assert list(stage.read_pool(run).response) == ["4"]
    assert meta["source"]["copy"] == str(config_copy.resolve()) and meta["source"]["copy_given_by"] == "pool.bigbench_path"

    assert bigbench.locate(None).path == env_copy.resolve()
    monkeypatch.delenv("LABELWISE_BIGBENCH")
    monkeypatch.setenv("LABELWISE_BIGBENCH_SDIST", str(env_copy))
    copy = bigbench.locate(None)
    assert copy.path == env_copy.resolve() and copy.given_by == "LABELWISE_BIGBENCH_SDIST"


def test_an_sdist_with_another_sha256_is_used_with_a_warning_and_recorded(tmp_path):
    sdist = small_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    messages = []
    run = stage.build_pool(job(tmp_path, bigbench_path=str(sdist)), log=messages.append).parent
    warnings = [m for m in messages if m.startswith("warning:")]
    assert len(warnings) == 1 and "is not the pinned" in warnings[0] and "using it as given" in warnings[0]
    src = stage.read_meta(run)["source"]
    from labelwise.runio import sha256_file

    assert src["sha256"] == sha256_file(sdist) and src["sha256_pinned"] == bigbench.SHA256
    assert src["sha256_matches_pinned"] is False and src["copy_kind"] == "sdist"


def test_the_sdist_and_its_extracted_folder_give_the_same_index(tmp_path):
    sdist = _fake_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    top = extract(sdist, tmp_path / "x")
    got = {}
    for label, source in [("sdist", sdist), ("above", top), ("extracted", top / "bigbench-1.0.0"),
                          ("package", top / "bigbench-1.0.0" / "bigbench"),
                          ("tasks", top / "bigbench-1.0.0" / "bigbench" / "benchmark_tasks")]:
        out = tmp_path / f"{label}.jsonl.gz"
        info = bigbench.build_index(source, out, log=quiet)
        info.pop("built_seconds")
        _, rows = bigbench.read_index(out)
        got[label] = (info, list(rows))
    assert got["sdist"][1] and len(got["sdist"][0]["tasks"]) == 3
    for label in got:
        assert got[label] == got["sdist"], label


def test_the_archive_order_does_not_change_the_index(tmp_path):
    """The tar.gz and the folder meet in path order: an archive listing its files in another
    order gives the same index (ties and the places of left-out examples included)."""
    import io
    import json

    tasks = {"t/sub_b": [{"input": "q?", "target": "B"}, {"input": "", "target": "x"}],
             "t/sub_a": [{"input": "q?", "target": "A"}, {"input": "", "target": "y"}],
             "t": None}
    outs = []
    for order in (list(tasks), sorted(tasks)):
        path = tmp_path / f"{len(outs)}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name in order:
                obj = {"keywords": []} if tasks[name] is None else {"examples": tasks[name]}
                data = json.dumps(obj).encode()
                info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        out = tmp_path / f"{len(outs)}.jsonl.gz"
        info = bigbench.build_index(path, out, log=quiet)
        info.pop("built_seconds")
        outs.append((info, list(bigbench.read_index(out)[1])))
    assert outs[0] == outs[1]


def test_a_folder_copy_builds_a_pool_and_another_copy_rebuilds_it(tmp_path, monkeypatch):
    folder = extract(small_sdist(tmp_path / "bigbench-1.0.0.tar.gz", "4"), tmp_path / "one") / "bigbench-1.0.0"
    other = extract(small_sdist(tmp_path / "other.tar.gz", "four"), tmp_path / "two") / "bigbench-1.0.0"
    monkeypatch.setenv("LABELWISE_BIGBENCH", str(folder))
    j = job(tmp_path)
    run = stage.build_pool(j, log=quiet).parent
    meta = stage.read_meta(run)
    assert list(stage.read_pool(run).response) == ["4"]
    assert meta["source"]["copy_kind"] == "folder" and "sha256" not in meta["source"]
    assert meta["source"]["copy"] == str((folder / "bigbench" / "benchmark_tasks").resolve())
    stamp = (run / "pool.parquet").stat().st_mtime_ns
    stage.build_pool(j, log=quiet)
    assert (run / "pool.parquet").stat().st_mtime_ns == stamp  # same copy: kept

    monkeypatch.setenv("LABELWISE_BIGBENCH", str(other))
    stage.build_pool(j, log=quiet)
    assert list(stage.read_pool(run).response) == ["four"]  # another copy: indexed and rebuilt
    assert len(list(bigbench.folder().glob(f"tasks-v{bigbench.INDEX_VERSION}-folder-*.jsonl.gz"))) == 2

    # the same folder, edited: its listing changed, so it is indexed again
    (other / "bigbench" / "benchmark_tasks" / "adding" / "task.json").write_text(
        '{"keywords": [], "examples": [{"input": "2+2=", "target": "IV"}]}')
    stage.build_pool(j, log=quiet)
    assert list(stage.read_pool(run).response) == ["IV"]
