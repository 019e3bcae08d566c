"""Per-task budget allocations (paper section 4.2-4.4), exact, over task sizes.

* :func:`water_fill` - Task Diversity: minimize max_t a_t s.t. sum a_t = B, a_t <= |X_t|.
* :func:`weighted_allocation` - Weighted Task Diversity: a_t = clamp(C / conf_t, base_t, |X_t|)
  with C solved exactly in log space so that sum a_t = B for any spread of confidences.
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
    """WTD allocation a_t = clamp(C / conf_t, min(base, |X_t|), |X_t|) with sum_t a_t = B, exactly.

    Returns (allocation, log C). Requires sum_t min(base, |X_t|) <= B <= sum_t |X_t| (callers
    check and explain). Exact for any spread of confidences: the solve works in log C, and
    the free tasks share what the clamped ones leave as a softmax of -log conf_t, so no sum
    of weights of very different sizes is ever subtracted (task log-confidences of -0.05 and
    -400 are both normal).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    log_w = -np.asarray(log_conf, dtype=np.float64)  # log of the weight 1 / conf_t
    lo = np.minimum(base, sizes)
    if budget < lo.sum() - 1e-9 * max(1.0, budget) or budget > sizes.sum() + 1e-9 * max(1.0, budget):
        raise ValueError(f"budget {budget} outside [{lo.sum()}, {sizes.sum()}]")
    if not np.isfinite(log_w).all():
        raise ValueError("task log-confidences must be finite")
    with np.errstate(divide="ignore"):
        leave = np.log(lo) - log_w  # log C where a task leaves its lower clamp (-inf when base is 0)
    full = np.log(sizes) - log_w  # log C where it reaches its size
    points = np.unique(np.concatenate([leave[np.isfinite(leave)], full]))
    # the first breakpoint where the clamped sum reaches B (the sum never falls as C grows)
    k = _first_reaching(points, log_w, lo, sizes, budget)
    if k == len(points):  # only when B = N up to rounding: every task at its size
        return sizes.copy(), float(points[-1])
    below = points[k - 1] if k > 0 else points[0] - 1.0
    mid = 0.5 * (below + points[k])  # inside the segment: which tasks are free is fixed there
    at_lo, at_size = mid <= leave, mid >= full
    free = ~(at_lo | at_size)
    alloc = np.where(at_size, sizes, lo)
    if not free.any():  # B sits exactly on a breakpoint (B = sum of the clamps)
        return alloc, float(points[k])
    rest = budget - alloc[~free].sum()  # what the free tasks share: a sum of clamps, no cancellation
    if rest <= 0:  # B = 0 with base 0: nothing to share
        return alloc, float("-inf")
    lw = log_w[free]
    share = np.exp(lw - lw.max())
    alloc[free] = np.clip(rest * share / share.sum(), lo[free], sizes[free])
    log_c = float(np.log(rest) - lw.max() - np.log(share.sum()))
    return alloc, log_c


def _clamped_sum(log_c: float, log_w: np.ndarray, lo: np.ndarray, sizes: np.ndarray) -> float:
    """sum_t clamp(exp(log C + log w_t), lo_t, size_t): a sum of positive terms, exact enough."""
    with np.errstate(over="ignore"):
        return float(np.clip(np.exp(log_c + log_w), lo, sizes).sum())


def _first_reaching(points, log_w, lo, sizes, budget) -> int:
    """Index of the first sorted breakpoint whose clamped sum is >= B (binary search, O(T log T))."""
    tol = 1e-12 * max(1.0, budget)
    a, b = 0, len(points)
    while a < b:
        m = (a + b) // 2
        if _clamped_sum(points[m], log_w, lo, sizes) >= budget - tol:
            b = m
        else:
            a = m + 1
    return a


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


def random_by_task(task_codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every row, grouped by task (ascending), a uniformly random order inside each task."""
    perm = rng.permutation(len(task_codes))
    return perm[np.argsort(task_codes[perm], kind="stable")]


def round_robin(task_codes: np.ndarray, alloc: np.ndarray, budget: int, rng: np.random.Generator,
                within=None) -> np.ndarray:
    """Algorithm 1: row indices in selection order, exactly ``budget`` of them.

    Within a task the picks are a uniformly random order without replacement (a seeded
    permutation of the canonical rows); in round r every task whose count is below its
    ceiled allocation and its size takes its r-th pick, tasks in ascending allocation.
    ``within(counts)``, when given, returns that grouping instead (every row, grouped by task
    ascending, each task's first counts[t] rows its picks in rank order: within_task.py);
    the counts per task are the same either way.
    """
    t = len(alloc)
    sizes = np.bincount(task_codes, minlength=t)
    caps = ceil_allocation(alloc, sizes)
    order = task_order(alloc)
    counts = round_robin_counts(caps, order, budget)
    by_task = random_by_task(task_codes, rng) if within is None else within(counts)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # positions of the first counts[t] rows of every task inside by_task
    tasks_rep = np.repeat(np.arange(t), counts)
    within = np.arange(len(tasks_rep)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = by_task[starts[tasks_rep] + within]
    pos = np.empty(t, dtype=np.int64)
    pos[order] = np.arange(t)
    sel_order = np.lexsort((pos[tasks_rep], within))  # round first, then task position
    return rows[sel_order]
