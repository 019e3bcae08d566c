"""Per-task budget allocations (paper section 4.2-4.4), exact, over task sizes.

* :func:`water_fill` - Task Diversity: minimize max_t a_t s.t. sum a_t = B, a_t <= |X_t|.
* :func:`weighted_allocation` - Weighted Task Diversity: a_t = clamp(C / conf_t, base_t, |X_t|)
  with C solved exactly (piecewise-linear) so that sum a_t = B.
* :func:`round_robin` - Algorithm 1: ceil the allocation, order tasks by allocation
  ascending, take one uniformly random unselected prompt per eligible task per round,
  stop at exactly B.
All of them are O(T log T) or O(N) numpy, no Python loop over prompts.
"""

from __future__ import annotations

import numpy as np

ROUND_TOL = 1e-9


def water_fill(sizes: np.ndarray, budget: float) -> np.ndarray:
    """Task Diversity allocation: small tasks saturate, the rest share the budget equally."""
    sizes = np.asarray(sizes, dtype=np.float64)
    total = sizes.sum()
    if budget > total + 1e-9:
        raise ValueError(f"budget {budget} exceeds the pool size {int(total)}")
    if len(sizes) == 0:
        return sizes
    s = np.sort(sizes)
    t = len(s)
    # level if the k smallest tasks are saturated: (B - sum of k smallest) / (T - k)
    before = np.concatenate([[0.0], np.cumsum(s)[:-1]])
    level = (budget - before) / (t - np.arange(t))
    ok = level <= s  # the k-th smallest task is not saturated at that level
    k = int(np.argmax(ok)) if ok.any() else t - 1
    return np.minimum(sizes, level[k])


def weighted_allocation(sizes: np.ndarray, log_conf: np.ndarray, budget: float, base: float = 5.0) -> tuple[np.ndarray, float]:
    """WTD allocation a_t = clamp(C * w_t, min(base, |X_t|), |X_t|) with w_t = 1 / conf_t.

    Returns (allocation, log C-scale) where the weights are normalized by the largest
    confidence so that nothing overflows (C absorbs the scale). Requires
    sum_t min(base, |X_t|) <= B <= sum_t |X_t| (callers check and explain).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    log_conf = np.asarray(log_conf, dtype=np.float64)
    lo = np.minimum(base, sizes)
    if budget < lo.sum() - 1e-9 or budget > sizes.sum() + 1e-9:
        raise ValueError(f"budget {budget} outside [{lo.sum()}, {sizes.sum()}]")
    w = np.exp(log_conf.min() - log_conf)  # 1/conf_t scaled into (0, 1]; 0 only on underflow
    with np.errstate(divide="ignore"):
        a = np.where(w > 0, lo / w, np.inf)  # C where the task leaves its lower clamp
        b = np.where(w > 0, sizes / w, np.inf)  # C where it reaches its size
    bps = np.unique(np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]]))
    if len(bps) == 0:
        return lo.copy(), 0.0
    f = _clamped_sums(bps, a, b, lo, sizes, w)
    j = int(np.searchsorted(f, budget - 1e-9 * max(1.0, budget)))  # first breakpoint with f >= B
    if j >= len(bps):
        c = bps[-1]
    elif j == 0:
        c = bps[0]
    else:
        c0, c1, f0, f1 = bps[j - 1], bps[j], f[j - 1], f[j]
        c = c0 + (budget - f0) * (c1 - c0) / (f1 - f0) if f1 > f0 else c1
    alloc = np.clip(c * w, lo, sizes)
    return alloc, float(c)


def _clamped_sums(cs, a, b, lo, sizes, w):
    """sum_t clamp(c * w_t, lo_t, size_t) for every c in cs (sorted), in O((T + len(cs)) log T)."""
    ia = np.argsort(a)
    a_s, lo_a, w_a = a[ia], lo[ia], w[ia]
    ib = np.argsort(b)
    b_s, n_b, w_b = b[ib], sizes[ib], w[ib]
    # tasks with a_t >= c sit at lo; tasks with b_t <= c sit at size; the rest are c * w_t
    k_a = np.searchsorted(a_s, cs, side="left")  # a_t < c for the first k_a
    k_b = np.searchsorted(b_s, cs, side="right")  # b_t <= c for the first k_b
    lo_above = np.concatenate([np.cumsum(lo_a[::-1])[::-1], [0.0]])[k_a]
    n_below = np.concatenate([[0.0], np.cumsum(n_b)])[k_b]
    w_a_below = np.concatenate([[0.0], np.cumsum(w_a)])[k_a]
    w_b_below = np.concatenate([[0.0], np.cumsum(w_b)])[k_b]
    return lo_above + n_below + cs * (w_a_below - w_b_below)


def ceil_allocation(alloc: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Elementwise ceil (with a tiny tolerance for float noise), capped at the task size."""
    return np.minimum(np.ceil(np.asarray(alloc) - ROUND_TOL), sizes).astype(np.int64)


def task_order(alloc: np.ndarray, names: list[str] | None = None) -> np.ndarray:
    """Tasks by allocation ascending (Algorithm 1); ties by the ceiled allocation, then task index."""
    caps = np.ceil(np.asarray(alloc) - ROUND_TOL)
    return np.lexsort((np.arange(len(alloc)), np.round(alloc, 9), caps))


def round_robin_counts(caps: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """How many prompts each task gets when Algorithm 1 stops at exactly ``budget``."""
    caps = np.asarray(caps, dtype=np.int64)
    if caps.sum() < budget:
        raise ValueError(f"allocations sum to {caps.sum()} < budget {budget}")
    # R full rounds give sum min(caps, R); find the largest R with that <= budget
    s = np.sort(caps)
    t = len(s)
    before = np.concatenate([[0], np.cumsum(s)[:-1]])
    # full(R) for R in [s[k-1], s[k]] = before[k] + R * (t - k)
    lo, hi = 0, int(s[-1])
    while lo < hi:  # binary search over R (O(T log max))
        mid = (lo + hi + 1) // 2
        k = np.searchsorted(s, mid, side="left")
        full = before[k] + mid * (t - k) if k < t else s.sum()
        if full <= budget:
            lo = mid
        else:
            hi = mid - 1
    rounds = lo
    counts = np.minimum(caps, rounds)
    rem = budget - int(counts.sum())
    if rem:
        eligible = order[caps[order] > rounds]  # the tasks still taking in round R+1, in order
        counts[eligible[:rem]] += 1
    return counts


def round_robin(task_codes: np.ndarray, alloc: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm 1: row indices in selection order, exactly ``budget`` of them.

    Within a task the picks are a uniformly random order without replacement (a seeded
    permutation of the canonical rows); in round r every task whose count is below its
    ceiled allocation and its size takes its r-th pick, tasks in ascending allocation.
    """
    t = len(alloc)
    sizes = np.bincount(task_codes, minlength=t)
    caps = ceil_allocation(alloc, sizes)
    order = task_order(alloc)
    counts = round_robin_counts(caps, order, budget)
    # random order inside each task: random permutation, then stable sort by task
    perm = rng.permutation(len(task_codes))
    by_task = perm[np.argsort(task_codes[perm], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # positions of the first counts[t] rows of every task inside by_task
    tasks_rep = np.repeat(np.arange(t), counts)
    within = np.arange(len(tasks_rep)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = by_task[starts[tasks_rep] + within]
    pos = np.empty(t, dtype=np.int64)
    pos[order] = np.arange(t)
    sel_order = np.lexsort((pos[tasks_rep], within))  # round first, then task position
    return rows[sel_order]
