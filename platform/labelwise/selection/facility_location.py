"""Facility Location: maximize F(S) = sum_i max_{j in S} K(z_i, z_j), lazy greedy.

Kernel: rbf exp(-gamma ||z_i - z_j||^2) (the paper's gamma 0.1 and 0.002) or cosine
(shifted to (1 + cos) / 2 so that K >= 0). A dense N x N kernel is used only while it
fits ``max_kernel_mb``; otherwise the kernel is block-diagonal by task (clients are
covered by facilities of their own task), each block dense while the memory budget lasts
and a k-nearest-neighbour sparse kernel for the largest tasks. ``structure`` forces one
choice; the choice made is recorded in the result's info.

Lazy greedy: gains only shrink as S grows (submodularity), so a heap of stale gains is
re-evaluated only at its top; a gain computed since the last pick in its own block is
exact and picked at once.
"""

from __future__ import annotations

import heapq

import numpy as np

from labelwise.selection import kernels
from labelwise.selection.base import Choice, Selector, check_choice, check_number


class _DenseBlock:
    def __init__(self, rows, k):
        self.rows, self.k = rows, k  # k symmetric: k[j] = similarity of facility j to every client
        self.cur = np.zeros(len(rows), dtype=np.float32)

    def initial_gains(self):
        return self.k.sum(axis=1, dtype=np.float64)

    def gain(self, j):
        d = self.k[j] - self.cur
        return float(d[d > 0].sum(dtype=np.float64))

    def add(self, j):
        np.maximum(self.cur, self.k[j], out=self.cur)


class _SparseBlock:
    """kNN kernel stored by facility: clients[ptr[j]:ptr[j+1]] with weights w."""

    def __init__(self, rows, idx, sim):
        n, kk = idx.shape
        fac = idx.ravel()
        order = np.argsort(fac, kind="stable")
        self.clients = np.repeat(np.arange(n), kk)[order]
        self.w = sim.ravel()[order]
        self.ptr = np.concatenate([[0], np.cumsum(np.bincount(fac, minlength=n))])
        self.rows = rows
        self.cur = np.zeros(n, dtype=np.float32)

    def initial_gains(self):
        return np.add.reduceat(np.r_[self.w, 0], self.ptr[:-1]).astype(np.float64) * (np.diff(self.ptr) > 0)

    def gain(self, j):
        a, b = self.ptr[j], self.ptr[j + 1]
        d = self.w[a:b] - self.cur[self.clients[a:b]]
        return float(d[d > 0].sum(dtype=np.float64))

    def add(self, j):
        a, b = self.ptr[j], self.ptr[j + 1]
        c = self.clients[a:b]
        self.cur[c] = np.maximum(self.cur[c], self.w[a:b])


class FacilityLocation(Selector):
    name = "facility_location"

    def __init__(self, kernel: str = "rbf", gamma: float = 0.002, structure: str = "auto", knn: int = 32, max_kernel_mb: int = 1024):
        check_choice(kernel, "kernel", ("rbf", "cosine"))
        check_number(gamma, "gamma", positive=True)
        check_choice(structure, "structure", ("auto", "dense", "task_blocks", "knn"))
        check_number(knn, "knn", positive=True, integer=True)
        check_number(max_kernel_mb, "max_kernel_mb", positive=True)
        self.kernel, self.gamma, self.structure = kernel, float(gamma), structure
        self.knn, self.max_kernel_mb = int(knn), max_kernel_mb

    def _blocks(self, table):
        x, x_sq = kernels.prepare(table.require_embedding(), self.kernel)
        n = len(x)
        cap = self.max_kernel_mb * 2**20 / 4  # float32 entries
        info = {"kernel": self.kernel, "gamma": self.gamma if self.kernel == "rbf" else None}
        structure = self.structure
        if structure == "auto":
            structure = "dense" if n * n <= cap else "task_blocks"
        if structure == "dense":
            if n * n > cap:
                raise ValueError(
                    f"facility_location: a dense {n} x {n} kernel needs {n * n * 4 / 2**20:.0f} MB > "
                    f"max_kernel_mb={self.max_kernel_mb}; use structure: task_blocks or knn"
                )
            blocks = [_DenseBlock(np.arange(n), kernels.dense(x, x_sq, self.kernel, self.gamma))]
            info.update(structure="dense", dense_blocks=1, knn_blocks=0)
        elif structure == "knn":
            idx, sim = kernels.knn(x, x_sq, self.kernel, self.gamma, self.knn)
            blocks = [_SparseBlock(np.arange(n), idx, sim)]
            info.update(structure="knn", knn=self.knn, dense_blocks=0, knn_blocks=1)
        else:
            sizes = table.task_sizes()
            rows_by_task = np.split(np.argsort(table.task_codes, kind="stable"), np.cumsum(sizes)[:-1])
            used, blocks, n_dense, knn_tasks = 0.0, [], 0, []
            for t in np.argsort(sizes, kind="stable"):  # smallest tasks dense first
                rows = rows_by_task[t]
                if len(rows) == 0:
                    continue
                xs, xs_sq = x[rows], x_sq[rows]
                if used + len(rows) ** 2 <= cap:
                    used += len(rows) ** 2
                    blocks.append(_DenseBlock(rows, kernels.dense(xs, xs_sq, self.kernel, self.gamma)))
                    n_dense += 1
                else:
                    idx, sim = kernels.knn(xs, xs_sq, self.kernel, self.gamma, self.knn)
                    blocks.append(_SparseBlock(rows, idx, sim))
                    knn_tasks.append(table.task_names[t])
            info.update(structure="task_blocks", dense_blocks=n_dense, knn_blocks=len(knn_tasks), knn=self.knn if knn_tasks else None, knn_tasks=knn_tasks[:50], dense_kernel_mb=round(used * 4 / 2**20, 1))
        return blocks, info

    def _choose(self, table, budget, rng):
        blocks, info = self._blocks(table)
        heap = []
        tiebreak = rng.permutation(table.n)  # seeded order among equal gains
        for b, blk in enumerate(blocks):
            g = blk.initial_gains()
            heap.extend(zip((-g).tolist(), tiebreak[blk.rows].tolist(), [b] * len(g), range(len(g)), [0] * len(g)))
        heapq.heapify(heap)
        version = [0] * len(blocks)
        picked = []
        evals = 0
        while len(picked) < budget:
            neg, tb, b, j, stamp = heapq.heappop(heap)
            blk = blocks[b]
            if stamp == version[b]:
                picked.append(blk.rows[j])
                blk.add(j)
                version[b] += 1
                continue
            evals += 1
            heapq.heappush(heap, (-blk.gain(j), tb, b, j, version[b]))
        info["objective"] = float(sum(blk.cur.sum(dtype=np.float64) for blk in blocks))
        info["gain_evaluations"] = evals
        return Choice(np.asarray(picked, dtype=np.int64), info=info)


def facility_objective(x: np.ndarray, rows, kernel="rbf", gamma=0.002) -> float:
    """F(S) with the dense kernel (for checks and the benchmark)."""
    xp, x_sq = kernels.prepare(x, kernel)
    rows = np.asarray(rows)
    k = kernels.similarity(xp, x_sq, xp[rows], x_sq[rows], kernel, gamma)
    return float(k.max(axis=1).sum(dtype=np.float64))
