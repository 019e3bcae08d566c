"""Score stage, run-folder level (in-process, tiny model): contract, cache, resume, over-long prompts."""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from labelwise import contracts
from labelwise.scoring import stage
from labelwise.scoring.shards import ShardStore

PROMPTS = {
    "arith": ["What is 2+2?", "What is 7 times 8?", "Compute 12 - 5."],
    "color": ["Name a color.", "What color is the sky?"],
    "story": ["Write a story about a fox.", "Tell me a tale of two cities in one line.", "Once upon a time"],
}


def make_pool(run_dir, extra=()):
    rows = []
    for task, prompts in PROMPTS.items():
        for i, p in enumerate(prompts):
            rows.append({"id": f"{task}-{i}", "task": task, "prompt": p, "response": "gold", "source": "test"})
    rows.extend(extra)
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(run_dir / "pool.parquet", index=False)
    return pd.DataFrame(rows)


def make_job(run_dir, model_dir, **score):
    from labelwise.config import build
    from labelwise.job import JobConfig

    score = {"max_new_tokens": 5, "batch_size": 3, "use_ray": False, **score}
    return build(
        JobConfig,
        {"run_dir": str(run_dir), "model": {"name": str(model_dir), "device": "cpu"}, "score": score},
        "test.yaml",
    )


def read_scores(run_dir):
    return pd.read_parquet(run_dir / "scores.parquet")


def test_scores_follow_the_contract(tmp_path, tiny_model_dir):
    pool = make_pool(tmp_path)
    out = stage.score_pool(make_job(tmp_path, tiny_model_dir))
    schema = pq.read_schema(out)
    assert schema.names == [
        "id", "task", "logconf", "n_tokens", "mean_logprob", "mean_entropy", "mean_margin",
        "min_margin", "eos", "answer", "error", "embedding",
    ]
    types = {f.name: str(f.type) for f in schema}
    assert types["logconf"] == "double" and types["n_tokens"] == "int64" and types["eos"] == "bool"
    assert types["embedding"] == "list<element: float>"
    df = read_scores(tmp_path)
    assert df["id"].tolist() == pool["id"].tolist()  # pool order, every id once
    assert df["task"].tolist() == pool["task"].tolist()
    assert df["error"].isna().all()
    assert (df["n_tokens"].between(1, 5)).all()
    assert (df["logconf"] <= 0).all() and (df["min_margin"] <= df["mean_margin"] + 1e-12).all()
    assert all(len(e) == 32 for e in df["embedding"])
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    tasks = {t["task"]: t for t in summary["tasks"]}
    assert set(tasks) == set(PROMPTS)
    for task, rows in df.groupby("task"):
        expect = math.log(float((rows["logconf"].apply(math.exp)).mean()))
        assert tasks[task]["log_mean_conf"] == pytest.approx(expect, rel=1e-9)
        assert tasks[task]["prompts"] == len(rows)
        assert tasks[task]["mean_answer_tokens"] == pytest.approx(rows["n_tokens"].mean())
    assert summary["run"]["scored_now"] == len(pool) and summary["run"]["tokens_per_s"] > 0


def test_options_without_embeddings_and_answers(tmp_path, tiny_model_dir):
    make_pool(tmp_path)
    stage.score_pool(make_job(tmp_path, tiny_model_dir, embeddings=False, answers=False))
    df = read_scores(tmp_path)
    assert "embedding" not in df.columns and (df["answer"] == "").all()


def test_rerun_reuses_cache_and_new_settings_get_a_new_key(tmp_path, tiny_model_dir, monkeypatch):
    make_pool(tmp_path)
    job = make_job(tmp_path, tiny_model_dir)
    stage.score_pool(job)
    first = read_scores(tmp_path)
    calls = []
    monkeypatch.setattr(stage, "score_in_process", lambda *a, **k: calls.append(1) or 0)
    (tmp_path / "scores.parquet").unlink()  # lost output: rebuilt from shards, no model call
    stage.score_pool(job)
    pd.testing.assert_frame_equal(read_scores(tmp_path), first)
    assert calls == []
    monkeypatch.undo()
    stage.score_pool(make_job(tmp_path, tiny_model_dir, max_new_tokens=3))
    assert len(list((tmp_path / "score_shards").iterdir())) == 2
    assert read_scores(tmp_path)["n_tokens"].max() <= 3


def test_new_pool_rows_are_scored_alone(tmp_path, tiny_model_dir):
    make_pool(tmp_path)
    job = make_job(tmp_path, tiny_model_dir)
    stage.score_pool(job)
    extra = [{"id": "new-0", "task": "color", "prompt": "Is red warm?", "response": "", "source": "t"}]
    make_pool(tmp_path, extra)
    stage.score_pool(job)
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    assert summary["run"]["scored_now"] == 1 and summary["run"]["cached"] == 8
    assert read_scores(tmp_path)["id"].iloc[-1] == "new-0"


def test_crash_then_rerun_gives_exactly_the_same_scores(tmp_path, tiny_model_dir, monkeypatch):
    make_pool(tmp_path / "clean")
    stage.score_pool(make_job(tmp_path / "clean", tiny_model_dir, batch_size=2))
    clean = read_scores(tmp_path / "clean")

    run = tmp_path / "crashed"
    make_pool(run)
    monkeypatch.setattr(stage, "SHARD_ROWS", 1)  # a shard per batch
    real_write = ShardStore.write
    writes = []

    def crash_on_third(self, table):
        if len(writes) == 2:
            raise RuntimeError("simulated crash")
        writes.append(table.num_rows)
        return real_write(self, table)

    monkeypatch.setattr(ShardStore, "write", crash_on_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        stage.score_pool(make_job(run, tiny_model_dir, batch_size=2))
    assert not (run / "scores.parquet").exists()
    shards = list((run / "score_shards").glob("*/part-*.parquet"))
    assert len(shards) == 2 and sum(writes) == 4  # finished shards are kept

    monkeypatch.setattr(ShardStore, "write", real_write)
    stage.score_pool(make_job(run, tiny_model_dir, batch_size=2))
    summary = json.loads((run / contracts.SCORE_SUMMARY).read_text())
    assert summary["run"]["cached"] == 4 and summary["run"]["scored_now"] == 4
    pd.testing.assert_frame_equal(read_scores(run), clean, check_exact=True)


@pytest.mark.parametrize("mode", ["reject", "truncate"])
def test_overlong_prompts(tmp_path, tiny_model_dir, mode):
    long = {"id": "long-0", "task": "story", "prompt": "word " * 700, "response": "", "source": "t"}
    make_pool(tmp_path, [long])
    stage.score_pool(make_job(tmp_path, tiny_model_dir, overlong=mode))  # tiny model context: 512
    df = read_scores(tmp_path).set_index("id")
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    others = df.drop(index="long-0")
    assert others["error"].isna().all()
    row = df.loc["long-0"]
    if mode == "reject":
        assert row["error"].startswith("overlong: prompt is ") and "limit is 507" in row["error"]
        assert math.isnan(row["logconf"]) and row["n_tokens"] == 0 and row["embedding"] is None
        assert summary["run"]["rejected"] == 1 and summary["run"]["errors"] == 1
        assert {t["task"]: t["errors"] for t in summary["tasks"]}["story"] == 1
    else:
        assert pd.isna(row["error"]) and row["n_tokens"] >= 1
        assert summary["run"]["truncated"] == 1 and summary["run"]["errors"] == 0


def test_a_prompt_that_fails_alone_gets_an_error_row(tmp_path, tiny_model_dir, monkeypatch):
    from labelwise.scoring import scorer as scorer_mod

    make_pool(tmp_path)
    real = scorer_mod.Scorer._score

    def fail_on_fox(self, ids, tasks, input_ids):
        if "story-0" in ids:
            raise RuntimeError("boom")
        return real(self, ids, tasks, input_ids)

    monkeypatch.setattr(scorer_mod.Scorer, "_score", fail_on_fox)
    stage.score_pool(make_job(tmp_path, tiny_model_dir))
    df = read_scores(tmp_path).set_index("id")
    assert df.loc["story-0", "error"] == "RuntimeError: boom"
    assert df.drop(index="story-0")["error"].isna().all()  # its batch mates were scored alone


def test_bad_pool_errors_name_the_file(tmp_path, tiny_model_dir):
    job = make_job(tmp_path, tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="pool.parquet does not exist"):
        stage.score_pool(job)
    pd.DataFrame({"id": ["a", "a"], "task": ["t", "t"], "prompt": ["x", "y"]}).to_parquet(tmp_path / "pool.parquet")
    with pytest.raises(ValueError, match=r"pool.parquet: duplicate id\(s\), e.g. 'a'"):
        stage.score_pool(job)
    pd.DataFrame({"id": ["a"], "task": ["t"]}).to_parquet(tmp_path / "pool.parquet")
    with pytest.raises(ValueError, match="missing column"):
        stage.score_pool(job)


def test_failed_prompts_are_scored_again_and_finished_shards_kept(tmp_path, tiny_model_dir, monkeypatch):
    """An error other than an over-long rejection is not final: the next run scores it again."""
    from labelwise.scoring import scorer as scorer_mod

    long = {"id": "long-0", "task": "story", "prompt": "word " * 700, "response": "", "source": "t"}
    make_pool(tmp_path, [long])
    job = make_job(tmp_path, tiny_model_dir, overlong="reject")
    real = scorer_mod.Scorer._score
    scored = []

    def oom_on_fox(self, ids, tasks, input_ids):
        if "story-0" in ids:
            raise RuntimeError("CUDA out of memory (simulated)")
        scored.extend(ids)
        return real(self, ids, tasks, input_ids)

    monkeypatch.setattr(scorer_mod.Scorer, "_score", oom_on_fox)
    stage.score_pool(job)
    df = read_scores(tmp_path).set_index("id")
    assert df.loc["story-0", "error"].startswith("RuntimeError: CUDA out of memory")
    assert df.loc["long-0", "error"].startswith("overlong:")
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    assert summary["run"]["errors"] == 2 and summary["run"]["retryable_errors"] == 1
    shards = {p: p.read_bytes() for p in (tmp_path / "score_shards").glob("*/part-*.parquet")}
    first = df.drop(index="story-0")

    def record(self, ids, tasks, input_ids):
        scored.extend(ids)
        return real(self, ids, tasks, input_ids)

    monkeypatch.setattr(scorer_mod.Scorer, "_score", record)
    scored.clear()
    stage.score_pool(job)  # the rerun scores the failed prompt only; the rejected one stays rejected
    assert scored == ["story-0"]
    df = read_scores(tmp_path).set_index("id")
    assert pd.isna(df.loc["story-0", "error"]) and df.loc["story-0", "n_tokens"] >= 1
    assert math.isfinite(df.loc["story-0", "logconf"]) and len(df.loc["story-0", "embedding"]) == 32
    assert df.loc["long-0", "error"].startswith("overlong:")
    pd.testing.assert_frame_equal(df.drop(index="story-0"), first)  # the rest comes from the cache
    assert all(p.read_bytes() == b for p, b in shards.items())  # finished shards untouched
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    assert summary["run"]["retried"] == 1 and summary["run"]["scored_now"] == 1 and summary["run"]["cached"] == 8
    assert summary["run"]["errors"] == 1 and summary["run"]["retryable_errors"] == 0

    scored.clear()
    stage.score_pool(job)  # nothing left to retry: up to date, no model call
    assert scored == []


def test_pick_rows_prefers_final_rows_in_write_order():
    import pyarrow as pa

    from labelwise.scoring.schema import is_final
    from labelwise.scoring.shards import pick_rows

    table = pa.table(
        {
            "id": ["a", "b", "c", "a", "b", "c", "d", "d"],
            "error": ["OOM", None, "OOM", None, "OOM", "OOM again", "overlong: x", None],
        }
    )
    # a: the retry succeeded; b: a scored row is never replaced; c: the latest failure; d: final error kept
    assert pick_rows(table) == {"a": 3, "b": 1, "c": 5, "d": 6}
    assert is_final(None) and is_final("overlong: prompt is 9 tokens") and not is_final("OutOfMemoryError: CUDA")


def test_cache_key_holds_the_resolved_device_and_dtype(tmp_path, tiny_model_dir, monkeypatch):
    import torch

    from labelwise import ray_start
    from labelwise.scoring.shards import settings_key

    def job(device="auto", dtype="auto", **score):
        j = make_job(tmp_path, tiny_model_dir, **score)
        j.model.device, j.model.dtype = device, dtype
        return j

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = stage.cache_key_parts(job())
    assert (cpu["device"], cpu["dtype"]) == ("cpu", "float32")
    assert settings_key(cpu) == settings_key(stage.cache_key_parts(job("cpu", "float32")))  # the same work
    assert settings_key(cpu) != settings_key(stage.cache_key_parts(job("cpu", "bfloat16")))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = stage.cache_key_parts(job())
    assert (gpu["device"], gpu["dtype"]) == ("cuda", "bfloat16")
    assert settings_key(gpu) != settings_key(cpu)

    # scores that will surely run on Ray: the cluster's GPUs decide, not this machine's
    class FakeRay:
        def __init__(self, gpus):
            self.gpus = gpus

        def cluster_resources(self):
            return {"CPU": 4.0, **({"GPU": float(self.gpus)} if self.gpus else {})}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray_start, "init_ray", lambda cfg=None: FakeRay(1))
    assert stage.resolved_model(job(use_ray=True)) == ("cuda", "bfloat16")
    monkeypatch.setattr(ray_start, "init_ray", lambda cfg=None: FakeRay(0))
    assert stage.resolved_model(job(use_ray=True)) == ("cpu", "float32")


def test_scorers_run_in_the_dtype_of_the_cache_key(tmp_path, tiny_model_dir, monkeypatch):
    """The dtype is pinned into the scorer's model config, never left to resolve on its own."""
    from labelwise.scoring import scorer as scorer_mod

    make_pool(tmp_path)
    job = make_job(tmp_path, tiny_model_dir)  # device cpu, dtype auto
    monkeypatch.setattr(stage, "resolved_model", lambda j: ("cpu", "bfloat16"))  # as a GPU plan would say
    made = []
    real_init = scorer_mod.Scorer.__init__

    def spy(self, model, *a, **k):
        real_init(self, model, *a, **k)
        made.append((model["dtype"], self.dtype, k.get("expect_device")))

    monkeypatch.setattr(scorer_mod.Scorer, "__init__", spy)
    stage.score_pool(job)
    assert made == [("bfloat16", "bfloat16", "cpu")]
    settings = json.loads(next((tmp_path / "score_shards").glob("*/settings.json")).read_text())
    assert settings["dtype"] == "bfloat16" and settings["device"] == "cpu"
    summary = json.loads((tmp_path / contracts.SCORE_SUMMARY).read_text())
    assert summary["settings"]["dtype"] == "bfloat16"
