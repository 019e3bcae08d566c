"""The rounds section of a sweep report: learning curves (a metric against cumulative
labels) per selector, one batch and several rounds side by side at equal total budget, and
each multi-round selector's per-round allocation.

Reads the results table's ``rounds`` column and ``round:<r>:labels`` /
``round:<r>:<bench.metric>`` columns (sweep/trial.py's round_columns).
"""

from __future__ import annotations

from pathlib import Path

from labelwise.contracts import FULL, ROUND_PREFIX
from labelwise.report.table import base_model_value


def family(selector: str) -> str:
    """The selector without its "×n rounds" suffix: what one batch and rounds share."""
    return selector.split(" ×")[0]


def curves(df, metric: str) -> dict:
    """``{family: {"one batch": [(labels, mean)], "×n rounds (k=B)": [(labels, mean)], ...}}``,
    means over seeds; the one-batch curve runs over the budgets, a rounds curve over rounds."""
    out: dict = {}
    trials = df[df["strategy"] != FULL]
    rounds = trials["rounds"].fillna(1).astype(int) if "rounds" in trials.columns else None
    base = base_model_value(df, metric)
    for selector, g in trials.groupby("selector", sort=True):
        lines = out.setdefault(family(selector), {})
        n = 1 if rounds is None else int(rounds.loc[g.index].max())
        if n == 1:
            if metric in g.columns:
                points = g.groupby("budget")[metric].mean().dropna()
                lines["one batch"] = ([(0, base)] if base is not None else []) + [(int(b), float(v)) for b, v in points.items()]
            continue
        for budget, gb in g.groupby("budget"):
            points = [(0, base)] if base is not None else []
            for r in range(1, n + 1):
                labels, value = f"{ROUND_PREFIX}{r}:labels", f"{ROUND_PREFIX}{r}:{metric}"
                if labels in gb.columns and value in gb.columns and gb[value].notna().any():
                    points.append((float(gb[labels].mean()), float(gb[value].mean())))
            lines[f"×{n} rounds (k={int(budget)})"] = points
    return out


def round_allocations(df, folder: Path) -> dict[str, "object"]:
    """Per multi-round selector (largest budget, smallest seed): task x round selected counts."""
    import pandas as pd

    from labelwise.contracts import ROUND_ALLOCATION, ROUNDS

    out = {}
    if "rounds" not in df.columns or "run_dir" not in df.columns:
        return out
    trials = df[(df["strategy"] != FULL) & (df["rounds"].fillna(1) > 1)]
    for selector, g in trials.sort_values(["budget", "seed"], ascending=[False, True]).groupby("selector", sort=True):
        for run_dir in g["run_dir"].dropna():
            path = Path(run_dir) if Path(run_dir).is_absolute() else folder / run_dir
            alloc = path / ROUNDS / ROUND_ALLOCATION
            if alloc.exists():
                table = pd.read_csv(alloc).pivot_table(index="task", columns="round", values="selected", aggfunc="sum")
                out[f"{selector} (k={int(g['budget'].max())})"] = table.fillna(0).astype(int)
                break
    return out


def add_rounds(doc, df, metric: str, folder: Path) -> None:
    """The section, when the sweep has trials of several rounds."""
    from labelwise.report import plots

    if "rounds" not in df.columns or not (df["rounds"].fillna(1) > 1).any():
        return
    doc.heading(f"Rounds: learning curves ({metric})", 2)
    doc.paragraph(
        "The model after each round against the labels so far (cumulative), mean over seeds: "
        "one batch of k (solid; one point per budget) beside n rounds that split k evenly "
        "(dashed; one point per round), same total budget. Round r ≥ 2 selects from the prompts "
        "not yet labeled, by the confidence of the model adapted in round r − 1."
    )
    found = curves(df, metric)
    doc.image(f"rounds_{metric.replace('.', '_')}.png", plots.learning_curves(found, metric),
              f"{metric} against cumulative labels")
    rows = [[fam, line, ", ".join(f"{x:g}: {y:.4g}" for x, y in points)]
            for fam, lines in found.items() for line, points in lines.items()]
    doc.table(["selector", "curve", "labels: value"], rows)
    for label, table in round_allocations(df, folder).items():
        doc.heading(f"Per-round allocation: {label}", 3)
        doc.table(["task"] + [f"round {r}" for r in table.columns],
                  [[str(task)] + [str(v) for v in row] for task, row in zip(table.index, table.values.tolist())])
