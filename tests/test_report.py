"""Report: aggregation, paper-style tables, savings, and the written Markdown / HTML."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.report import stage, table


def synthetic_results(tmp_path=None) -> pd.DataFrame:
    """random is linear in the budget; WTD at k equals random at 4k; LC is worse."""
    rows = []
    pool = 400
    for seed, noise in [(0, -0.01), (1, 0.01)]:
        for k in (50, 100):
            for strategy, base, acc in [
                ("random", None, 0.30 + 0.2 * k / pool),
                ("weighted_task_diversity", 5, 0.30 + 0.2 * 4 * k / pool),
                ("least_confidence", None, 0.28 + 0.2 * k / pool),
            ]:
                name = f"{strategy}_k{k}_s{seed}"
                rows.append(
                    {
                        "trial": name,
                        "strategy": strategy,
                        "base": base,
                        "budget": k,
                        "seed": seed,
                        "status": "ok",
                        "run_dir": f"trials/{name}",
                        "heldout.em_macro": acc + noise,
                        "heldout.nll_macro": 2.0 - acc + noise,
                        "winrate.win_rate": acc,
                        "base_model.heldout.em_macro": 0.30,
                    }
                )
        rows.append(
            {
                "trial": f"full_s{seed}", "strategy": "full", "base": None, "budget": pool,
                "seed": seed, "status": "ok", "run_dir": f"trials/full_s{seed}",
                "heldout.em_macro": 0.50 + noise, "heldout.nll_macro": 1.5 + noise,
                "winrate.win_rate": 0.5, "base_model.heldout.em_macro": 0.30,
            }
        )
    return pd.DataFrame(rows)


def test_aggregate_mean_and_standard_error_over_seeds():
    df = synthetic_results()
    agg = table.aggregate(df, "heldout.em_macro")
    r = agg[(agg.selector == "random") & (agg.budget == 50)].iloc[0]
    assert r["n"] == 2
    assert r["mean"] == pytest.approx(0.325)
    # values 0.315 and 0.335: sd = 0.01414, se = sd / sqrt(2) = 0.01
    assert r["se"] == pytest.approx(0.01)
    assert set(agg.selector) == {"random", "weighted_task_diversity (base=5)", "least_confidence", "full"}


def test_paper_table_ranks_best_in_the_metric_direction():
    df = synthetic_results()
    acc = table.paper_table(df, "heldout.em_macro")
    cells = dict(acc["rows"])
    assert acc["budgets"] == [50, 100]
    assert cells["weighted_task_diversity (base=5)"][50]["rank"] == 1
    assert cells["random"][50]["rank"] == 2
    assert cells["least_confidence"][50]["rank"] == 3
    assert acc["full"]["budget"] == 400 and acc["full"]["mean"] == pytest.approx(0.5)
    assert acc["rows"][0][0] == "random"  # the reference comes first
    loss = dict(table.paper_table(df, "heldout.nll_macro")["rows"])
    # loss is lower-is-better: WTD has the lowest loss, so it is still ranked first
    assert loss["weighted_task_diversity (base=5)"][100]["rank"] == 1
    assert loss["least_confidence"][100]["rank"] == 3


def test_metric_columns_skip_base_model_and_bookkeeping():
    cols = table.metric_columns(synthetic_results())
    assert cols == ["heldout.nll_macro", "heldout.em_macro", "winrate.win_rate"]


def test_metric_columns_from_real_metric_names_leave_out_counts_and_put_the_headline_first():
    from labelwise.report.run_report import flatten_metrics

    metrics = {"adapted": {
        "heldout": {"nll_macro": 2.1, "nll_micro": 2.0, "em_macro": 0.3, "em_micro": 0.25, "n": 66, "n_em": 40,
                    "n_tasks": 12, "per_task": {"a": {"nll": 1.0}}, "protocol": {"split": "test.parquet"}},
        "winrate": {"win_rate": 0.6, "lc_win_rate": 0.55, "wins": 0.5, "ties": 0.2, "losses": 0.3, "lc_theta": 0.1,
                    "lc_phi": 0.0, "len_a_chars": 300.0, "n": 20, "invalid_judgments": 0},
    }}
    row = {"strategy": "random", "budget": 10, "seed": 0, **flatten_metrics(metrics)["adapted"]}
    cols = table.metric_columns(pd.DataFrame([row]))
    assert cols == ["heldout.nll_macro", "heldout.em_macro", "winrate.lc_win_rate", "winrate.win_rate",
                    "heldout.em_micro", "heldout.nll_micro"]


def test_check_results_names_the_missing_column():
    with pytest.raises(ValueError, match="missing column 'seed'"):
        table.check_results(pd.DataFrame({"strategy": ["random"], "budget": [5]}), "x.csv")


def test_savings_vs_random_and_full_pool():
    df = synthetic_results()
    rows = {(r["selector"], r["budget"]): r for r in table.savings(df, "heldout.em_macro")}
    wtd50 = rows[("weighted_task_diversity (base=5)", 50)]
    # WTD at 50 equals random at 200 (interpolated between random at 100 and the full
    # pool at 400): three quarters of the annotation saved
    assert wtd50["random_budget"] == pytest.approx(200)
    assert wtd50["saved_vs_random"] == pytest.approx(0.75)
    assert wtd50["saved_vs_full"] is None  # 0.40 is far below the full pool's 0.50
    wtd100 = rows[("weighted_task_diversity (base=5)", 100)]
    # WTD at 100 reaches 0.50 = the full pool: 75% saved against labeling all 400
    assert wtd100["saved_vs_full"] == pytest.approx(0.75)
    assert wtd100["saved_vs_random"] == pytest.approx(0.75)
    lc = rows[("least_confidence", 50)]
    assert lc["saved_vs_random"] < 0  # worse than random: random needs fewer prompts


def test_savings_when_random_never_gets_there():
    df = synthetic_results()
    df.loc[df.strategy == "weighted_task_diversity", "heldout.em_macro"] = 0.9
    rows = {(r["selector"], r["budget"]): r for r in table.savings(df, "heldout.em_macro")}
    r = rows[("weighted_task_diversity (base=5)", 100)]
    assert r["saved_vs_random_at_least"] and r["saved_vs_random"] == pytest.approx(0.75)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=8),
    st.floats(0, 1, allow_nan=False),
)
def test_budget_to_reach_is_the_first_crossing_of_a_monotone_curve(increments, target):
    budgets = [10.0 * i for i in range(len(increments))]
    values = [sum(increments[: i + 1]) for i in range(len(increments))]  # non-decreasing
    need = table.budget_to_reach(list(zip(budgets, values)), target, lower=False)
    if values[-1] < target:
        assert need is None
        return
    assert need is not None and budgets[0] <= need <= budgets[-1]
    # the interpolated curve at `need` reaches the target, and no earlier knot did
    interp = float(pd.Series(values, index=budgets).reindex(sorted(set(budgets) | {need})).interpolate("index")[need])
    assert interp >= target - 1e-9
    assert all(v < target for b, v in zip(budgets, values) if b < need - 1e-9)


def test_sweep_report_files(tmp_path):
    df = synthetic_results()
    for name in df["run_dir"]:
        d = tmp_path / name
        d.mkdir(parents=True)
        pd.DataFrame(
            {"task": ["a", "b"], "pool_size": [10, 30], "confidence": [0.2, 0.8],
             "allocated": [5, 5], "selected": [5, 5]}
        ).to_csv(d / "allocation.csv", index=False)
    df.to_csv(tmp_path / "results.csv", index=False)
    assert stage.main(str(tmp_path)) == 0
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    # the paper-style table: WTD best at k=50, in bold with its standard error
    row = next(l for l in md.splitlines() if l.startswith("| weighted_task_diversity (base=5)") and "± " in l)
    assert "| **1.600** ± 0.0100 |" in row  # nll: lower is better
    assert "| Strategy | k = 50 | k = 100 | Full (400) |" in md
    assert "Annotation saved" in md and "| weighted_task_diversity (base=5) | 50 | 200 | 75% | – |" in md
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (tmp_path / ref).stat().st_size > 1000  # a real PNG
    assert "report_files/allocation.png" in md and "bars_winrate_win_rate.png" in md
    # self-contained: every image inlined, nothing fetched from disk
    assert html.count("data:image/png;base64,") == md.count("![")
    assert 'src="report_files' not in html
    assert "<b>1.600</b>" in html


def test_sweep_report_lists_failed_trials(tmp_path):
    df = synthetic_results()
    df.loc[0, "status"] = "error"
    df["error"] = None
    df.loc[0, "error"] = "RuntimeError: boom"
    df.to_csv(tmp_path / "results.csv", index=False)
    assert stage.main(str(tmp_path)) == 0
    md = (tmp_path / "report.md").read_text()
    assert "(1 failed)" in md and "RuntimeError: boom" in md


def test_run_report(tmp_path):
    (tmp_path / "metrics.json").write_text(
        json.dumps(
            {
                "base": {"heldout": {"em_macro": 0.25, "nll_macro": 2.0, "protocol": {"n": 10}}},
                "adapted": {"heldout": {"em_macro": 0.5, "nll_macro": 1.5, "protocol": {"n": 10}}},
            }
        )
    )
    pd.DataFrame({"task": ["a", "b"], "pool_size": [10, 30], "confidence": [0.2, 0.8],
                  "allocated": [5, 7], "selected": [5, 7]}).to_csv(tmp_path / "allocation.csv", index=False)
    pd.DataFrame({"step": [1, 2, 3], "epoch": [0, 0, 1], "loss": [2.0, 1.5, 1.2]}).to_csv(
        tmp_path / "train_log.csv", index=False
    )
    (tmp_path / "selection.json").write_text(json.dumps({
        "selector": "weighted_task_diversity", "params": {"base": 5}, "budget": 12, "seed": 0, "selected": 12,
        "tasks_selected": 2, "excluded": {"count": 1, "rows": [{"id": "x"}]}, "request": {"scores": {"mtime_ns": 1}},
    }))
    md, page = stage.write_report(tmp_path)
    text = md.read_text()
    assert "| parameters | base=5 |" in text and "| selected | 12 prompts from 2 tasks |" in text
    assert "1 prompts the scorer could not score" in text and "mtime_ns" not in text
    assert "| heldout.em_macro | 0.25 | 0.5 | +0.25 |" in text
    assert "| heldout.nll_macro | 2 | 1.5 | -0.5 |" in text
    assert "protocol" not in text.split("## Metrics")[1].split("##")[0]
    assert (tmp_path / "report_files" / "loss.png").exists()
    assert page.read_text().count("data:image/png;base64,") == 2


def test_report_of_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert stage.main(str(tmp_path)) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert stage.main(str(tmp_path / "missing")) == 2


def test_report_of_a_sweep_still_running_uses_finished_trials(tmp_path):
    df = synthetic_results()
    for row in df.to_dict("records"):
        d = tmp_path / row["run_dir"]
        d.mkdir(parents=True)
        (d / "trial_result.json").write_text(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}))
    md, _ = stage.write_report(tmp_path)
    assert "| **40.00** ± 1.00 |" in md.read_text()


def test_task_names_and_folder_names_are_escaped_in_both_reports(tmp_path):
    folder = tmp_path / "run<i>x"
    folder.mkdir()
    evil = '<img src=x onerror="alert(1)">'
    link = "[click](javascript:alert(1))"
    pd.DataFrame({"task": [evil, link, "a|b **c**"], "pool_size": [10, 30, 5], "confidence": [0.2, 0.8, 0.5],
                  "allocated": [5, 7, 1], "selected": [5, 7, 1]}).to_csv(folder / "allocation.csv", index=False)
    md, page = stage.write_report(folder)
    text, html_text = md.read_text(), page.read_text()
    for out in (text, html_text):
        assert "<img src=x" not in out and "<i>x" not in out and "run&lt;i&gt;x" in out
        assert "&lt;img src=x onerror=" in out
    assert "](javascript:" not in text and "\\[click\\]\\(javascript:alert\\(1\\)\\)" in text
    assert "| a\\|b \\*\\*c\\*\\* |" in text  # one cell, shown as written
    assert "<b>c</b>" not in html_text and "a|b **c**" in html_text


def test_report_exit_codes(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("nothing,useful\n1,2\n")
    assert stage.main(str(tmp_path)) == 1  # the folder's files are bad: a stage error
    assert "labelwise report: error" in capsys.readouterr().err


def test_sweep_report_names_the_judge_of_the_judged_selectors(tmp_path):
    df = synthetic_results()
    df["within_task"] = "random"
    df.loc[df["strategy"] == "least_confidence", "strategy"] = "thtb"
    df.to_csv(tmp_path / "results.csv", index=False)
    assert stage.main(str(tmp_path)) == 0
    assert "no judge_summary.json in this folder" in (tmp_path / "report.md").read_text()
    (tmp_path / "judge_summary.json").write_text(json.dumps(
        {"judge": "local:smollm2-135m-instruct@8f03", "mode": "choice", "prompts": 495,
         "request_errors": 0, "settings": {"kind": "local", "base_url": None}}))
    assert stage.main(str(tmp_path)) == 0
    md = (tmp_path / "report.md").read_text()
    line = next(l for l in md.splitlines() if l.startswith("Judged selectors"))
    assert "(thtb (within_task=random))" in line and "`local:smollm2-135m-instruct@8f03` (local, in process), mode `choice`" in line
    assert "495 prompts judged, 0 failed requests" in line
    # a sweep with no judged selector says nothing of a judge
    df.loc[df["strategy"] == "thtb", "strategy"] = "least_confidence"
    df.to_csv(tmp_path / "results.csv", index=False)
    assert stage.main(str(tmp_path)) == 0
    assert "Judged selectors" not in (tmp_path / "report.md").read_text()
