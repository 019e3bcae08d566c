"""Write a Selection's files (the select stage commits them as one unit)."""

from __future__ import annotations

from pathlib import Path

from labelwise import contracts, runio

from labelwise.contracts import ALLOCATION_PNG, SELECTION_JSON  # noqa: F401  (stage.py reads them here)


def annotate_rows(selection, pool_path: str | Path) -> list[dict]:
    """{id, task, prompt} for every selected id, in rank order; prompts from pool.parquet."""
    import pyarrow.parquet as pq

    pool_path = Path(pool_path)
    if not pool_path.exists():
        raise FileNotFoundError(f"{pool_path}: the pool is needed for the prompts; run `labelwise pool` first")
    pool = pq.read_table(pool_path, columns=["id", "prompt"]).to_pydict()
    prompts = dict(zip(pool["id"], pool["prompt"]))
    missing = [i for i in selection.ids if i not in prompts]
    if missing:
        raise ValueError(
            f"{pool_path}: {len(missing)} selected id(s) are not in the pool (scores from another pool?): "
            + ", ".join(missing[:10])
        )
    return [{"id": i, "task": t, "prompt": prompts[i]} for i, t in zip(selection.ids, selection.tasks)]


def plot_allocation(selection, path: str | Path, max_tasks: int = 40) -> Path:
    """Per-task bar chart of selected prompts (like the paper's Figure 4), most first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = selection.allocation.sort_values(["selected", "task"], ascending=[False, True])
    shown = df.head(max_tasks)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(shown) + 2), 4.5))
    ax.bar(range(len(shown)), shown["selected"], color="#4c72b0", label="selected")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([str(t)[:18] for t in shown["task"]], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("prompts selected")
    more = len(df) - len(shown)
    ax.set_title(
        f"{selection.selector}, B={selection.budget}, seed={selection.seed}: {len(df)} tasks"
        + (f" (top {len(shown)} shown)" if more > 0 else ""),
        fontsize=9,
    )
    if shown["confidence"].notna().any():
        ax2 = ax.twinx()
        ax2.plot(range(len(shown)), shown["confidence"], "o", color="#dd8452", ms=3, label="task confidence")
        ax2.set_ylabel("task confidence (mean probability)", fontsize=8)
        ax2.set_ylim(bottom=0)
    fig.tight_layout()
    with runio.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def write_outputs(selection, out_dir: str | Path, pool_path: str | Path, request: dict, fault=lambda: None) -> Path:
    """Every file of a selection into ``out_dir`` (the stage's staging folder); ``fault`` is
    called after each write (labelwise.manifest's test hook)."""
    import pandas as pd

    out_dir = Path(out_dir)
    rows = annotate_rows(selection, pool_path)
    sel_df = pd.DataFrame({"id": selection.ids, "task": selection.tasks, "rank": range(len(selection.ids))})
    sel_df["rank"] = sel_df["rank"].astype("int64")
    for name, values in getattr(selection, "columns", {}).items():  # the scores behind each pick (thtb, within_task)
        sel_df[name] = values
    runio.write_parquet(out_dir / contracts.SELECTION, sel_df)
    fault()
    runio.write_csv(out_dir / contracts.ALLOCATION, selection.allocation)
    fault()
    runio.write_jsonl(out_dir / contracts.TO_ANNOTATE, rows)
    fault()
    plot_allocation(selection, out_dir / ALLOCATION_PNG)
    fault()
    runio.write_json(out_dir / SELECTION_JSON, {**selection.record(), "request": request})
    fault()
    return out_dir / contracts.SELECTION
