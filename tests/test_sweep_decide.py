"""sweep.decide: its config, checked at load (plain functions, no Ray)."""

from __future__ import annotations

import pytest

from labelwise import config
from labelwise.config import ConfigError
from labelwise.job import JobConfig

SEEDS = list(range(20))
STRATEGIES = ["random", "task_diversity", "weighted_task_diversity"]


def job_with(decide, **sweep) -> JobConfig:
    data = {"strategies": STRATEGIES, "budgets": [40], "seeds": SEEDS, "decide": decide, **sweep}
    return config.build(JobConfig, {"run_dir": "runs/x", "sweep": data}, "test.yaml")


def test_defaults_need_only_delta():
    d = job_with({"delta": 0.05}).sweep.decide
    assert (d.metric, d.alpha, d.references, d.looks, d.max_seeds, d.spending) == (
        "heldout.nll_macro", 0.05, ["random", "task_diversity"], [3, 5, 8, 12, 20], 20, "obf")
    assert job_with(None).sweep.decide is None  # no decide: every seed runs, as before
    # the default references are those the sweep runs
    d = job_with({"delta": 0.05}, strategies=["random", "kcenter"]).sweep.decide
    assert d.references == ["random"]


def test_a_loaded_decide_round_trips_through_to_dict():
    job = job_with({"delta": 0.1, "looks": [2, 4], "max_seeds": 2, "references": ["task_diversity"],
                    "metric": "heldout.em_macro", "spending": "pocock", "alpha": 0.1})
    again = config.build(JobConfig, config.to_dict(job), "again")
    assert again.sweep.decide == job.sweep.decide


@pytest.mark.parametrize("decide, sweep, message", [
    ({}, {}, r"test\.yaml: sweep\.decide\.delta: required key is missing"),
    ({"delta": 0.05, "margin": 1}, {}, r"sweep\.decide\.margin: unknown key \(valid keys: alpha, delta, "),
    ({"delta": 0}, {}, r"sweep\.decide\.delta: the equivalence margin must be a positive number"),
    ({"delta": "x"}, {}, r"sweep\.decide\.delta: expected a number"),
    ({"delta": 0.05, "alpha": 0.5}, {}, r"sweep\.decide\.alpha: must be between 0 and 0\.5"),
    ({"delta": 0.05, "looks": [3, 3, 5]}, {}, r"sweep\.decide\.looks: must increase strictly"),
    ({"delta": 0.05, "looks": [1, 5]}, {}, r"sweep\.decide\.looks: the first look needs at least 2 seeds"),
    ({"delta": 0.05, "max_seeds": 10}, {}, r"sweep\.decide\.max_seeds: must be one of the looks \[3, 5, 8, 12, 20\]"),
    ({"delta": 0.05, "spending": "naive"}, {}, r"sweep\.decide\.spending: unknown 'naive'"),
    ({"delta": 0.05, "metric": "nll"}, {}, r"sweep\.decide\.metric: must be a results column"),
    ({"delta": 0.05, "references": ["kcenter"]}, {},
     r"sweep\.decide\.references\[0\]: 'kcenter' is not one of sweep\.strategies"),
    ({"delta": 0.05, "references": []}, {}, r"sweep\.decide\.references: must list at least one"),
    ({"delta": 0.05}, {"strategies": ["kcenter", "least_confidence"]},
     r"sweep\.decide\.references: none of the default references \(random, task_diversity\)"),
    ({"delta": 0.05}, {"seeds": [0, 1, 2]}, r"sweep\.seeds: decide takes up to max_seeds = 20 seeds"),
    ({"delta": 0.05, "references": ["random"]}, {"strategies": ["random"]},
     r"sweep\.decide: needs at least two strategies"),
])
def test_decide_config_errors_name_the_key(decide, sweep, message):
    with pytest.raises(ConfigError, match=message):
        job_with(decide, **sweep)


def test_max_seeds_short_of_the_plan_needs_only_that_many_seeds():
    d = job_with({"delta": 0.05, "max_seeds": 5}, seeds=[7, 3, 9, 1, 0]).sweep.decide
    assert d.max_seeds == 5 and d.looks[-1] == 20


# ---------------------------------------------------------------- the scheduling, over a fake results table

import math  # noqa: E402

import numpy as np  # noqa: E402

from labelwise.sweep import decide, plan  # noqa: E402
from labelwise.sweep.trial import selector_of  # noqa: E402

EFFECTS = {"random": 0.0, "task_diversity": 0.0, "weighted_task_diversity": -0.1, "kcenter": 0.3}
FULL_EFFECT = -0.5
ORDER = [11, 4, 7, 0, 19, 2, 13, 8, 1, 5, 17, 3, 9, 14, 6, 10, 12, 15, 16, 18]  # not sorted: the list's order counts


def decide_job(max_seeds=None, spending="obf", **decide_extra):
    d = {"delta": 0.05, "spending": spending, **decide_extra}
    if max_seeds is not None:
        d["max_seeds"] = max_seeds
    return job_with(d, strategies=list(EFFECTS), seeds=ORDER)


def fake_value(t: dict) -> float:
    """What a trial would measure: the seed's level (shared by every selector), the selector's
    effect and its own noise (sd 0.02); deterministic per (seed, strategy)."""
    level = np.random.default_rng(t["seed"]).normal(2.0, 0.3)
    names = [*EFFECTS, plan.FULL]
    noise = np.random.default_rng([t["seed"], names.index(t["strategy"]) + 1]).normal(0, 0.02)
    return float(level + EFFECTS.get(t["strategy"], FULL_EFFECT) + noise)


class FakeSweep:
    """Trials 'run' by writing their row; ``fail`` names trials that fail."""

    def __init__(self, rows=None, fail=()):
        self.rows = dict(rows or {})
        self.fail = set(fail)
        self.ran: list[str] = []

    def read_rows(self):
        return list(self.rows.values())

    def run_trials(self, todo):
        for t in todo:
            assert t["name"] not in self.ran, f"{t['name']} ran twice"
            self.ran.append(t["name"])
            if t["name"] in self.fail:
                continue
            budget = 435 if t["strategy"] == plan.FULL else t["budget"]
            self.rows[t["name"]] = {"trial": t["name"], "selector": selector_of(t), "strategy": t["strategy"],
                                    "budget": budget, "seed": t["seed"], "status": "ok",
                                    "heldout.nll_macro": fake_value(t)}


def trials_of(job):
    return decide.planned(plan.plan_trials(job.sweep), job.sweep)


def by_pair(found):
    return {(c["selector"], c["reference"]): c for c in found}


def test_the_first_look_runs_every_selector_on_the_first_seeds_in_the_listed_order():
    job = decide_job()
    trials = trials_of(job)
    found = decide.decisions(trials, [], job.sweep)
    # random vs the 3 others, task diversity vs WTD and k-center (not again vs random)
    assert [(c["selector"], c["reference"]) for c in found] == [
        ("kcenter", "random"), ("task_diversity", "random"), ("weighted_task_diversity (base=5)", "random"),
        ("kcenter", "task_diversity"), ("weighted_task_diversity (base=5)", "task_diversity")]
    assert all(c["verdict"] == "undecided" and c["next_look"] == 3 for c in found)
    names = decide.wanted(trials, found, job.sweep)
    assert {t["seed"] for t in trials if t["name"] in names} == {11, 4, 7}
    assert len(names) == 3 * (4 + 1)  # four selectors and the full pool, three seeds


def test_seeds_are_added_only_for_undecided_comparisons_and_each_stops_where_the_rule_says():
    job = decide_job()
    trials = trials_of(job)
    fake = FakeSweep()
    logs = []
    found = decide.run(trials, job.sweep, fake.read_rows, fake.run_trials, set(), logs.append)
    c = by_pair(found)
    # k-center is 0.3 worse with noise 0.02: OBF spends almost nothing at 3 seeds, so 5
    assert c[("kcenter", "random")]["verdict"] == "worse" and c[("kcenter", "random")]["seeds"] == 5
    assert c[("weighted_task_diversity (base=5)", "random")]["verdict"] == "better"
    assert c[("task_diversity", "random")]["verdict"] == "equivalent"  # same effect, delta 0.05 >> noise
    for comparison in found:  # each decision is the rule's on the first seeds in order
        assert comparison["seeds_used"] == ORDER[: comparison["seeds"]]
        assert comparison["path"][-1]["seeds"] == comparison["seeds"]
    # trials ran only as far as some comparison of theirs needed
    ran = [t for t in trials if t["name"] in fake.ran]
    # k-center's comparison with task diversity needs 8 seeds (its spread is larger), not 20
    assert {t["seed"] for t in ran if t["strategy"] == "kcenter"} == set(ORDER[:8])
    for t0 in (t for t in trials if t["strategy"] != plan.FULL):
        label = selector_of(t0)
        needed = max(x["seeds"] for x in found if label in (x["selector"], x["reference"]))
        assert {t["seed"] for t in ran if selector_of(t) == label} == set(ORDER[:needed])
    assert {t["seed"] for t in ran if t["strategy"] == plan.FULL} == set(ORDER[:3])
    assert len(ran) < len(trials)
    assert any("running" in line for line in logs) and "comparisons" in logs[-1]
    assert any(line.startswith("[sweep] decide: if every projection held, ") for line in logs)


@pytest.mark.parametrize("max_seeds", [None, 5])
def test_the_projected_trials_are_those_each_comparison_needs_up_to_its_projection(max_seeds):
    job = decide_job(max_seeds=max_seeds)
    trials = trials_of(job)
    fake = FakeSweep()
    fake.run_trials([t for t in trials if t["name"] in decide.wanted(trials, decide.decisions(trials, [], job.sweep), job.sweep)])
    found = decide.decisions(trials, fake.read_rows(), job.sweep)
    waiting = [c for c in found if c["next_look"] is not None]
    assert waiting and all(c["projection"] for c in waiting)
    ahead = decide.projected(trials, found, job.sweep)
    assert decide.wanted(trials, found, job.sweep) <= ahead
    need = {}  # (label, seed) -> needed, from the projections capped at max_seeds
    for c in waiting:
        for seed in ORDER[: min(c["projection"]["seeds"], job.sweep.decide.max_seeds)]:
            need[(c["selector"], seed)] = need[(c["reference"], seed)] = True
    expected = {t["name"] for t in trials if t["strategy"] != plan.FULL and (selector_of(t), t["seed"]) in need}
    expected |= {t["name"] for t in trials if t["strategy"] == plan.FULL and t["seed"] in ORDER[:3]}
    assert ahead == expected
    assert max(ORDER.index(t["seed"]) for t in trials if t["name"] in ahead) < job.sweep.decide.max_seeds


def test_a_rerun_with_a_larger_max_seeds_goes_on_from_the_decisions_so_far():
    short = decide_job(max_seeds=5)
    trials_short = trials_of(short)
    fake = FakeSweep()
    first = by_pair(decide.run(trials_short, short.sweep, fake.read_rows, fake.run_trials, set(), lambda m: None))
    assert first[("kcenter", "random")]["verdict"] == "worse"
    waiting = first[("task_diversity", "random")]
    assert waiting["verdict"] == "undecided"
    assert waiting["reason"].startswith("reached max_seeds 5 (the plan goes to 20)")
    ran_before = list(fake.ran)
    # the same plan, max_seeds 20: the trials of the first run are kept (finished), the rest go on
    full = decide_job()
    trials = trials_of(full)
    resumed = FakeSweep(fake.rows)
    found = decide.run(trials, full.sweep, resumed.read_rows, resumed.run_trials, set(fake.rows), lambda m: None)
    assert not set(resumed.ran) & set(ran_before)  # nothing runs twice
    # the same decisions as one run straight to 20 seeds
    straight = FakeSweep()
    once = decide.run(trials, full.sweep, straight.read_rows, straight.run_trials, set(), lambda m: None)
    assert [(c["verdict"], c["seeds"]) for c in found] == [(c["verdict"], c["seeds"]) for c in once]
    assert sorted(ran_before + resumed.ran) == sorted(straight.ran)


def test_a_failed_trial_stops_its_comparison_without_looping_and_says_what_is_missing():
    job = decide_job()
    trials = trials_of(job)
    broken = next(t["name"] for t in trials if t["strategy"] == "task_diversity" and t["seed"] == ORDER[4])
    fake = FakeSweep(fail=[broken])
    found = by_pair(decide.run(trials, job.sweep, fake.read_rows, fake.run_trials, set(), lambda m: None))
    td = found[("task_diversity", "random")]
    assert td["verdict"] == "undecided" and td["reason"] == "look 2 needs 5 seeds, 4 so far"
    assert fake.ran.count(broken) == 1


def test_config_checks_against_the_trials_and_decisions_json_feeds_the_report(tmp_path):
    from labelwise.config import ConfigError
    from labelwise.report.document import Document
    from labelwise.report.sequential import projection_text
    from labelwise.report.sweep_report import add_decisions

    job = job_with({"delta": 0.05}, strategies=["random", "task_diversity"], seeds=ORDER,
                   within_tasks=["kcenter"])
    with pytest.raises(ConfigError, match=r"references\[1\]: no trials are labelled 'task_diversity'"):
        decide.check_references(trials_of(job), job.sweep)
    job = decide_job(spending="bonferroni")
    trials = trials_of(job)
    fake = FakeSweep()
    found = decide.run(trials, job.sweep, fake.read_rows, fake.run_trials, set(), lambda m: None)
    path = decide.write(tmp_path, job.sweep, found)
    import json

    data = json.loads(path.read_text())
    assert data["settings"]["seed_order"] == ORDER and data["settings"]["lower_is_better"] is True
    assert sum(data["settings"]["alpha_per_look"]) == pytest.approx(0.05)
    doc = Document("t")
    import pandas as pd

    add_decisions(doc, pd.DataFrame(fake.read_rows()), tmp_path)
    md, _ = doc.markdown()
    assert "Decisions with sequential seeds (heldout.nll_macro)" in md and "Path of each comparison" in md
    k = by_pair(found)[("kcenter", "random")]
    assert f"look {len(k['path'])} ({k['seeds']} seeds): the " in md
    assert math.isfinite(k["path"][-1]["ci_low"])
    assert "| if Δ mean and SD held |" in md
    for c in found:  # each comparison's row ends with its projection
        assert f"| {c['reason']} | {projection_text(c['projection'])} |" in md, c
    # the sweep's log: the counts, then a line per comparison (with its projection while undecided)
    early = decide.decisions(trials, [r for r in fake.read_rows() if r["seed"] in ORDER[:3]], job.sweep)
    assert any(c["projection"] for c in early) and not any(c["projection"] for c in found)
    for state in (early, found):
        lines = decide.summary(state).splitlines()
        assert len(lines) == 1 + len(state) and lines[0].startswith(f"[sweep] decide: {len(state)} comparisons: ")
        for line, c in zip(lines[1:], state):
            assert line.startswith(f"[sweep]   {c['selector']} vs {c['reference']}, k={c['budget']}: {c['verdict']} ")
            assert line.endswith(f"if Δ mean and SD held: {projection_text(c['projection'])}" if c["projection"]
                                 else f"({c['seeds']} seeds)")


def write_fake_result(sweep_dir, t: dict, pool_size: int) -> None:
    """The trial_result.json a finished trial of ``t`` writes, with fake_value as its metric."""
    import json

    from labelwise.contracts import TRIAL_RESULT, TRIALS

    row = {"trial": t["name"], "selector": selector_of(t), "strategy": t["strategy"],
           "budget": pool_size if t["strategy"] == plan.FULL else t["budget"], "seed": t["seed"],
           "status": "ok", "heldout.nll_macro": fake_value(t)}
    (sweep_dir / TRIALS / t["name"]).mkdir(parents=True, exist_ok=True)
    (sweep_dir / TRIALS / t["name"] / TRIAL_RESULT).write_text(json.dumps(row))


def test_the_sweep_stage_runs_looks_through_its_tuner_and_writes_decisions(tmp_path, monkeypatch):
    """sweep.stage._run_decided with the Tuner replaced by a fake that writes trial results."""
    import json

    from labelwise.contracts import SWEEP_DECISIONS
    from labelwise.sweep import stage

    job = decide_job(max_seeds=8)
    trials = trials_of(job)
    batches = []

    def fake_tuner(job_, todo, sweep_dir, pool_size, n_parallel, progress, already):
        batches.append(sorted(t["name"] for t in todo))
        for t in todo:
            write_fake_result(sweep_dir, t, pool_size)
        return {}

    monkeypatch.setattr(stage, "_run_tuner", fake_tuner)
    lines = []
    rows = stage._run_decided(job, trials, [], trials, tmp_path, 435, 1, None, lines.append)
    assert len(batches) == 3  # looks 3, 5, 8
    assert {r["trial"] for r in rows} == {n for b in batches for n in b}  # only what ran
    assert all(r["status"] == "ok" for r in rows)
    found = json.loads((tmp_path / SWEEP_DECISIONS).read_text())["comparisons"]
    assert {c["verdict"] for c in found} <= {"better", "worse", "equivalent", "undecided"}
    assert any("decisions:" in line for line in lines)


def test_dry_run_lists_the_trials_decide_may_run(capsys):
    import argparse

    from labelwise.sweep import stage

    job = decide_job(max_seeds=5)
    assert stage.main(job, argparse.Namespace(dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "kcenter-k40-s19" in out and "kcenter-k40-s2\n" not in out  # seed 2 is the 6th in the order
    assert "25 trials at most (sweep.decide runs those its comparisons need)" in out


def test_a_rerun_may_raise_max_seeds_but_not_change_the_plan(tmp_path):
    job = decide_job(max_seeds=5)
    decide.write(tmp_path, job.sweep, [])
    decide.check_unchanged(tmp_path, decide_job().sweep)  # max_seeds 5 -> 20: the same plan
    with pytest.raises(ValueError, match=r"sweep\.decide\.delta: 0\.1 differs from the 0\.05"):
        decide.check_unchanged(tmp_path, decide_job(delta=0.1).sweep)
    with pytest.raises(ValueError, match=r"sweep\.decide\.spending: 'pocock' differs"):
        decide.check_unchanged(tmp_path, decide_job(spending="pocock").sweep)
    other = job_with({"delta": 0.05}, strategies=list(EFFECTS), seeds=list(range(20)))
    with pytest.raises(ValueError, match=r"sweep\.seeds \(their order\)"):
        decide.check_unchanged(tmp_path, other.sweep)


def test_an_interrupted_look_stops_the_sweep_with_the_decisions_of_the_trials_that_finished(tmp_path, monkeypatch):
    """Ctrl+C during a look: Tune returns early, _run_tuner raises Interrupted; no further
    look starts (before, the loop went on to the next look's seeds), and decisions.json holds
    the decisions of what finished."""
    import json

    from labelwise.contracts import SWEEP_DECISIONS
    from labelwise.sweep import stage

    job = decide_job(max_seeds=8)
    trials = trials_of(job)
    batches = []

    def interrupted_tuner(job_, todo, sweep_dir, pool_size, n_parallel, progress, already):
        batches.append([t["name"] for t in todo])
        half = todo[: len(todo) // 2]
        for t in half:
            write_fake_result(sweep_dir, t, pool_size)
        raise stage.Interrupted({}, [t["name"] for t in todo[len(half):]])

    monkeypatch.setattr(stage, "_run_tuner", interrupted_tuner)
    lines = []
    with pytest.raises(stage.Interrupted):
        stage._run_decided(job, trials, [], trials, tmp_path, 435, 1, None, lines.append)
    assert len(batches) == 1  # look 1 only
    found = json.loads((tmp_path / SWEEP_DECISIONS).read_text())["comparisons"]
    assert found and {c["verdict"] for c in found} == {"undecided"}
    assert any(c["reason"].startswith("look 1 needs 3 seeds") for c in found)
    assert any(line.startswith("[sweep] decisions so far:") for line in lines)

    rows_path = stage.write_interrupted(tmp_path, trials, stage.Interrupted({}, ["x"]), 435, lines.append)
    import pandas as pd

    df = pd.read_csv(rows_path)
    assert len(df) == len(batches[0]) // 2 and set(df["status"]) == {"ok"}  # the trials that ended, no "not run"
    assert lines[-1].startswith("[sweep] interrupted: 1 trial(s) not finished (x); ") and "Rerun the same command" in lines[-1]
