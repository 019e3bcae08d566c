"""The results table of a sweep, and the numbers a report shows from it.

A results table has one row per trial. Columns:

* ``strategy`` (str), ``budget`` (int), ``seed`` (int): required;
* ``base`` (number or empty): the WTD base allocation; empty for other selectors;
* ``selector`` (str, optional): display label (defaults to the strategy, plus ``base=..``);
* metric columns ``<benchmark>.<metric>`` (numbers), e.g. ``mmlu.accuracy``,
  ``heldout.loss``; ``base_model.<benchmark>.<metric>`` holds the untrained model's value;
* ``task:<task>:<benchmark>.<metric>`` and ``task:<task>:selected``: per-task metrics and
  selected counts (the paired per-task breakdown reads them; not headline metrics);
* anything else (``trial``, ``run_dir``, ``status``...) is carried but not aggregated.

The full-pool reference trials have ``strategy == "full"`` and ``budget`` = pool size.

Everything here is plain pandas over that table: no plotting, no files.
"""

from __future__ import annotations

import math

from labelwise.contracts import BASE_PREFIX, FULL, ROUND_PREFIX, TASK_PREFIX
from labelwise.contracts import RESULTS_REQUIRED as REQUIRED
NOT_METRICS = {"budget", "seed", "base", "trial_index", "pool_size", "train_time_s", "time_s"}
LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "error", "nll")
# The quality figures first, in this order; the first one present is a report's primary metric.
HEADLINE = ("mmlu.acc", "bbh.em", "heldout.nll_macro", "heldout.em_macro", "winrate.lc_win_rate", "winrate.win_rate")
PREFERRED_ORDER = ("mmlu.", "bbh.", "heldout.", "winrate.")
# Descriptive numbers an evaluation records beside its metrics: counts, lengths, fit parameters.
NOT_QUALITY = {"wins", "ties", "losses", "lc_theta", "lc_phi", "invalid_judgments", "position_consistency"}


def is_quality_metric(column: str) -> bool:
    """False for counts (``n``, ``n_*``), lengths (``len_*``) and other descriptive numbers."""
    name = column.rsplit(".", 1)[-1]
    return not (name == "n" or name.startswith(("n_", "len_")) or name in NOT_QUALITY)


def check_results(df, where: str = "results table"):
    """Raise ValueError naming the missing column or bad row, else return ``df``."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column {missing[0]!r} (needs {', '.join(REQUIRED)})")
    for col in ("budget", "seed"):
        bad = df[df[col].isna()]
        if len(bad):
            raise ValueError(f"{where}: row {int(bad.index[0])}: {col} is empty")
    return df


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit(".", 1)[-1].lower()
    return any(word in name for word in LOWER_IS_BETTER)


def metric_columns(df) -> list[str]:
    """Numeric ``benchmark.metric`` columns of the adapted model, most important first."""
    import pandas as pd

    cols = [
        c
        for c in df.columns
        if "." in c
        and not c.startswith((BASE_PREFIX, "grid:", TASK_PREFIX, ROUND_PREFIX))
        and c not in NOT_METRICS
        and is_quality_metric(c)
        and pd.api.types.is_numeric_dtype(df[c])
        and df[c].notna().any()
    ]

    def order(c):
        if c in HEADLINE:
            return (0, HEADLINE.index(c), c)
        for i, prefix in enumerate(PREFERRED_ORDER):
            if c.startswith(prefix):
                return (1 + i, 0, c)
        return (1 + len(PREFERRED_ORDER), 0, c)

    return sorted(cols, key=order)


def _given(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def selector_label(strategy: str, base=None, confidence=None, within_task=None) -> str:
    parts = []
    if _given(base):
        parts.append(f"base={int(base) if float(base).is_integer() else base}")
    if _given(confidence):
        parts.append(f"confidence={confidence}")
    if _given(within_task):
        parts.append(f"within_task={within_task}")
    return f"{strategy} ({', '.join(parts)})" if parts else str(strategy)


def with_selector(df):
    """A copy of ``df`` with a ``selector`` column (kept if present, else built)."""
    df = df.copy()
    if "selector" not in df.columns or df["selector"].isna().all():
        none = [None] * len(df)
        bases = df["base"] if "base" in df.columns else none
        confs = df["confidence"] if "confidence" in df.columns else none
        withins = df["within_task"] if "within_task" in df.columns else none
        df["selector"] = [selector_label(s, b, c, w) for s, b, c, w in zip(df["strategy"], bases, confs, withins)]
    else:
        df["selector"] = df["selector"].fillna(df["strategy"]).astype(str)
    df["budget"] = df["budget"].astype(int)
    return df


def stderr(values) -> float:
    """Standard error of the mean (0 for one value)."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) < 2:
        return 0.0
    return float(v.std(ddof=1) / math.sqrt(len(v)))


def aggregate(df, metric: str):
    """Mean, standard error and count over seeds per (selector, budget), full pool included.

    Returns a DataFrame with columns ``selector, strategy, budget, mean, se, n``.
    """
    import pandas as pd

    df = with_selector(check_results(df))
    rows = []
    for (selector, budget), g in df.groupby(["selector", "budget"], sort=True):
        values = g[metric].dropna().astype(float).tolist()
        if not values:
            continue
        rows.append(
            {
                "selector": selector,
                "strategy": g["strategy"].iloc[0],
                "budget": int(budget),
                "mean": sum(values) / len(values),
                "se": stderr(values),
                "n": len(values),
            }
        )
    return pd.DataFrame(rows, columns=["selector", "strategy", "budget", "mean", "se", "n"])


def base_model_value(df, metric: str) -> float | None:
    """The untrained model's value of ``metric`` (mean over rows that carry it)."""
    col = BASE_PREFIX + metric
    if col not in df.columns:
        return None
    v = df[col].dropna()
    return float(v.mean()) if len(v) else None


def paper_table(df, metric: str) -> dict:
    """The paper's Table 1/2 layout for one metric.

    Returns ``{"budgets": [...], "full": cell | None, "rows": [(selector, {budget: cell})]}``
    where a cell is ``{"mean", "se", "n", "rank"}``; rank 1 is the best selector at that
    budget (2 the second best), by mean, in the metric's direction.
    """
    agg = aggregate(df, metric)
    trials = agg[agg["strategy"] != FULL]
    full = agg[agg["strategy"] == FULL]
    budgets = sorted(int(b) for b in trials["budget"].unique())
    selectors = list(dict.fromkeys(_selector_order(trials)))
    cells = {s: {} for s in selectors}
    for r in trials.itertuples():
        cells[r.selector][r.budget] = {"mean": r.mean, "se": r.se, "n": r.n, "rank": None}
    reverse = not lower_is_better(metric)
    for b in budgets:
        ranked = sorted(
            (c["mean"], s) for s in selectors if (c := cells[s].get(b)) is not None
        )
        if reverse:
            ranked = ranked[::-1]
        distinct = sorted({m for m, _ in ranked}, reverse=reverse)
        for mean, s in ranked:
            cells[s][b]["rank"] = distinct.index(mean) + 1
    full_cell = None
    if len(full):
        values = df[(df["strategy"] == FULL)][metric].dropna().astype(float).tolist()
        full_cell = {
            "mean": sum(values) / len(values),
            "se": stderr(values),
            "n": len(values),
            "budget": int(full["budget"].max()),
            "rank": None,
        }
    return {
        "metric": metric,
        "budgets": budgets,
        "full": full_cell,
        "base_model": base_model_value(df, metric),
        "rows": [(s, cells[s]) for s in selectors],
    }


def _selector_order(trials) -> list[str]:
    """Random first (the reference), then the others in alphabetical order."""
    names = sorted(trials["selector"].unique())
    return sorted(names, key=lambda s: (not s.startswith("random"), s))


# ---------------------------------------------------------------- annotation saved

def budget_to_reach(curve: list[tuple[float, float]], target: float, lower: bool) -> float | None:
    """Smallest budget at which the piecewise-linear ``curve`` (budget, value) reaches ``target``.

    ``lower``: the metric improves downwards. None when the curve never reaches it.
    """
    pts = sorted(curve)
    if not pts:
        return None

    def reached(v):
        return v <= target if lower else v >= target

    if reached(pts[0][1]):
        return float(pts[0][0])
    for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
        if reached(v1):
            if v1 == v0:
                return float(b1)
            t = (target - v0) / (v1 - v0)
            return float(b0 + max(0.0, min(1.0, t)) * (b1 - b0))
    return None


def savings(df, metric: str, reference: str = "random") -> list[dict]:
    """Annotation saved at equal quality, per selector and budget.

    * vs random: the budget random needs to reach the selector's mean (linear interpolation
      on random's mean curve, which starts at the untrained model at budget 0 when known and
      ends at the full pool); saved = 1 - budget / that budget.
    * vs the full pool: when the selector's mean at this budget is at least the full pool's
      mean minus one standard error ("equal quality within noise"), saved = 1 - budget / pool.

    Each row: ``selector, budget, mean, random_budget, saved_vs_random, saved_vs_random_at_least,
    saved_vs_full``; a value of None means "not reached / not applicable".
    """
    table = paper_table(df, metric)
    lower = lower_is_better(metric)
    full = table["full"]
    ref_curve = []
    if table["base_model"] is not None:
        ref_curve.append((0.0, table["base_model"]))
    for selector, cells in table["rows"]:
        if selector == reference:
            ref_curve += [(float(b), c["mean"]) for b, c in cells.items()]
    has_reference = any(b > 0 for b, _ in ref_curve)
    if full is not None:
        ref_curve.append((float(full["budget"]), full["mean"]))
    out = []
    for selector, cells in table["rows"]:
        for b in table["budgets"]:
            c = cells.get(b)
            if c is None:
                continue
            row = {
                "selector": selector,
                "budget": b,
                "mean": c["mean"],
                "random_budget": None,
                "saved_vs_random": None,
                "saved_vs_random_at_least": False,
                "saved_vs_full": None,
            }
            if has_reference and selector != reference:
                need = budget_to_reach(ref_curve, c["mean"], lower)
                if need is None and full is not None:
                    # random never gets there, not even with the whole pool
                    row["saved_vs_random"] = 1 - b / full["budget"]
                    row["saved_vs_random_at_least"] = True
                elif need is not None and need > 0:
                    row["random_budget"] = need
                    row["saved_vs_random"] = 1 - b / need
            if full is not None and full["budget"] > 0:
                margin = full["se"]
                ok = c["mean"] <= full["mean"] + margin if lower else c["mean"] >= full["mean"] - margin
                if ok:
                    row["saved_vs_full"] = 1 - b / full["budget"]
            out.append(row)
    return out
