"""Select stage: run-folder outputs, rerun behaviour, the CLI, and SelectionService on Ray."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from labelwise import config, contracts, runio, textio
from labelwise.job import JobConfig
from labelwise.scoring.schema import error_row
from labelwise.selection.registry import NAMES


def write_run(run, n_tasks=4, per_task=(3, 8, 12, 20), with_embedding=True, error_ids=()):
    rng = np.random.default_rng(0)
    rows = []
    for t, size in zip(range(n_tasks), per_task):
        for i in range(size):
            pid = f"t{t}-{i:03d}"
            rows.append(
                {
                    "id": pid,
                    "task": f"task{t}",
                    "prompt": f"prompt {pid}",
                    "response": f"gold {pid}",
                    "source": "test",
                    "logconf": float(np.log(0.2 + 0.2 * t) - rng.random()),
                    "n_tokens": int(rng.integers(1, 10)),
                    "mean_logprob": -0.5,
                    "mean_entropy": float(rng.random()),
                    "mean_margin": float(rng.random()),
                    "min_margin": float(rng.random()),
                    "eos": True,
                    "answer": "a",
                    "error": None,
                    "embedding": rng.normal(size=8).astype(np.float32).tolist(),
                }
            )
    for row in rows:
        if row["id"] in error_ids:  # as the scorer writes them (scoring.schema.error_row)
            row.update(error_row(row["id"], row["task"], "boom"))
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    run.mkdir(parents=True, exist_ok=True)
    runio.write_parquet(run / contracts.POOL, df[["id", "task", "prompt", "response", "source"]])
    score_cols = ["id", "task", "logconf", "n_tokens", "mean_logprob", "mean_entropy", "mean_margin", "min_margin", "eos", "answer", "error"]
    runio.write_parquet(run / contracts.SCORES, df[score_cols + (["embedding"] if with_embedding else [])])
    return df


def job_for(run, **select):
    return config.build(JobConfig, {"run_dir": str(run), "select": select}, "test.yaml")


def test_stage_writes_every_output(tmp_path):
    from labelwise.selection.stage import select

    run = tmp_path / "run"
    write_run(run, error_ids=("t3-000",))
    path = select(job_for(run, strategy="weighted_task_diversity", budget=20, seed=3))
    sel = pd.read_parquet(path)
    assert list(sel.columns) == ["id", "task", "rank"] and sel["rank"].tolist() == list(range(20))
    assert sel["id"].is_unique and "t3-000" not in set(sel["id"])
    alloc = pd.read_csv(run / contracts.ALLOCATION)
    assert list(alloc.columns) == ["task", "pool_size", "confidence", "allocated", "selected"]
    assert alloc["selected"].sum() == 20 and alloc["pool_size"].tolist() == [3, 8, 12, 19]
    rows = textio.read_jsonl(run / contracts.TO_ANNOTATE)
    assert [r["id"] for r in rows] == sel["id"].tolist()
    assert all(set(r) == {"id", "task", "prompt"} and r["prompt"] == f"prompt {r['id']}" for r in rows)
    record = json.loads((run / "selection.json").read_text())
    assert record["selector"] == "weighted_task_diversity" and record["params"] == {"base": 5, "confidence": "sequence", "length_normalized": False}
    assert record["confidence"]["kind"] == "sequence"
    assert record["excluded"] == {"count": 1, "rows": [{"id": "t3-000", "task": "task3", "error": "boom"}]}
    assert (run / "allocation.png").read_bytes()[:4] == b"\x89PNG"


def test_stage_rerun_keeps_done_work_and_redoes_changed_request(tmp_path):
    from labelwise.selection.stage import select

    run = tmp_path / "run"
    write_run(run)
    select(job_for(run, strategy="random", budget=10, seed=0))
    mtime = (run / contracts.SELECTION).stat().st_mtime_ns
    first = pd.read_parquet(run / contracts.SELECTION)["id"].tolist()
    select(job_for(run, strategy="random", budget=10, seed=0))
    assert (run / contracts.SELECTION).stat().st_mtime_ns == mtime
    select(job_for(run, strategy="random", budget=10, seed=1))
    assert pd.read_parquet(run / contracts.SELECTION)["id"].tolist() != first
    (run / contracts.TO_ANNOTATE).unlink()  # a crash before the last files: redone
    select(job_for(run, strategy="random", budget=10, seed=1))
    assert (run / contracts.TO_ANNOTATE).exists()


def test_stage_errors(tmp_path):
    from labelwise.selection.base import BudgetError
    from labelwise.selection.stage import select
    from labelwise.selection.table import ScoreTableError

    with pytest.raises(FileNotFoundError, match="labelwise score"):
        select(job_for(tmp_path / "empty", budget=5))
    run = tmp_path / "run"
    write_run(run, with_embedding=False)
    with pytest.raises(BudgetError, match="allow_full_pool"):
        select(job_for(run, strategy="random", budget=1000))
    assert pd.read_parquet(select(job_for(run, strategy="random", budget=1000, allow_full_pool=True))).shape[0] == 43
    with pytest.raises(ScoreTableError, match="score.embeddings: true"):
        select(job_for(run, strategy="kcenter", budget=5))


def test_cli_select_prints_allocation(tmp_path, capsys):
    import yaml

    from labelwise.cli import main

    run = tmp_path / "run"
    write_run(run)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"run_dir": str(run), "select": {"strategy": "task_diversity", "budget": 12}}))
    assert main(["select", str(job), "--set", "select.seed=2"]) == 0
    out = capsys.readouterr().out
    assert "task_diversity selected 12 prompts from 43 in 4 tasks" in out
    assert main(["select", str(job), "--set", "select.strategy=wtd"]) == 2
    assert "valid: task_diversity" in capsys.readouterr().err


def test_service_without_ray_caches_and_dedupes(tmp_path):
    from labelwise.selection.service import SelectionServiceImpl

    run = tmp_path / "run"
    write_run(run)
    svc = SelectionServiceImpl(str(run / contracts.SCORES))
    results = []
    threads = [threading.Thread(target=lambda: results.append(svc.select("dpp", {}, 10, 0))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({tuple(r.ids) for r in results}) == 1
    assert svc.select("dpp", {"ridge": 0.1}, 10, 0) is results[0]  # defaults filled in: same key
    assert svc.stats()["computed"] == 1 and svc.stats()["hits"] == 4


@pytest.mark.slow
def test_selection_service_actor_concurrent_and_cached(tmp_path, local_ray):
    from labelwise.selection.service import start_service
    from labelwise.selection.stage import select

    ray = local_ray
    run = tmp_path / "run"
    write_run(run)
    svc = start_service(run / contracts.SCORES, max_concurrency=4, num_cpus=0)
    grid = [(s, b, seed) for s in ("weighted_task_diversity", "kcenter", "facility_location") for b in (5, 10) for seed in (0, 1)]
    refs = [svc.select.remote(s, {}, b, seed) for s, b, seed in grid] + [svc.select.remote(s, {}, b, seed) for s, b, seed in grid]
    results = ray.get(refs)
    for (s, b, seed), r in zip(grid * 2, results):
        assert r.selector == s and len(r.ids) == b
    assert [r.ids for r in results[: len(grid)]] == [r.ids for r in results[len(grid) :]]
    stats = ray.get(svc.stats.remote())
    assert stats["computed"] == len(grid) and stats["hits"] == len(grid) and stats["rows"] == 43
    # the stage through the service gives the same files as without it
    path = select(job_for(run, strategy="kcenter", budget=10, seed=1), service=svc)
    assert pd.read_parquet(path)["id"].tolist() == results[grid.index(("kcenter", 10, 1))].ids
    ray.kill(svc)


@pytest.mark.parametrize("strategy", [n for n in NAMES if n != "thtb"])  # thtb: tests/test_selection_thtb.py
def test_error_rows_without_embedding_are_excluded_for_every_selector(tmp_path, strategy):
    """Error rows carry no embedding (scoring.schema.error_row); no selector may trip on them."""
    from labelwise.selection.service import SelectionServiceImpl
    from labelwise.selection.stage import select

    run = tmp_path / "run"
    bad = {"t1-000", "t3-005"}
    write_run(run, error_ids=tuple(bad))
    assert pd.read_parquet(run / contracts.SCORES).set_index("id").loc[sorted(bad), "embedding"].isna().all()
    sel = pd.read_parquet(select(job_for(run, strategy=strategy, budget=12, seed=0)))
    assert len(sel) == 12 and sel["id"].is_unique and not bad & set(sel["id"])
    record = json.loads((run / "selection.json").read_text())
    assert record["excluded"]["count"] == 2 and {r["id"] for r in record["excluded"]["rows"]} == bad
    svc = SelectionServiceImpl(str(run / contracts.SCORES))
    assert svc.stats()["excluded"] == 2 and svc.stats()["rows"] == 41
    assert svc.select(strategy, {}, 12, 0).ids == sel["id"].tolist()


def test_allocation_reports_the_confidence_the_selector_used(tmp_path):
    from labelwise.selection.confidence import task_log_confidence
    from labelwise.selection.stage import select
    from labelwise.selection.table import load_scores

    run = tmp_path / "run"
    write_run(run)
    table = load_scores(run / contracts.SCORES)
    conf = {kind: np.exp(task_log_confidence(table, kind)) for kind in
            ("sequence", "per_token", "mean_entropy", "mean_margin", "length_calibrated")}
    assert not np.allclose(conf["per_token"], conf["sequence"])
    for strategy, params, want, kind in [
        ("weighted_task_diversity", {"length_normalized": True}, conf["per_token"], "per_token"),
        ("activeit", {"length_normalized": True}, conf["per_token"], "per_token"),
        ("weighted_task_diversity", {}, conf["sequence"], "sequence"),
        ("task_diversity", {}, conf["sequence"], "sequence"),
        ("weighted_task_diversity", {"confidence": "mean_entropy"}, conf["mean_entropy"], "mean_entropy"),
        ("activeit", {"confidence": "mean_margin"}, conf["mean_margin"], "mean_margin"),
        ("weighted_task_diversity", {"confidence": "length_calibrated"}, conf["length_calibrated"], "length_calibrated"),
    ]:
        select(job_for(run, strategy=strategy, params=params, budget=20, seed=0), force=True)
        alloc = pd.read_csv(run / contracts.ALLOCATION)
        assert alloc["confidence"].to_numpy() == pytest.approx(want, rel=1e-9), (strategy, params)
        assert json.loads((run / "selection.json").read_text())["confidence"]["kind"] == kind
