"""The packaged SmolLM2-135M-Instruct as a local judge, end to end on a small pool, on Ray Data
model actors of a real local Ray: every prompt gets a row, whatever the tiny judge says."""

from __future__ import annotations

import json

import pandas as pd

from labelwise import config, contracts, manifest
from labelwise.job import JobConfig
from labelwise.judging import schema
from labelwise.judging.parse import LEVELS
from labelwise.judging.stage import judge_pool

PROMPTS = ["Prove that the square root of 2 is irrational.",
           "Explain how supply and demand set prices."]  # two: the CPU cost is generation


def test_packaged_model_judges_a_small_pool_on_ray(tmp_path, local_ray, packaged_model_dir):
    run = tmp_path / "run"
    run.mkdir()
    ids = [f"q{i}" for i in range(len(PROMPTS))]
    pd.DataFrame({"id": ids, "task": ["a", "b"], "prompt": PROMPTS, "response": "", "source": "t"}).to_parquet(
        run / contracts.POOL, index=False)
    job = config.build(JobConfig, {"run_dir": str(run), "model": {"device": "cpu"},
                                   "judge": {"kind": "local", "use_ray": True, "max_actors": 1, "max_new_tokens": 32,
                                             "description_max_new_tokens": 24, "batch_size": 16}}, "job.yaml")
    judge_pool(job, log=lambda *a: None)

    j = schema.read_judgments(run / contracts.JUDGMENTS)
    assert list(j["id"]) == ids and j["judge"].str.match(r"local:smollm2-135m-instruct@[0-9a-f]{16}$").all()
    summary = json.loads((run / contracts.JUDGE_SUMMARY).read_text())
    assert summary["run"]["where"] == ["ray data"] and summary["request_errors"] == 0
    # every part is a value or an error naming it, and the summary counts them
    for part, column in [("bloom", "bloom_score"), ("disciplines", "disciplines"), ("quality", "quality")]:
        failed = j["error"].fillna("").str.contains(rf"(?:^|; ){part}: ")
        assert (j[column].isna() == failed).all(), part
        assert summary["parsed"][part] == int((~failed).sum())
    assert j["bloom_level"].dropna().isin(LEVELS).all() and j["bloom_score"].dropna().between(1, 21).all()
    assert j["quality"].dropna().between(0, 1).all()
    disc = schema.read_disciplines(run / contracts.DISCIPLINES)
    assert {len(e) for e in disc["embedding"]} <= {384}
    described = set(disc["discipline"])
    for names, spread in zip(j["disciplines"], j["discipline_spread"]):
        if not pd.isna(spread):
            assert set(names) <= described and (spread == 0.0) == (len(names) == 1)
    # a rerun keeps everything
    before = manifest.read(run, "judge")
    judge_pool(job, log=lambda *a: None)
    assert manifest.read(run, "judge") == before
