"""Paired statistics of a sweep: selector − reference by seed, CI, p-value, power, per task."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labelwise.report import paired


def results(n_seeds=5, effect=-0.1, noise=0.02, seed=0):
    """random, task_diversity and WTD at k=20, 40; WTD = random + effect + noise per seed.
    Two tasks; the macro NLL is their mean, and all of WTD's effect comes from task b."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in (20, 40):
        for s in range(n_seeds):
            seed_level = rng.normal(2.0, 0.3)  # what the seed does to every selector
            for strategy, shift, sel in (("random", 0.0, (10, 10)), ("task_diversity", 0.0, (10, 10)),
                                         ("weighted_task_diversity", effect, (5, 15))):
                eps = rng.normal(0, noise) if shift else 0.0
                a, b = seed_level, seed_level + 2 * (shift + eps)
                rows.append({"strategy": strategy, "base": 5 if strategy.startswith("w") else None,
                             "budget": budget, "seed": s, "heldout.nll_macro": (a + b) / 2,
                             "task:a:heldout.nll": a, "task:b:heldout.nll": b,
                             "task:a:selected": sel[0] * budget // 20, "task:b:selected": sel[1] * budget // 20})
    rows.append({"strategy": "full", "budget": 100, "seed": 0, "heldout.nll_macro": 1.5})
    return pd.DataFrame(rows)


def test_paired_difference_matches_a_hand_computed_t_interval():
    df = results()
    rows = paired.paired_rows(df, "heldout.nll_macro")
    row = next(r for r in rows if r["selector"] == "weighted_task_diversity (base=5)"
               and r["reference"] == "random" and r["budget"] == 20)
    g = df[df["budget"] == 20]
    d = (g[g["strategy"] == "weighted_task_diversity"].set_index("seed")["heldout.nll_macro"]
         - g[g["strategy"] == "random"].set_index("seed")["heldout.nll_macro"]).to_numpy()
    from scipy import stats

    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert row["n"] == 5 and row["mean"] == pytest.approx(d.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["p"] == pytest.approx(stats.ttest_rel(d, np.zeros(5)).pvalue)
    assert row["verdict"] == "better"  # lower NLL, CI below 0
    # The seed's own level (sd 0.3) cancels in the pairs: unpaired, the CI would cover 0
    assert row["ci_high"] < 0


def test_no_effect_is_no_detectable_difference_and_identical_runs_are_zero():
    rows = paired.paired_rows(results(effect=0.0, noise=0.0), "heldout.nll_macro")
    td = [r for r in rows if r["selector"] == "task_diversity" and r["reference"] == "random"]
    assert td and all(r["mean"] == 0 and r["p"] == 1.0 and r["verdict"] == "no detectable difference" for r in td)
    assert all(r["seeds_for_80_power"] is None for r in td)


def test_seeds_needed_matches_paired_t_power_tables():
    # one-sample / paired t-test, two-sided alpha 0.05, power 0.8: d=1 -> 10, d=0.5 -> 34
    assert paired.seeds_needed(1.0, 1.0) == 10
    assert paired.seeds_needed(-0.5, 1.0) == 34
    assert paired.seeds_needed(0.0, 1.0) is None
    assert paired.seeds_needed(0.001, 1.0) is None  # more than MAX_SEEDS


def test_one_seed_gives_no_interval():
    rows = paired.paired_rows(results(n_seeds=1), "heldout.nll_macro")
    assert rows and all(r["verdict"] == "too few seeds" and math.isnan(r["ci_low"]) for r in rows)


def test_per_task_breakdown_splits_the_macro_difference():
    df = results()
    tasks = paired.per_task_rows(df, "heldout.nll_macro", "weighted_task_diversity (base=5)", "random", 40)
    by = {t["task"]: t for t in tasks}
    assert by["a"]["mean"] == pytest.approx(0.0) and by["b"]["mean"] < -0.15
    assert (by["b"]["selected"], by["b"]["selected_reference"]) == (30, 20)
    total = next(r for r in paired.paired_rows(df, "heldout.nll_macro")
                 if r["selector"].startswith("weighted") and r["reference"] == "random" and r["budget"] == 40)
    assert np.mean([t["mean"] for t in tasks]) == pytest.approx(total["mean"])


def test_sweep_report_prints_the_paired_statistics(tmp_path):
    from labelwise.report import sweep_report

    text, _ = sweep_report.build(results(), tmp_path).markdown()
    assert "Did it beat random? Paired differences (heldout.nll_macro)" in text
    assert "seeds for 80% power" in text and "better" in text
    assert "Per task: weighted_task_diversity (base=5) vs random" in text


def test_per_task_selected_counts_use_the_paired_seeds_only():
    df = results()
    df = df[~((df["strategy"] == "weighted_task_diversity") & (df["seed"] > 0))]  # WTD ran seed 0 only
    df.loc[(df["strategy"] == "random") & (df["seed"] > 0), "task:b:selected"] = 0
    tasks = {t["task"]: t for t in paired.per_task_rows(df, "heldout.nll_macro", "weighted_task_diversity (base=5)", "random", 20)}
    assert tasks["b"]["n"] == 1 and tasks["b"]["selected_reference"] == 10  # seed 0's count, not a mean over 5
