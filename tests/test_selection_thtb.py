"""THTB selector (staged quality / IHS / EHS cuts) and within_task ranking of the task-aware
selectors: exact budgets, stage sizes, ties, per-task counts, tiny clusters, judgment errors,
the scores in selection.parquet, and the stage through the SelectionService actor on Ray."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise import config, contracts, runio
from labelwise.config import ConfigError
from labelwise.job import JobConfig
from labelwise.selection import table as T
from labelwise.selection.hardness import cut_size, silhouette
from labelwise.selection.judgments import align, attach, needs_judgments
from labelwise.selection.registry import make_selector
from labelwise.selection.table import ScoreTableError
from labelwise.selection.within_task import MODES

from test_selection_stage import write_run  # noqa: E402

PROP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega rho".split()
TASK_AWARE = ("task_diversity", "weighted_task_diversity", "activeit")
THTB_COLUMNS = ["quality", "bloom_norm", "ic", "ihs", "irei", "silhouette", "ehs", "stage"]


def judgment_rows(ids, tasks, rng, errors=(), levels=None):
    """A judgments.parquet table (the contract's columns) for ``ids``; ``errors``: failed ids."""
    n = len(ids)
    err = [("unparsable reply" if i in errors else None) for i in ids]
    levels = levels if levels is not None else rng.integers(1, 22, n).astype(float)
    return pa.table({
        "id": list(ids),
        "task": list(tasks),
        "bloom_level": ["Apply"] * n,
        "bloom_score": [None if e else float(v) for e, v in zip(err, levels)],
        "disciplines": [None if e else ["math"] for e in err],
        "discipline_count": [None if e else int(v) for e, v in zip(err, rng.integers(1, 5, n))],
        "discipline_spread": [None if e else float(v) for e, v in zip(err, rng.random(n))],
        "quality": [None if e else float(v) for e, v in zip(err, rng.random(n))],
        "error": err,
        "judge": ["fake-judge"] * n,
    })


def judged_table(sizes, seed=0, errors=(), quality=None, shuffle=False):
    """A ScoreTable with tasks t0.. of the given sizes, judgments, prompts and answers attached."""
    rng = np.random.default_rng(seed)
    n = int(sum(sizes))
    tasks = np.repeat([f"t{i}" for i in range(len(sizes))], sizes)
    ids = np.array([f"id{i:04d}" for i in range(n)], dtype=object)
    order = rng.permutation(n) if shuffle else np.arange(n)
    scores = {"logconf": rng.normal(-3, 1, n), "n_tokens": rng.integers(1, 20, n).astype(float)}
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    tab = T.from_arrays(ids[order], tasks[order], {k: v[order] for k, v in scores.items()}, emb[order])
    jt = judgment_rows(ids, tasks, np.random.default_rng(seed + 1), errors)
    if quality is not None:
        jt = jt.set_column(jt.schema.get_field_index("quality"), "quality", pa.array([quality] * n, pa.float64()))
    tab.judgments = align(jt, tab, "<memory>")
    texts = np.array([" ".join(np.random.default_rng(seed + 2 + i).choice(WORDS, 4)) for i in range(n)], dtype=object)
    answers = np.random.default_rng(seed + 3).integers(0, 400, n).astype(float)
    pos = {i: k for k, i in enumerate(ids)}
    rows = [pos[i] for i in tab.ids]  # the table's canonical order
    tab.prompts, tab.answer_chars = texts[rows], answers[rows]
    return tab


# ---- staged cuts ---------------------------------------------------------------------------


@PROP
@given(
    n=st.integers(2, 40),
    data=st.data(),
    fractions=st.tuples(*[st.floats(0.01, 1.0)] * 3),
    seed=st.integers(0, 5),
)
def test_staged_cuts_give_exactly_b_and_each_stage_follows_its_fraction(n, data, fractions, seed):
    budget = data.draw(st.integers(1, n))
    tab = judged_table([n], seed=seed)
    q, i, e = fractions
    sel = make_selector("thtb", {"quality_fraction": q, "ihs_fraction": i, "ehs_fraction": e}).select(tab, budget, seed)
    assert len(sel.ids) == budget == len(set(sel.ids))
    pool = n
    for cut, fraction in zip(sel.info["cuts"], fractions):
        assert cut["pool"] == pool and cut["by_fraction"] == int(np.floor(pool * fraction + 1e-9))
        assert cut["kept"] == min(pool, max(budget, cut["by_fraction"])) >= budget
        pool = cut["kept"]
    # the picks passed the quality cut: none below the kept-th best quality of the pool
    quality = tab.judgments.values["quality"]
    threshold = np.sort(quality)[::-1][sel.info["cuts"][0]["kept"] - 1]
    assert (sel.columns["quality"] >= threshold).all()
    # final order: the last stage's ranking by EHS, and each score is its definition
    assert (np.diff(sel.columns["ehs"]) <= 1e-12).all()
    np.testing.assert_allclose(sel.columns["ihs"], (sel.columns["bloom_norm"] + sel.columns["ic"]) / 2)
    np.testing.assert_allclose(sel.columns["ehs"], (sel.columns["irei"] + sel.columns["silhouette"]) / 2)
    assert set(sel.columns["stage"]) <= {"pool", "quality", "ihs", "ehs"}
    # the same seed, whatever the row order, gives the same picks
    again = make_selector("thtb", {"quality_fraction": q, "ihs_fraction": i, "ehs_fraction": e})
    assert again.select(judged_table([n], seed=seed, shuffle=True), budget, seed).ids == sel.ids


def test_cut_size_and_stage_when_the_budget_widens_a_cut():
    assert cut_size(100, 0.2, 5) == 20 and cut_size(100, 0.2, 30) == 30 and cut_size(10, 0.2, 30) == 10
    tab = judged_table([100], seed=3)
    sel = make_selector("thtb").select(tab, 5, 0)  # 5% of the pool: the published 20/50/50 funnel
    assert [c["kept"] for c in sel.info["cuts"]] == [20, 10, 5] and list(sel.columns["stage"]) == ["ehs"] * 5
    sel = make_selector("thtb").select(tab, 30, 0)  # B above 20%: every cut keeps B
    assert [c["kept"] for c in sel.info["cuts"]] == [30, 30, 30]
    stages = pd.Series(sel.columns["stage"]).value_counts().to_dict()
    assert stages == {"pool": 10, **{k: v for k, v in stages.items() if k != "pool"}} and sum(stages.values()) == 30


def test_ties_are_broken_by_the_seed():
    tab = judged_table([40], seed=0, quality=0.5)  # every quality equal: the first cut is all ties
    tab.prompts = np.array(["same words here"] * 40, dtype=object)
    tab.answer_chars = np.full(40, 100.0)
    tab.judgments.values["bloom_score"][:] = 7.0
    tab.judgments.values["discipline_count"][:] = 2.0
    tab.judgments.values["discipline_spread"][:] = 0.3
    picks = {s: make_selector("thtb").select(tab, 4, s).ids for s in range(6)}
    assert all(make_selector("thtb").select(tab, 4, s).ids == picks[s] for s in range(6))
    assert len({tuple(p) for p in picks.values()}) > 1


def test_errored_judgments_rank_last_and_are_counted():
    bad = {f"id{i:04d}" for i in range(0, 40, 4)}  # 10 of 40 failed
    tab = judged_table([40], seed=1, errors=bad)
    sel = make_selector("thtb", {"quality_fraction": 0.5}).select(tab, 8, 0)
    assert not bad & set(sel.ids)
    assert sel.info["judgments"]["errors"] == 10 and sel.info["judgments"]["missing"] == {"quality": 10, "ihs": 10}
    assert sel.info["cuts"][0]["missing"] == 10 and sel.info["selected_missing"] == {"quality": 0, "ihs": 0}
    sel = make_selector("thtb").select(tab, 35, 0)  # every cut keeps 35: the 5 cut are failed ones
    assert set(tab.ids) - set(sel.ids) <= bad and sel.info["selected_missing"] == {"quality": 5, "ihs": 5}
    missing = np.isnan(sel.columns["quality"])
    assert missing.sum() == 5 and set(np.asarray(sel.ids)[missing]) <= bad and np.isnan(sel.columns["ihs"][missing]).all()
    assert not np.isnan(sel.columns["ehs"]).any()  # EHS needs no judgment: they are ranked there


# ---- silhouette --------------------------------------------------------------------------


def test_silhouette_tiny_cluster_gets_neutral_and_the_others_keep_theirs():
    texts = ["apple banana cherry"] * 4 + ["zebra quantum xylophone"]
    s, info = silhouette(texts, 2, 100, seed=0)
    assert s[4] == 0.5 and np.allclose(s[:4], 1.0)  # identical members, the outlier alone
    assert info["singletons"] == 1 and info["case"] == "singletons at 0.5"
    s, info = silhouette(["apple banana"] * 6, 3, 100, seed=0)  # one distinct text: one cluster used
    assert np.all(s == 0.5) and info["case"].startswith("fewer than 2 clusters")
    assert np.all(silhouette(["apple banana", "zebra"], 3, 100, seed=0)[0] == 0.5)  # fewer than 3 prompts
    assert np.all(silhouette(["a", "b", "c", "d"], 3, 100, seed=0)[0] == 0.5)  # no vocabulary
    s, info = silhouette(["apple banana", "apple banana cherry", "zebra quantum"], 3, 100, seed=0)
    assert info["k"] == 2 and s.shape == (3,) and (s >= 0).all() and (s <= 1).all()  # k reduced to n - 1


# ---- within_task -------------------------------------------------------------------------


@PROP
@given(sizes=st.lists(st.integers(1, 25), min_size=2, max_size=5), data=st.data())
def test_within_task_keeps_the_allocation_for_every_mode(sizes, data):
    n = sum(sizes)
    budget = data.draw(st.integers(1, n))
    seed = data.draw(st.integers(0, 5))
    tab = judged_table(sizes, seed=seed)
    for name in TASK_AWARE:
        paper = make_selector(name, {"within_task": "random"}).select(tab, budget, seed)
        assert paper.ids == make_selector(name).select(tab, budget, seed).ids  # random is the default
        for mode in MODES:
            sel = make_selector(name, {"within_task": mode}).select(tab, budget, seed)
            assert sel.tasks == paper.tasks, (name, mode)  # same task at every rank: same counts
            assert sel.allocation["selected"].tolist() == paper.allocation["selected"].tolist()
            assert len(set(sel.ids)) == budget
        # least_confidence: inside each task no unpicked prompt is less confident than a pick
        sel = make_selector(name, {"within_task": "least_confidence"}).select(tab, budget, seed)
        logconf = pd.Series(tab.column("logconf"), index=tab.ids)
        picked = pd.Series(sel.tasks, index=sel.ids)
        for task in set(sel.tasks):
            members = tab.ids[np.asarray(tab.task_names)[tab.task_codes] == task]
            chosen = picked.index[picked == task]
            rest = [i for i in members if i not in set(chosen)]
            if rest:
                assert logconf[chosen].max() <= logconf[rest].min()
        np.testing.assert_allclose(sel.columns["log_confidence"], logconf[sel.ids].to_numpy())


def test_within_task_random_records_as_before_and_others_record_their_scores():
    tab = judged_table([6, 9, 12], seed=2)
    wtd = make_selector("weighted_task_diversity", {"within_task": "random"})
    assert "within_task" not in wtd.get_params() and wtd.select(tab, 10, 0).columns == {}
    hard = make_selector("weighted_task_diversity", {"within_task": "hardness"})
    assert hard.get_params()["within_task"] == "hardness" and hard.needs_judgments()
    sel = hard.select(tab, 10, 0)
    assert sel.info["within_task"] == "hardness" and sel.info["judgments"]["rows"] == 27
    assert set(THTB_COLUMNS) - {"quality"} <= set(sel.columns) and not np.isnan(sel.columns["ehs"]).any()
    kc = make_selector("task_diversity", {"within_task": "kcenter"}).select(tab, 10, 0)
    assert kc.info == {"within_task": "kcenter"}


def test_within_task_checks_its_inputs_up_front():
    tab = judged_table([5, 7], seed=0)
    no_emb = T.from_arrays(tab.ids, np.asarray(tab.task_names)[tab.task_codes], tab.scores)
    with pytest.raises(ScoreTableError, match="score.embeddings: true"):
        make_selector("task_diversity", {"within_task": "kcenter"}).select(no_emb, 4, 0)
    with pytest.raises(ScoreTableError, match="labelwise judge"):
        make_selector("activeit", {"within_task": "hardness"}).select(no_emb, 4, 0)
    with pytest.raises(ScoreTableError, match="labelwise judge"):
        make_selector("thtb").select(no_emb, 4, 0)
    with pytest.raises(ConfigError, match="params.within_task"):
        config.build(JobConfig, {"select": {"strategy": "task_diversity", "params": {"within_task": "hardest"}}}, "j.yaml")
    for bad in ({"quality_fraction": 0}, {"ehs_fraction": 1.5}, {"clusters": 1}, {"max_features": 0}):
        with pytest.raises(ConfigError, match=f"params.{next(iter(bad))}"):
            config.build(JobConfig, {"select": {"strategy": "thtb", "params": bad}}, "j.yaml")


def test_needs_judgments():
    from labelwise.selection import needs_judgments as exported

    assert exported is not None and needs_judgments({"strategy": "thtb", "params": {}})
    assert needs_judgments({"strategy": "activeit", "params": {"within_task": "hardness"}})
    assert not needs_judgments({"strategy": "weighted_task_diversity", "params": {"within_task": "kcenter"}})
    job = config.build(JobConfig, {"select": {"strategy": "thtb"}}, "j.yaml")
    assert exported(job.select) and not needs_judgments(config.build(JobConfig, {}, "j.yaml").select)


# ---- judgments.parquet: reading and errors --------------------------------------------------


def write_judged_run(run, errors=(), **changes):
    df = write_run(run)
    jt = judgment_rows(df["id"].tolist(), df["task"].tolist(), np.random.default_rng(7), errors).to_pandas()
    for column, (ids, value) in changes.items():
        jt.loc[jt["id"].isin(ids), column] = value
    runio.write_parquet(run / contracts.JUDGMENTS, jt)
    return df


def job_for(run, **select):
    return config.build(JobConfig, {"run_dir": str(run), "select": select}, "test.yaml")


def test_missing_or_invalid_judgments_are_clear_errors(tmp_path):
    from labelwise.selection.stage import select
    from labelwise.selection.table import load_scores

    run = tmp_path / "run"
    write_run(run)
    with pytest.raises(FileNotFoundError, match=r"judgments.parquet does not exist.*labelwise judge"):
        select(job_for(run, strategy="thtb", budget=5))
    with pytest.raises(FileNotFoundError, match="judgments.parquet"):
        select(job_for(run, strategy="task_diversity", budget=5, params={"within_task": "hardness"}))
    write_judged_run(run, bloom_score=(["t1-002"], 25.0))
    with pytest.raises(ScoreTableError, match=r"'bloom_score' is outside \[1, 21\].*t1-002"):
        select(job_for(run, strategy="thtb", budget=5))
    write_judged_run(run, discipline_spread=(["t1-004"], float("inf")))
    with pytest.raises(ScoreTableError, match=r"'discipline_spread'.*t1-004 \(inf\)"):
        select(job_for(run, strategy="thtb", budget=5))
    write_judged_run(run, quality=(["t0-001"], -0.5))
    with pytest.raises(ScoreTableError, match=r"'quality'.*t0-001"):
        select(job_for(run, strategy="thtb", budget=5))
    jt = pd.read_parquet(run / contracts.JUDGMENTS)
    runio.write_parquet(run / contracts.JUDGMENTS, jt[jt["id"] != "t2-003"])
    with pytest.raises(ScoreTableError, match="have no judgment: t2-003"):
        select(job_for(run, strategy="thtb", budget=5))
    runio.write_parquet(run / contracts.JUDGMENTS, pd.concat([jt, jt.head(1)]))
    with pytest.raises(ScoreTableError, match="duplicate id"):
        attach(load_scores(run / contracts.SCORES), run / contracts.SCORES)
    runio.write_parquet(run / contracts.JUDGMENTS, jt.drop(columns=["quality"]))
    with pytest.raises(ValueError, match=r"missing column\(s\) quality"):
        select(job_for(run, strategy="thtb", budget=5))
    runio.write_parquet(run / contracts.JUDGMENTS, jt.assign(discipline_count="many"))
    with pytest.raises(ValueError, match="'discipline_count' is (large_)?string, not int64"):
        select(job_for(run, strategy="thtb", budget=5))


def test_selection_parquet_carries_the_scores_and_judgments_are_an_input(tmp_path):
    from labelwise import manifest
    from labelwise.selection.stage import select

    run = tmp_path / "run"
    write_judged_run(run, errors=("t3-004",))
    sel = pd.read_parquet(select(job_for(run, strategy="thtb", budget=6, seed=1)))
    assert list(sel.columns) == ["id", "task", "rank", *THTB_COLUMNS] and len(sel) == 6
    assert sel[THTB_COLUMNS[:-1]].notna().all().all() and (sel["ehs"].diff().dropna() <= 1e-12).all()
    record = json.loads((run / "selection.json").read_text())
    assert [c["kept"] for c in record["info"]["cuts"]] == [8, 6, 6]  # 43 prompts: floor(43 x 0.2) = 8
    assert record["info"]["judgments"]["errors"] == 1 and record["params"]["clusters"] == 3
    assert contracts.JUDGMENTS in manifest.read(run, "select")["inputs"]
    before = manifest.read(run, "select")
    write_judged_run(run, errors=("t3-004", "t3-005"))  # a new judgments file selects again
    select(job_for(run, strategy="thtb", budget=6, seed=1))
    assert manifest.read(run, "select") != before
    wtd = pd.read_parquet(select(job_for(run, strategy="weighted_task_diversity", budget=6)))
    assert list(wtd.columns) == ["id", "task", "rank"]  # other selectors: unchanged
    assert contracts.JUDGMENTS not in manifest.read(run, "select")["inputs"]
    lc = pd.read_parquet(select(job_for(run, strategy="activeit", budget=6, params={"within_task": "least_confidence"})))
    assert list(lc.columns) == ["id", "task", "rank", "log_confidence"]


def test_sweep_takes_thtb_and_a_within_tasks_dimension(tmp_path):
    from labelwise.report.table import with_selector
    from labelwise.sweep.config import SweepConfig
    from labelwise.sweep.plan import build_trial_job, plan_trials
    from labelwise.sweep.trial import selector_of

    sweep = SweepConfig(strategies=["thtb", "weighted_task_diversity", "random"], budgets=[10],
                        within_tasks=["random", "hardness"], full_pool=False)
    trials = plan_trials(sweep)
    assert sorted(t["name"] for t in trials) == [
        "random-k10-s0", "thtb-k10-s0", "weighted_task_diversity-base5-in_hardness-k10-s0",
        "weighted_task_diversity-base5-in_random-k10-s0"]
    data = {"run_dir": str(tmp_path)}
    jobs = {t["name"]: build_trial_job(JobConfig, data, t, str(tmp_path / t["name"]), 100, 1, "sweep") for t in trials}
    assert jobs["weighted_task_diversity-base5-in_hardness-k10-s0"].select.params == {"base": 5, "within_task": "hardness"}
    assert [needs_judgments(jobs[n].select) for n in sorted(jobs)] == [False, True, True, False]
    hard = next(t for t in trials if t["within_task"] == "hardness")
    assert selector_of(hard) == "weighted_task_diversity (base=5, within_task=hardness)"
    rows = pd.DataFrame([{"strategy": "task_diversity", "within_task": "kcenter", "budget": 5}])
    assert with_selector(rows)["selector"].tolist() == ["task_diversity (within_task=kcenter)"]
    with pytest.raises(ConfigError, match="within_tasks"):
        config.build(JobConfig, {"sweep": {"within_tasks": ["hardest"]}}, "j.yaml")
    with pytest.raises(ConfigError, match="grid.select.params.within_task"):
        config.build(JobConfig, {"sweep": {"within_tasks": ["random"], "grid": {"select.params.within_task": ["kcenter"]}}}, "j.yaml")


# ---- end to end on Ray ---------------------------------------------------------------------


@pytest.mark.slow
def test_thtb_and_hardness_through_the_selection_service_actor(tmp_path, local_ray):
    from labelwise.selection.service import start_service
    from labelwise.selection.stage import select

    ray = local_ray
    run = tmp_path / "run"
    write_judged_run(run, errors=("t2-001",))
    svc = start_service(run / contracts.SCORES, max_concurrency=2, num_cpus=0)
    try:
        requests = [("thtb", {}, 6), ("weighted_task_diversity", {"within_task": "hardness"}, 12),
                    ("task_diversity", {"within_task": "kcenter"}, 12)]
        remote = ray.get([svc.select.remote(s, p, b, 0) for s, p, b in requests])
        for (strategy, params, budget), got in zip(requests, remote):
            path = select(job_for(run, strategy=strategy, budget=budget, params=params), service=svc)
            via_actor = pd.read_parquet(path)
            assert via_actor["id"].tolist() == got.ids
            local = select(job_for(run, strategy=strategy, budget=budget, params=params), force=True)
            assert pd.read_parquet(local).equals(via_actor)  # the actor and the plain stage agree
        assert "ehs" in remote[0].columns and remote[1].info["judgments"]["errors"] == 1
        assert ray.get(svc.stats.remote())["computed"] == 3
    finally:
        ray.kill(svc)
