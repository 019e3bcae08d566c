"""The report of a sweep: the paper-style tables, curves, allocation, win rate, savings."""

from __future__ import annotations

from pathlib import Path

from labelwise.contracts import FULL, JUDGE_SUMMARY
from labelwise.report import paired, plots
from labelwise.report.document import Document
from labelwise.report.table import (
    lower_is_better,
    metric_columns,
    paper_table,
    savings,
    with_selector,
)

PERCENT_WORDS = ("accuracy", "acc", "win_rate", "winrate", "rate", "exact_match", "em")


def is_percent(metric: str, df) -> bool:
    name = metric.rsplit(".", 1)[-1].lower()
    if not any(w == name or w in name.split("_") or name.startswith(w) for w in PERCENT_WORDS):
        return False
    v = df[metric].dropna()
    return bool(len(v)) and bool(((v >= 0) & (v <= 1)).all())


def fmt_value(x: float, percent: bool) -> str:
    if percent:
        return f"{100 * x:.2f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.4f}" if abs(x) < 1 else f"{x:.3f}"


def fmt_cell(cell: dict | None, percent: bool) -> str:
    if cell is None:
        return "–"
    text = fmt_value(cell["mean"], percent)
    if cell.get("rank") == 1:
        text = f"**{text}**"
    elif cell.get("rank") == 2:
        text = f"<u>{text}</u>"
    if cell["n"] > 1:
        text += f" ± {fmt_value(cell['se'], percent)}"
    return text


def table_rows(table: dict, percent: bool) -> tuple[list[str], list[list[str]]]:
    header = ["Strategy"] + [f"k = {b}" for b in table["budgets"]]
    full = table["full"]
    if full is not None:
        header.append(f"Full ({full['budget']})")
    rows = []
    for selector, cells in table["rows"]:
        row = [selector] + [fmt_cell(cells.get(b), percent) for b in table["budgets"]]
        if full is not None:
            row.append(fmt_cell(full, percent))
        rows.append(row)
    return header, rows


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def savings_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        if r["selector"].startswith("random"):
            continue
        vs_random = _pct(r["saved_vs_random"])
        if r["saved_vs_random_at_least"] and r["saved_vs_random"] is not None:
            vs_random = "≥ " + vs_random
        need = "–" if r["random_budget"] is None else f"{r['random_budget']:.0f}"
        if r["saved_vs_random_at_least"]:
            need = "> full pool"
        out.append([r["selector"], str(r["budget"]), need, vs_random, _pct(r["saved_vs_full"])])
    return out


def allocations_for_report(df, folder: Path) -> dict:
    """One allocation.csv per selector: its largest budget, smallest seed, where present."""
    from labelwise.contracts import ALLOCATION, read_allocation

    if "run_dir" not in df.columns:
        return {}
    out = {}
    trials = df[df["strategy"] != FULL].sort_values(["budget", "seed"], ascending=[False, True])
    for selector, g in trials.groupby("selector", sort=True):
        for run_dir in g["run_dir"].dropna():
            path = Path(run_dir)
            if not path.is_absolute():
                path = folder / path
            if (path / ALLOCATION).exists():
                out[f"{selector} (k={int(g['budget'].max())})"] = read_allocation(path / ALLOCATION)
                break
    return out


def _num(x, percent: bool = False) -> str:
    import math

    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt_value(x, percent) if percent else f"{x:+.4f}"


def _p(p) -> str:
    import math

    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def paired_table(rows: list[dict], percent: bool) -> tuple[list[str], list[list[str]]]:
    header = ["selector", "k", "vs", "seeds", "Δ mean", "95% CI", "p (paired t)", "seeds for 80% power", "verdict"]
    out = []
    for r in rows:
        ci = "–" if r["n"] < 2 else f"[{_num(r['ci_low'], percent)}, {_num(r['ci_high'], percent)}]"
        need = r["seeds_for_80_power"]
        out.append([r["selector"], str(r["budget"]), r["reference"], str(r["n"]), _num(r["mean"], percent), ci,
                    _p(r["p"]), "–" if need is None else str(need), r["verdict"]])
    return header, out


def add_paired(doc: Document, df, metric: str) -> None:
    """The paired comparison against random and task diversity, and its per-task breakdown."""
    import math

    rows = paired.paired_rows(df, metric)
    if not rows:
        return
    percent = is_percent(metric, df)
    direction = "lower is better" if lower_is_better(metric) else "higher is better"
    doc.heading(f"Did it beat random? Paired differences ({metric})", 2)
    doc.paragraph(
        f"Δ = selector − reference on {metric} ({direction}), paired by seed: trials with the same "
        "seed share the pool, the scores, the training randomness and the evaluation. 95% CI: t "
        "interval of the mean paired difference; p: two-sided paired t-test; seeds for 80% power: "
        "how many seeds a paired t-test would need to detect a difference of this size with the "
        "observed spread (α = 0.05). Verdict: better or worse only when the CI excludes 0."
    )
    header, body = paired_table(rows, percent)
    doc.table(header, body)
    key = paired.per_task_metric(metric)
    budgets = sorted({r["budget"] for r in rows})
    for reference in paired.REFERENCES:
        for selector in sorted({r["selector"] for r in rows if r["reference"] == reference}):
            per_budget = {b: paired.per_task_rows(df, metric, selector, reference, b) for b in budgets}
            tasks = sorted({t["task"] for v in per_budget.values() for t in v})
            if not tasks:
                continue
            head = ["task"]
            for b in budgets:
                head += [f"k={b}: selected (vs {reference})", f"k={b}: Δ {key}"]
            body = []
            for task in tasks:
                line = [task]
                for b in budgets:
                    t = next((x for x in per_budget[b] if x["task"] == task), None)
                    if t is None:
                        line += ["–", "–"]
                        continue
                    sel = "–" if "selected" not in t else f"{t['selected']:.1f} ({t['selected_reference']:.1f})"
                    se = "" if not math.isfinite(t["se"]) else f" ± {t['se']:.3f}"
                    line += [sel, f"{t['mean']:+.3f}{se}"]
                body.append(line)
            doc.heading(f"Per task: {selector} vs {reference}", 3)
            doc.table(head, body)


def decisions_table(found: list[dict], percent: bool) -> tuple[list[str], list[list[str]]]:
    """One row per comparison and look: the interval at that look and its verdict."""
    header = ["selector", "k", "vs", "look", "seeds", "Δ mean", "interval (1 − α_k)", "TOST interval (1 − 2ε_k)",
              "verdict"]
    out = []
    for c in found:
        for i, r in enumerate(c["path"]):
            last = i == len(c["path"]) - 1
            ci = f"[{_num(r['ci_low'], percent)}, {_num(r['ci_high'], percent)}] (α_k {r['alpha_k']:.3g})"
            tost = f"[{_num(r['tost_low'], percent)}, {_num(r['tost_high'], percent)}] (ε_k {r['tost_alpha_k']:.3g})"
            out.append([c["selector"], str(c["budget"]), c["reference"], str(r["look"]), str(r["seeds"]),
                        _num(r["mean"], percent), ci, tost,
                        f"**{c['verdict']}**" if last and c["verdict"] != "undecided" else r["verdict"]])
        if not c["path"]:
            out.append([c["selector"], str(c["budget"]), c["reference"], "–", "0", "–", "–", "–", "undecided"])
    return header, out


def add_decisions(doc: Document, df, folder: Path) -> None:
    """sweep.decide: each comparison's verdict, where and why it stopped, and its path."""
    import json

    from labelwise.contracts import SWEEP_DECISIONS
    from labelwise.report.sequential import projection_text

    path = folder / SWEEP_DECISIONS
    if not path.exists():
        return
    data = json.loads(path.read_text())
    st, found = data["settings"], data["comparisons"]
    if not found:
        return
    percent = is_percent(st["metric"], df)
    direction = "lower is better" if st["lower_is_better"] else "higher is better"
    doc.heading(f"Decisions with sequential seeds ({st['metric']})", 2)
    doc.paragraph(
        f"Δ = selector − reference on {st['metric']} ({direction}), paired by seed, seeds taken in the order "
        f"{', '.join(map(str, st['seed_order']))}. Looks at {', '.join(map(str, st['looks']))} seeds "
        f"(max_seeds {st['max_seeds']}); α = {st['alpha']} spent over the looks ({st['spending']}); equivalence "
        f"margin δ = {st['delta']}. At each look: better or worse when the interval excludes 0, equivalent when "
        "the TOST interval lies inside ±δ, else undecided and the next look's seeds run for that "
        "comparison only. The chance of a false better/worse (no difference) and of a false "
        "equivalent (|difference| ≥ δ) is at most α each, whenever the comparison stops "
        "(labelwise.report.sequential)."
    )
    doc.table(["selector", "k", "vs", "verdict", "seeds", "why", "if Δ mean and SD held"],
              [[c["selector"], str(c["budget"]), c["reference"], c["verdict"], str(c["seeds"]), c["reason"],
                projection_text(c.get("projection"))] for c in found])
    if any(c.get("projection") for c in found):
        doc.paragraph(
            "The last column projects an undecided comparison: the look at which the rule would decide if "
            "the mean and SD of its last look stayed as they are (a plug-in guess to plan the cost of more "
            "seeds; the decisions never use it)."
        )
    header, body = decisions_table(found, percent)
    doc.heading("Path of each comparison", 3)
    doc.table(header, body)


def judged_selectors(trials) -> list[str]:
    """The selectors whose picks depend on the judge: ``thtb``, and any ``within_task: hardness``."""
    uses = trials["strategy"] == "thtb"
    if "within_task" in trials.columns:
        uses = uses | (trials["within_task"] == "hardness")
    return sorted(trials.loc[uses, "selector"].unique())


def judge_line(trials, folder: Path) -> str | None:
    """Which judge the judge-dependent trials selected with (judge_summary.json of the sweep
    folder), so that their rows are read as a measurement of that judge."""
    import json

    judged = judged_selectors(trials)
    if not judged:
        return None
    path = folder / JUDGE_SUMMARY
    if not path.exists():
        return f"Judged selectors ({', '.join(judged)}): no {JUDGE_SUMMARY} in this folder, the judge is not recorded."
    summary = json.loads(path.read_text())
    settings = summary.get("settings", {})
    where = settings.get("base_url") or "in process"
    errors = summary.get("request_errors", 0)
    return (
        f"Judged selectors ({', '.join(judged)}) select with the judgments of "
        f"`{summary.get('judge', '?')}` ({settings.get('kind', '?')}, {where}), mode "
        f"`{summary.get('mode', settings.get('mode', 'free'))}`: {summary.get('prompts', '?')} prompts judged, "
        f"{errors} failed request{'s' if errors != 1 else ''}. Their rows measure that judge."
    )


def build(df, folder: Path, title: str | None = None) -> Document:
    """Build the report of a results table (one row per trial)."""
    df = with_selector(df)
    if "status" in df.columns:
        failed = df[df["status"].fillna("ok") != "ok"]
        df_ok = df[df["status"].fillna("ok") == "ok"]
    else:
        failed, df_ok = df.iloc[0:0], df
    doc = Document(title or f"labelwise sweep: {folder.name}")
    metrics = metric_columns(df_ok)
    trials = df_ok[df_ok["strategy"] != FULL]
    doc.paragraph(
        f"{len(df)} trials ({len(failed)} failed): selectors {', '.join(sorted(trials['selector'].unique()))}; "
        f"budgets {', '.join(str(b) for b in sorted(trials['budget'].unique()))}; "
        f"seeds {', '.join(str(s) for s in sorted(df_ok['seed'].unique()))}. "
        "Cells are mean ± standard error over seeds; the best selector at each budget is in "
        "**bold**, the second best <u>underlined</u>; Full is the model trained on the whole pool."
    )
    judge = judge_line(trials, folder)
    if judge:
        doc.paragraph(judge)
    if not metrics:
        doc.paragraph("No metric columns in the results table yet.")
    for metric in metrics:
        table = paper_table(df_ok, metric)
        if not table["rows"]:
            continue
        percent = is_percent(metric, df_ok)
        direction = "lower is better" if lower_is_better(metric) else "higher is better"
        doc.heading(f"{metric}{' (%)' if percent else ''}", 2)
        extra = ""
        if table["base_model"] is not None:
            extra = f" Untrained base model: {fmt_value(table['base_model'], percent)}."
        doc.paragraph(f"{direction}.{extra}")
        header, rows = table_rows(table, percent)
        doc.table(header, rows)
        slug = metric.replace(".", "_").replace("/", "_")
        doc.image(f"curve_{slug}.png", plots.metric_curves(table), f"{metric} vs annotation budget")
        if metric.startswith("winrate."):
            doc.image(f"bars_{slug}.png", plots.bars(table), f"{metric} per selector")
    if metrics:
        from labelwise.report.rounds_report import add_rounds

        add_rounds(doc, df_ok, metrics[0], folder)
        add_decisions(doc, df_ok, folder)
        add_paired(doc, df_ok, metrics[0])
    if metrics:
        primary = metrics[0]
        doc.heading(f"Annotation saved at equal quality ({primary})", 2)
        doc.paragraph(
            "vs random: 1 − k / (budget random needs for the same mean, interpolated on "
            "random's curve from the untrained model at 0 to the full pool). vs full: "
            "1 − k / pool size, when the selector reaches the full pool's mean within one "
            "standard error; – when not reached."
        )
        rows = savings_rows(savings(df_ok, primary))
        if rows:
            doc.table(["selector", "k", "random needs", "saved vs random", "saved vs full pool"], rows)
    allocations = allocations_for_report(df_ok, folder)
    if allocations:
        doc.heading("Per-task allocation", 2)
        doc.image("allocation.png", plots.allocation_chart(allocations), "prompts selected per task")
    doc.heading("All trials", 2)
    cols = [c for c in ["trial", "selector", "budget", "seed", "status"] if c in df.columns] + metrics
    doc.table(cols, _rows_by_name(df.sort_values(["selector", "budget", "seed"]), cols))
    if len(failed):
        doc.heading("Failed trials", 2)
        errs = [c for c in ["trial", "selector", "budget", "seed", "error"] if c in failed.columns]
        doc.table(errs, _rows_by_name(failed, errs))
    return doc


def _rows_by_name(df, cols) -> list[list[str]]:
    return [[_plain(v) for v in values] for values in df[cols].itertuples(index=False, name=None)]


def _plain(v) -> str:
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
