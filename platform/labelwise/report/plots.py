"""Report figures, each returned as PNG bytes (matplotlib Agg, no display needed)."""

from __future__ import annotations

import io


def _figure(width=6.4, height=4.0):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def metric_curves(table: dict) -> bytes:
    """Metric versus budget, one line per selector (mean ± standard error over seeds).

    ``table`` is :func:`labelwise.report.table.paper_table`'s output.
    """
    plt, fig, ax = _figure()
    for selector, cells in table["rows"]:
        budgets = sorted(cells)
        means = [cells[b]["mean"] for b in budgets]
        errs = [cells[b]["se"] for b in budgets]
        ax.errorbar(budgets, means, yerr=errs, marker="o", capsize=3, label=selector)
    full = table.get("full")
    if full is not None:
        ax.axhline(full["mean"], color="black", linestyle="--", linewidth=1,
                   label=f"full pool ({full['budget']})")
    if table.get("base_model") is not None:
        ax.axhline(table["base_model"], color="gray", linestyle=":", linewidth=1, label="base model")
    ax.set_xlabel("annotation budget (prompts)")
    ax.set_ylabel(table["metric"])
    ax.set_title(f"{table['metric']} vs budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def allocation_chart(allocations: dict) -> bytes:
    """Per-task prompts selected, one bar group per task and one bar per run.

    ``allocations``: ``{label: DataFrame}`` of allocation.csv tables (task, pool_size,
    selected, ...); the pool size is drawn as a light bar behind.
    """
    import numpy as np

    labels = list(allocations)
    tasks = sorted(set().union(*(set(a["task"]) for a in allocations.values()))) if labels else []
    width = max(6.4, 0.35 * len(tasks) * max(1, len(labels)) + 2)
    plt, fig, ax = _figure(width=min(width, 24), height=4.5)
    x = np.arange(len(tasks))
    first = next(iter(allocations.values()), None)
    if first is not None and "pool_size" in first.columns:
        sizes = first.set_index("task")["pool_size"].reindex(tasks).fillna(0)
        ax.bar(x, sizes.values, width=0.9, color="#dddddd", label="pool size")
    w = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        a = allocations[label].set_index("task")
        col = "selected" if "selected" in a.columns else "allocated"
        ax.bar(x - 0.4 + w * (i + 0.5), a[col].reindex(tasks).fillna(0).values, width=w, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("prompts")
    ax.set_title("per-task allocation")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def bars(table: dict, budget: int | None = None) -> bytes:
    """Bars per selector at one budget (default: the largest), mean ± standard error."""
    budgets = table["budgets"]
    budget = budget if budget is not None else (max(budgets) if budgets else None)
    names, means, errs = [], [], []
    for selector, cells in table["rows"]:
        if budget in cells:
            names.append(selector)
            means.append(cells[budget]["mean"])
            errs.append(cells[budget]["se"])
    if table.get("full") is not None:
        names.append("full pool")
        means.append(table["full"]["mean"])
        errs.append(table["full"]["se"])
    plt, fig, ax = _figure(width=max(6.4, 0.9 * len(names) + 2))
    ax.bar(range(len(names)), means, yerr=errs, capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(table["metric"])
    ax.set_title(f"{table['metric']} at budget {budget}")
    ax.grid(axis="y", alpha=0.3)
    return _png(plt, fig)


def loss_curve(log) -> bytes:
    """Training loss per step from train_log.csv (a DataFrame with step and loss)."""
    plt, fig, ax = _figure()
    x = log["step"] if "step" in log.columns else range(len(log))
    ax.plot(x, log["loss"], label="train loss")
    for col in log.columns:
        if col != "loss" and "loss" in col and log[col].notna().any():
            ax.plot(x, log[col], label=col)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def learning_curves(curves: dict, metric: str) -> bytes:
    """A metric against cumulative labels: per selector family one colour, one batch solid
    and each rounds curve dashed (``curves``: labelwise.report.rounds_report.curves)."""
    plt, fig, ax = _figure()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (family, lines) in enumerate(sorted(curves.items())):
        for name, points in lines.items():
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", color=colors[i % len(colors)], linestyle="-" if name == "one batch" else "--",
                    label=f"{family}: {name}")
    ax.set_xlabel("labels so far (prompts)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: one batch vs rounds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(plt, fig)
