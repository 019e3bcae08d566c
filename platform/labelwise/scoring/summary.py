"""Per-task summary of a scores table: prompts, errors, mean confidence, answer length."""

from __future__ import annotations

import math


def mean_logconf(values) -> float:
    """log of the mean of exp(values), computed in log space (no underflow)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan
    top = v.max()
    return float(top + np.log(np.exp(v - top).sum()) - np.log(v.size))


def task_summary(scores) -> list[dict]:
    """One dict per task (sorted by task): prompts, scored, errors, log_mean_conf, mean_conf,
    mean_answer_tokens, eos_rate. ``scores`` is a pandas DataFrame in the scores schema."""
    rows = []
    for task, g in scores.groupby("task", sort=True):
        ok = g[g["error"].isna()]
        lmc = mean_logconf(ok["logconf"].to_numpy())
        rows.append(
            {
                "task": str(task),
                "prompts": int(len(g)),
                "scored": int(len(ok)),
                "errors": int(len(g) - len(ok)),
                "log_mean_conf": lmc,
                "mean_conf": math.exp(lmc) if not math.isnan(lmc) else math.nan,
                "mean_answer_tokens": float(ok["n_tokens"].mean()) if len(ok) else math.nan,
                "eos_rate": float(ok["eos"].mean()) if len(ok) else math.nan,
            }
        )
    return rows


def format_summary(rows: list[dict], run: dict) -> str:
    """A plain-text table for people, plus the run's throughput line."""
    head = f"{'task':<32} {'prompts':>7} {'errors':>6} {'log mean conf':>13} {'mean conf':>10} {'answer tok':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['task'][:32]:<32} {r['prompts']:>7} {r['errors']:>6} {r['log_mean_conf']:>13.4f} "
            f"{r['mean_conf']:>10.4g} {r['mean_answer_tokens']:>10.1f}"
        )
    tps = run.get("tokens_per_s")
    lines.append(
        f"scored {run.get('scored_now', 0)} prompts this run ({run.get('cached', 0)} from cache), "
        f"{run.get('generated_tokens', 0)} tokens in {run.get('seconds', 0):.1f} s"
        + (f" = {tps:.1f} tokens/s, {run.get('prompts_per_s', 0):.2f} prompts/s" if tps else "")
        + f"; truncated {run.get('truncated', 0)}"
        + (" (their start cut, the end kept)" if run.get("truncated") else "")
        + f", rejected {run.get('rejected', 0)}, errors {run.get('errors', 0)}"
        + (f", retried {run['retried']}" if run.get("retried") else "")
    )
    if run.get("retryable_errors"):
        lines.append(
            f"{run['retryable_errors']} prompt(s) failed for a reason other than their length "
            "(see the error column); rerun `labelwise score` to score them again"
        )
    return "\n".join(lines)
