"""K-Center greedy (Sener & Savarese 2018): farthest-first traversal on prompt embeddings.

Exact greedy, O(N) memory. The first center is a seeded random prompt; every next center
is the prompt farthest (Euclidean) from its nearest center. Instead of updating all N
distances after every pick (N x d work per pick), distances are kept as upper bounds
(they only shrink) and a working set of the largest bounds is kept exact: a pick from the
working set is exact as soon as its distance is at least the largest stale bound outside
it. Refreshing the working set against many new centers is one chunked matrix product.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection.base import Choice, Selector, check_number
from labelwise.selection.threads import single_thread_blas


def sq_dists(x: np.ndarray, x_sq: np.ndarray, c: np.ndarray, c_sq: np.ndarray) -> np.ndarray:
    """Squared distances (len(x), len(c)) without forming differences."""
    d = x_sq[:, None] + c_sq[None, :] - 2.0 * (x @ c.T)
    return np.maximum(d, 0.0, out=d)


def farthest_first(x: np.ndarray, budget: int, rng: np.random.Generator, working_set: int = 4096,
                   chunk: int = 2048) -> tuple[np.ndarray, dict]:
    """Row indices of ``x`` in greedy farthest-first order (``budget`` of them), and info."""
    n = len(x)
    x_sq = np.einsum("ij,ij->i", x, x)
    centers = np.empty(budget, dtype=np.int64)
    centers[0] = rng.integers(n)
    ub = np.empty(n, dtype=np.float32)  # upper bound of squared distance to nearest center
    for s in range(0, n, chunk):
        ub[s : s + chunk] = sq_dists(x[s : s + chunk], x_sq[s : s + chunk], x[centers[:1]], x_sq[centers[:1]])[:, 0]
    ver = np.ones(n, dtype=np.int64)  # ub[i] accounts for centers[:ver[i]]
    ub[centers[0]] = -np.inf
    k = 1
    rebuilds = 0
    m = min(working_set, n)
    while k < budget:
        rebuilds += 1
        if m < n:
            part = np.argpartition(ub, n - m - 1)
            w, tau = part[n - m :], float(ub[part[n - m - 1]])  # tau: largest bound outside w
        else:
            w = np.arange(n)
            tau = -np.inf
        _refresh(x, x_sq, centers, k, w, ub, ver, chunk)
        xw, xw_sq = x[w], x_sq[w]
        uw = ub[w]
        live = np.isfinite(uw)
        with single_thread_blas():
            while k < budget:
                j = int(np.argmax(uw))
                if not uw[j] >= tau or uw[j] == -np.inf:
                    break
                c = w[j]
                centers[k] = c
                k += 1
                uw[j] = -np.inf
                live[j] = False
                d = xw @ x[c]
                d *= -2.0
                d += xw_sq
                d += x_sq[c]
                np.minimum(uw, d, out=uw, where=live)
        ub[w] = uw
        ver[w] = k
    return centers, {"working_set": m, "rebuilds": rebuilds, "radius": float(np.sqrt(max(ub.max(), 0)))}


def _refresh(x, x_sq, centers, k, w, ub, ver, chunk):
    """Make ub[w] exact for centers[:k] (each row only against the centers it has not seen)."""
    stale = w[ver[w] < k]
    if len(stale) == 0:
        return
    best = ub[stale].copy()
    vs = ver[stale]
    for first in np.unique(vs):  # rows refreshed together miss the same centers
        sel_g = np.flatnonzero(vs == first)
        xs, xs_sq = x[stale[sel_g]], x_sq[stale[sel_g]]
        bg = best[sel_g]
        for s in range(int(first), k, chunk):
            cs = centers[s : min(k, s + chunk)]
            np.minimum(bg, sq_dists(xs, xs_sq, x[cs], x_sq[cs]).min(axis=1), out=bg)
        best[sel_g] = bg
    sel = np.isfinite(ub[stale])
    ub[stale[sel]] = best[sel]
    ver[stale] = k


class KCenter(Selector):
    name = "kcenter"

    def __init__(self, working_set: int = 4096, chunk: int = 2048):
        check_number(working_set, "working_set", positive=True, integer=True)
        check_number(chunk, "chunk", positive=True, integer=True)
        self.working_set = int(working_set)
        self.chunk = int(chunk)

    def _choose(self, table, budget, rng):
        centers, info = farthest_first(table.require_embedding(), budget, rng, self.working_set, self.chunk)
        return Choice(centers, info=info)
