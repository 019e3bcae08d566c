"""The report of one run folder: metrics base vs adapted, allocation, training loss."""

from __future__ import annotations

import json
from pathlib import Path

from labelwise import contracts
from labelwise.report import plots
from labelwise.report.document import Document, literal


def flatten_metrics(metrics: dict) -> dict[str, dict[str, float]]:
    """``{label: {benchmark: {metric: x, protocol: {...}}}}`` -> ``{label: {"bench.metric": x}}``.

    Only numbers are kept (``protocol`` and other nested records are descriptions)."""
    out: dict[str, dict[str, float]] = {}
    for label, benches in (metrics or {}).items():
        if not isinstance(benches, dict):
            continue
        flat = out.setdefault(label, {})
        for bench, values in benches.items():
            if isinstance(values, (int, float)) and not isinstance(values, bool):
                flat[bench] = float(values)
                continue
            if not isinstance(values, dict):
                continue
            for name, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    flat[f"{bench}.{name}"] = float(v)
    return out


def metrics_rows(flat: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Rows of metric, value per label and the change; the headline metrics first, the
    counts (how many prompts, tasks...) last and without a change."""
    from labelwise.report.table import HEADLINE, is_quality_metric

    labels = [l for l in ("base", "adapted") if l in flat] + sorted(l for l in flat if l not in ("base", "adapted"))
    keys = set().union(*(set(v) for v in flat.values())) if flat else set()

    def order(k):
        return (not is_quality_metric(k), HEADLINE.index(k) if k in HEADLINE else len(HEADLINE), k)

    header = ["metric"] + labels
    if "base" in flat and "adapted" in flat:
        header.append("adapted − base")
    rows = []
    for k in sorted(keys, key=order):
        row = [k] + [_num(flat[l].get(k)) for l in labels]
        if "base" in flat and "adapted" in flat:
            a, b = flat["adapted"].get(k), flat["base"].get(k)
            changed = a is not None and b is not None and is_quality_metric(k)
            row.append(_num(a - b, signed=True) if changed else "")
        rows.append(row)
    return header, rows


def _num(x, signed=False) -> str:
    if x is None:
        return ""
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def build(folder: Path) -> Document:
    import pandas as pd

    folder = Path(folder)
    doc = Document(literal(f"labelwise run: {folder.name}"))
    summary_path = folder / contracts.RUN_SUMMARY
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        stages = summary.get("stages") or []
        if stages:
            doc.heading("Stages", 2)
            doc.table(
                ["stage", "status", "seconds", "output"],
                [[literal(s.get("stage", "")), literal(s.get("status", "")), f"{s.get('seconds', 0):.1f}", literal(s.get("output", ""))] for s in stages],
            )
    sel_path = folder / contracts.SELECTION_JSON
    if sel_path.exists():
        doc.heading("Selection", 2)
        doc.table(["", ""], selection_rows(json.loads(sel_path.read_text())))
    metrics_path = folder / contracts.METRICS
    if metrics_path.exists():
        flat = flatten_metrics(json.loads(metrics_path.read_text()))
        doc.heading("Metrics", 2)
        header, rows = metrics_rows(flat)
        doc.table(header, rows) if rows else doc.paragraph("metrics.json has no numbers yet.")
    alloc_path = folder / contracts.ALLOCATION
    if alloc_path.exists():
        alloc = contracts.read_allocation(alloc_path)
        doc.heading("Per-task allocation", 2)
        doc.image("allocation.png", plots.allocation_chart({"selected": alloc}), "prompts selected per task")
        doc.table([literal(c) for c in alloc.columns], [[_cell(v) for v in r] for r in alloc.itertuples(index=False, name=None)])
    curve_path = folder / contracts.ROUNDS / contracts.ROUND_CURVE
    if curve_path.exists():  # a run of several rounds (labelwise.rounds)
        _add_rounds(doc, pd.read_csv(curve_path), folder / contracts.ROUNDS / contracts.ROUND_ALLOCATION)
    log_path = folder / contracts.TRAIN_LOG
    if log_path.exists():
        log = contracts.read_train_log(log_path)
        if "loss" in log.columns and len(log):
            doc.heading("Training", 2)
            doc.image("loss.png", plots.loss_curve(log), "training loss per step")
    if not doc.blocks:
        raise FileNotFoundError(
            f"{folder}: nothing to report (no summary.json, metrics.json, allocation.csv, "
            "train_log.csv nor results.csv)"
        )
    return doc


def _add_rounds(doc: Document, curve, alloc_path: Path) -> None:
    """The learning curve (every metric against labels so far) and the per-round allocation."""
    import pandas as pd

    from labelwise.report.table import HEADLINE, is_quality_metric

    doc.heading("Rounds", 2)
    metrics = [c for c in curve.columns if c not in ("round", "budget", "labels") and is_quality_metric(c)]
    primary = next((m for m in HEADLINE if m in metrics), metrics[0] if metrics else None)
    if primary is not None:
        points = list(zip(curve["labels"].astype(float), curve[primary].astype(float)))
        doc.image("rounds_curve.png", plots.learning_curves({"this run": {"rounds": points}}, primary),
                  f"{primary} against labels so far (round 0: the base model)")
    cols = ["round", "budget", "labels"] + metrics
    doc.table([literal(c) for c in cols], [[_cell(v) for v in r] for r in curve[cols].itertuples(index=False, name=None)])
    if alloc_path.exists():
        table = pd.read_csv(alloc_path).pivot_table(index="task", columns="round", values="selected", aggfunc="sum")
        doc.heading("Per-round allocation", 3)
        doc.table(["task"] + [f"round {r}" for r in table.columns],
                  [[literal(str(t))] + [str(int(v)) for v in row] for t, row in zip(table.index, table.fillna(0).values)])


def selection_rows(sel: dict) -> list[list[str]]:
    """selection.json as a two-column table a person reads (the raw file keeps the rest)."""
    params = ", ".join(f"{k}={v}" for k, v in (sel.get("params") or {}).items()) or "none"
    excluded = sel.get("excluded") or {}
    rows = [
        ["selector", literal(sel.get("selector", ""))],
        ["parameters", literal(params)],
        ["budget", f"{sel.get('budget')} (seed {sel.get('seed')})"],
        ["selected", f"{sel.get('selected')} prompts from {sel.get('tasks_selected')} tasks"],
    ]
    if (sel.get("confidence") or {}).get("definition"):
        rows.append(["task confidence", literal(sel["confidence"]["definition"])])
    if excluded.get("count"):
        rows.append(["not selectable", f"{excluded['count']} prompts the scorer could not score (listed in selection.json)"])
    return rows


def _cell(v) -> str:
    """A cell of allocation.csv: numbers formatted, text (task names) shown as is."""
    return f"{v:.4g}" if isinstance(v, float) else literal(v)
