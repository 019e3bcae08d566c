"""Confidence signals: how sure the base model is of a prompt, and of a task.

``select.params.confidence`` picks one for every selector that weighs tasks or prompts by
confidence (weighted_task_diversity, activeit, dpp's quality). Every signal is a per-prompt
log-confidence built from what the scorer already wrote to scores.parquet; a task's
confidence is the mean of the prompts' confidences, computed in log space
(logsumexp - log n), exactly as the paper's mean of probabilities.

The paper's signal (``sequence``) is the probability of the whole greedy answer, so it
shrinks geometrically with the answer's length: tasks with long answers look unsure
whatever the model knows. The other signals do not scale with length.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.registry import SelectorParamError

SIGNALS = {
    "sequence": "mean over the task's prompts of exp(logconf), the greedy answer's sequence "
    "probability (the paper's; shrinks with answer length)",
    "per_token": "mean over the task's prompts of exp(logconf / n_tokens), the geometric mean "
    "token probability of the greedy answer",
    "mean_entropy": "mean over the task's prompts of exp(-mean_entropy), the next-token "
    "entropy (nats) averaged over the answer's tokens, as a probability-like confidence",
    "mean_margin": "mean over the task's prompts of mean_margin, the top-1 minus top-2 "
    "probability averaged over the answer's tokens",
    "length_calibrated": "mean over the task's prompts of exp(logconf - (a + b * n_tokens)), "
    "the sequence confidence relative to what answers of that length get in this pool "
    "(a, b: least squares of logconf on n_tokens over the pool; recorded)",
}
NAMES = tuple(SIGNALS)
# which score columns each signal reads
COLUMNS = {
    "sequence": ("logconf",),
    "per_token": ("logconf", "n_tokens"),
    "mean_entropy": ("mean_entropy",),
    "mean_margin": ("mean_margin",),
    "length_calibrated": ("logconf", "n_tokens"),
}
PROBABILITY = {"sequence", "per_token", "mean_entropy", "mean_margin"}  # values in (0, 1]
MARGIN_FLOOR = 1e-12  # a margin of exactly 0 at every token would make the weight infinite


def resolve(confidence: str, length_normalized: bool) -> str:
    """Check ``confidence`` (and the older ``length_normalized: true``, the same as per_token)."""
    if not isinstance(length_normalized, bool):
        raise SelectorParamError("length_normalized", f"must be true or false, got {length_normalized!r}")
    if confidence not in SIGNALS:
        raise SelectorParamError("confidence", f"must be one of {', '.join(map(repr, NAMES))}, got {confidence!r}")
    if length_normalized:
        if confidence not in ("sequence", "per_token"):
            raise SelectorParamError(
                "length_normalized",
                f"true means confidence: per_token, which contradicts confidence: {confidence}; set only confidence",
            )
        return "per_token"
    return confidence


def length_fit(table) -> tuple[float, float]:
    """(a, b) of the least-squares line logconf ~ a + b * n_tokens over the table's prompts."""
    lc = table.require_finite("logconf")
    nt = table.require_finite("n_tokens")
    if len(lc) == 0:
        return 0.0, 0.0
    x = nt - nt.mean()
    var = float((x * x).sum())
    b = float((x * (lc - lc.mean())).sum() / var) if var > 0 else 0.0
    return float(lc.mean() - b * nt.mean()), b


def prompt_log_confidence(table, signal: str = "sequence") -> np.ndarray:
    """Per-prompt log-confidence under ``signal`` (columns checked finite, ids named if not)."""
    for column in COLUMNS[signal]:
        table.require_finite(column)
    if signal == "sequence":
        return table.column("logconf").astype(np.float64)
    if signal == "per_token":
        return table.column("logconf") / np.maximum(table.column("n_tokens"), 1.0)
    if signal == "mean_entropy":
        return -np.maximum(table.column("mean_entropy").astype(np.float64), 0.0)
    if signal == "mean_margin":
        return np.log(np.clip(table.column("mean_margin").astype(np.float64), MARGIN_FLOOR, 1.0))
    a, b = length_fit(table)
    return table.column("logconf") - (a + b * table.column("n_tokens"))


def task_log_confidence(table, signal: str = "sequence") -> np.ndarray:
    """log conf_t = log(mean over the task of conf(x)), computed as logsumexp - log n."""
    return task_log_mean_exp(table, prompt_log_confidence(table, signal))


def task_log_mean_exp(table, log_values: np.ndarray) -> np.ndarray:
    """Per task, log(mean(exp(v))) without overflow or underflow; NaN for an empty task."""
    codes = table.task_codes
    t = table.n_tasks
    mx = np.full(t, -np.inf)
    with np.errstate(invalid="ignore"):
        np.maximum.at(mx, codes, log_values)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    s = np.bincount(codes, weights=np.exp(log_values - safe[codes]), minlength=t)
    n = np.bincount(codes, minlength=t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(s) + safe - np.log(n)


def describe(table, signal: str) -> dict:
    """What selection.json records about the signal: its name, definition and fit."""
    out = {"kind": signal, "definition": SIGNALS[signal]}
    if signal == "length_calibrated":
        a, b = length_fit(table)
        out["fit"] = {"intercept": a, "slope_per_token": b}
    return out
