"""Did a selector beat the reference? Paired differences over seeds, plain pandas and scipy.

Trials of one sweep with the same seed share the pool, the scores, the training randomness
and the evaluation; only the selection differs. So the difference selector − reference at
the same seed and budget removes what the seed does to both, and the statistics are those of
the paired differences: their mean, a 95% t interval, a paired t-test p-value, and how many
seeds a paired t-test would need to detect a difference of the observed size at 80% power.

The per-task breakdown splits the difference of a macro metric (a mean over tasks) into its
tasks, beside how many prompts each side selected from the task.
"""

from __future__ import annotations

import math

from labelwise.contracts import FULL, TASK_PREFIX
from labelwise.report.table import lower_is_better, with_selector

REFERENCES = ("random", "task_diversity")
ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 1000


def diff_stats(d) -> dict:
    """mean, sd, 95% CI and two-sided paired t-test p-value of the differences ``d``."""
    import numpy as np
    from scipy import stats

    d = np.asarray(d, dtype=float)
    n = len(d)
    out = {"n": n, "mean": float(d.mean()) if n else math.nan, "sd": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd"] = sd
    if sd == 0:  # every seed gave the same difference: the interval is that point
        out.update(ci_low=out["mean"], ci_high=out["mean"], p=1.0 if out["mean"] == 0 else 0.0)
        return out
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * se
    t = out["mean"] / se
    out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half, p=float(2 * stats.t.sf(abs(t), n - 1)))
    return out


def seeds_needed(mean: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Smallest number of seeds at which a two-sided paired t-test detects ``mean`` with
    ``power``, if the differences have standard deviation ``sd`` (noncentral t). None when
    there is nothing to detect (mean 0 or an undefined sd) or more than MAX_SEEDS are needed."""
    from scipy import stats

    if not (math.isfinite(mean) and math.isfinite(sd)) or mean == 0:
        return None
    if sd == 0:
        return 2
    effect = abs(mean) / sd
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1
        crit = stats.t.ppf(1 - alpha / 2, df)
        nc = effect * math.sqrt(n)
        if stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc) >= power:
            return n
    return None


def verdict(row: dict, lower: bool) -> str:
    lo, hi = row["ci_low"], row["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "too few seeds"
    if (hi < 0) if lower else (lo > 0):
        return "better"
    if (lo > 0) if lower else (hi < 0):
        return "worse"
    return "no detectable difference"


def _values(df, selector: str, budget: int, column: str):
    g = df[(df["selector"] == selector) & (df["budget"] == budget)]
    return g.dropna(subset=[column]).groupby("seed")[column].mean()


def differences(df, metric: str, selector: str, reference: str, budget: int):
    """selector − reference on ``metric`` at ``budget``, per seed both have (a Series indexed
    by seed, ascending). ``df`` must carry the ``selector`` column (table.with_selector)."""
    mine, ref = _values(df, selector, budget, metric), _values(df, reference, budget, metric)
    seeds = sorted(set(mine.index) & set(ref.index))
    return mine.loc[seeds] - ref.loc[seeds]


def paired_rows(df, metric: str, references=REFERENCES) -> list[dict]:
    """One row per (reference, budget, selector): the paired statistics of selector − reference."""
    df = with_selector(df)
    df = df[df["strategy"] != FULL]
    lower = lower_is_better(metric)
    rows = []
    selectors = sorted(df["selector"].unique())
    for reference in references:
        if reference not in selectors:
            continue
        for budget in sorted(int(b) for b in df["budget"].unique()):
            for selector in selectors:
                if selector == reference:
                    continue
                diff = differences(df, metric, selector, reference, budget)
                if diff.empty:
                    continue
                row = {"selector": selector, "reference": reference, "budget": budget,
                       "seeds": [int(s) for s in diff.index], **diff_stats(diff.to_numpy())}
                row["seeds_for_80_power"] = seeds_needed(row["mean"], row["sd"])
                row["verdict"] = verdict(row, lower)
                rows.append(row)
    return rows


def per_task_metric(metric: str) -> str:
    """The per-task column behind a macro or micro metric: heldout.nll_macro -> heldout.nll."""
    for suffix in ("_macro", "_micro"):
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def task_names(df) -> list[str]:
    return sorted({c[len(TASK_PREFIX):].split(":", 1)[0] for c in df.columns if c.startswith(TASK_PREFIX)})


def per_task_rows(df, metric: str, selector: str, reference: str, budget: int) -> list[dict]:
    """Per task: mean over shared seeds of the task's metric difference selector − reference,
    and the prompts each selected from the task. Empty when the results carry no per-task
    columns for ``metric``."""
    df = with_selector(df)
    key = per_task_metric(metric)
    rows = []
    for task in task_names(df):
        col = f"{TASK_PREFIX}{task}:{key}"
        sel_col = f"{TASK_PREFIX}{task}:selected"
        if col not in df.columns:
            continue
        mine, ref = _values(df, selector, budget, col), _values(df, reference, budget, col)
        seeds = sorted(set(mine.index) & set(ref.index))
        if not seeds:
            continue
        d = (mine.loc[seeds] - ref.loc[seeds]).to_numpy()
        row = {"task": task, "n": len(seeds), "mean": float(d.mean()),
               "se": float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan}
        if sel_col in df.columns:  # over the same seeds as the difference
            row["selected"] = float(_values(df, selector, budget, sel_col).reindex(seeds).mean())
            row["selected_reference"] = float(_values(df, reference, budget, sel_col).reindex(seeds).mean())
        rows.append(row)
    return rows
