"""DPP: greedy MAP of log det(L_S), L = diag(q) K diag(q), with confidence as quality q.

Greedy log-determinant (Chen et al. 2018): each step adds the prompt with the largest
log(L_ii - l_iS^T L_S^{-1} l_iS), the log of the next Cholesky pivot.

kernel:
* ``ridge`` (default): K = Z Z^T + ridge * I on unit-normalized embeddings. The ridge keeps
  K full rank, so the greedy does not stall after d picks (a plain linear kernel has rank
  <= d). The Cholesky is kept in feature space (d x d, by Sherman-Morrison): the pivot of
  prompt i is q_i^2 * ridge * (1 + z_i^T A^{-1} z_i), A = ridge I + Z_S^T Z_S, so memory is
  O(N + d^2). Pivots only shrink, so a working set of the largest stale pivots is kept
  exact (lazy greedy, exact result).
* ``rbf``: K = exp(-gamma ||z_i - z_j||^2) with the incremental Cholesky rows of Chen et al.
  (B x N floats; refused above ``max_memory_mb``).

quality: ``confidence`` q = conf(x) (default), ``uncertainty`` q = 1 - conf(x), ``none`` q = 1.
conf(x) is the prompt's confidence under ``confidence`` (selection/confidence.py): the
sequence probability exp(logconf) by default, the "confidence as quality" of ARCHITECTURE.md
and paper 4.3 (``length_normalized: true`` is the older spelling of ``per_token``).
Note the scale: log q of a sequence confidence grows with the answer length (tens of nats for
long answers, floored at LOG_Q_FLOOR) while the log pivots of the diversity term stay within a
few nats, so with long answers the sequence quality dominates (the DPP then leans towards
short, confident answers). ``quality_weight`` scales log q (0: pure diversity) to balance them;
the other signals keep log q within a few nats. ``uncertainty`` needs a probability, so it
does not combine with ``length_calibrated``.
"""

from __future__ import annotations

import numpy as np

from labelwise.selection import confidence as signals
from labelwise.selection import kernels
from labelwise.selection.base import Choice, Selector, check_choice, check_number, check_param
from labelwise.selection.threads import single_thread_blas

LOG_Q_FLOOR = -30.0


def _rank1_update(a, u, alpha):
    """a += alpha * u u^T in place (BLAS dger when scipy is there, numpy otherwise)."""
    try:
        from scipy.linalg.blas import dger
    except ImportError:
        a += alpha * np.multiply.outer(u, u)
        return a
    return dger(alpha, u, u, a=a, overwrite_a=1)


class DPP(Selector):
    name = "dpp"

    def __init__(
        self,
        kernel: str = "ridge",
        ridge: float = 0.1,
        gamma: float = 0.002,
        quality: str = "confidence",
        confidence: str = "sequence",
        length_normalized: bool = False,
        quality_weight: float = 1.0,
        working_set: int = 4096,
        max_memory_mb: int = 2048,
    ):
        check_choice(kernel, "kernel", ("ridge", "rbf"))
        check_number(ridge, "ridge", positive=True)
        check_number(gamma, "gamma", positive=True)
        check_choice(quality, "quality", ("confidence", "uncertainty", "none"))
        self.confidence = signals.resolve(confidence, length_normalized)
        self.length_normalized = self.confidence == "per_token" and length_normalized
        check_param(
            not (quality == "uncertainty" and self.confidence not in signals.PROBABILITY), "quality",
            f"uncertainty (1 - confidence) needs a probability; confidence {self.confidence} is not one",
        )
        check_number(quality_weight, "quality_weight", nonnegative=True)
        check_number(working_set, "working_set", positive=True, integer=True)
        check_number(max_memory_mb, "max_memory_mb", positive=True)
        self.kernel, self.ridge, self.gamma = kernel, float(ridge), float(gamma)
        self.quality, self.quality_weight = quality, float(quality_weight)
        self.working_set, self.max_memory_mb = int(working_set), max_memory_mb

    def log_quality(self, table) -> np.ndarray:
        if self.quality == "none" or self.quality_weight == 0:
            return np.zeros(table.n)
        lc = signals.prompt_log_confidence(table, self.confidence)
        if self.confidence in signals.PROBABILITY:
            lc = np.minimum(lc, 0.0)
        logq = lc if self.quality == "confidence" else np.log(-np.expm1(lc) + 1e-300)
        return self.quality_weight * np.maximum(logq, LOG_Q_FLOOR)

    def _choose(self, table, budget, rng):
        x = table.require_embedding()
        log_q2 = 2.0 * self.log_quality(table)
        jitter = rng.random(table.n) * 1e-9  # seeded tie-break between equal pivots
        if self.kernel == "ridge":
            rows, info = self._ridge(x, log_q2 + jitter, budget)
        else:
            rows, info = self._rbf(x, log_q2 + jitter, budget)
        info.update(kernel=self.kernel, quality=self.quality)
        uses_conf = self.quality != "none" and self.quality_weight != 0
        return Choice(rows, info=info, confidence=self.confidence if uses_conf else "sequence")

    def _ridge(self, x, log_q2, budget):
        x, x_sq = kernels.prepare(x, "cosine")  # unit rows
        n, d = x.shape
        lam = self.ridge
        ainv = np.asfortranarray(np.eye(d) / lam)
        # v_i = z_i^T A^{-1} z_i = |z_i|^2 / lam - sum_j (z_i . h_j)^2 with h_j = A_j^{-1} z_j / sqrt(1 + v_j)
        hist = np.empty((budget, d), dtype=np.float32)
        v = x_sq.astype(np.float64) / lam
        ver = np.zeros(n, dtype=np.int64)  # v[i] is exact for picked[:ver[i]]
        log_base = log_q2 + np.log(lam)
        gain = log_base + np.log1p(v)  # upper bounds once stale (pivots only shrink)
        picked = np.empty(budget, dtype=np.int64)
        k, rebuilds, m = 0, 0, min(self.working_set, n)
        logdet = 0.0
        while k < budget:
            rebuilds += 1
            if m < n:
                part = np.argpartition(gain, n - m - 1)
                w, tau = part[n - m :], float(gain[part[n - m - 1]])
            else:
                w, tau = np.arange(n), -np.inf
            self._refresh(x, hist, k, w, v, ver)
            xw = x[w]
            live = np.isfinite(gain[w])
            vw = v[w]
            lbw = log_base[w]
            gw = np.where(live, lbw + np.log1p(np.maximum(vw, 0.0)), -np.inf)
            with single_thread_blas():
                while k < budget:
                    j = int(np.argmax(gw))
                    if gw[j] == -np.inf or gw[j] < tau:
                        break
                    picked[k] = w[j]
                    logdet += float(gw[j])
                    live[j] = False
                    u = ainv @ xw[j].astype(np.float64)
                    denom = 1.0 + vw[j]
                    ainv = _rank1_update(ainv, u, -1.0 / denom)  # A^{-1} -= u u^T / denom
                    h = (u / np.sqrt(denom)).astype(np.float32)
                    hist[k] = h
                    k += 1
                    vw -= np.square(xw @ h, dtype=np.float64)
                    np.log1p(np.maximum(vw, 0.0), out=gw)
                    gw += lbw
                    gw[~live] = -np.inf
            v[w], ver[w], gain[w] = vw, k, gw
        return picked, {"ridge": lam, "log_det": logdet, "working_set": m, "rebuilds": rebuilds}

    def _refresh(self, x, hist, k, w, v, ver, chunk=2048):
        """Make v[w] exact for the first k picks; each (row, pick) pair is computed once."""
        rows = w[ver[w] < k]
        if len(rows) == 0:
            return
        vr = ver[rows]
        for start in np.unique(vr):  # rows refreshed at the same time share their missing picks
            g = rows[vr == start]
            xs, vs = x[g], v[g]
            for s in range(int(start), k, chunk):
                prod = xs @ hist[s : min(k, s + chunk)].T
                vs -= np.einsum("ij,ij->i", prod, prod)
            v[g] = vs
        ver[rows] = k

    def _rbf(self, x, log_q2, budget):
        n = len(x)
        need_mb = budget * n * 4 / 2**20
        if need_mb > self.max_memory_mb:
            raise ValueError(
                f"dpp kernel rbf keeps {budget} x {n} Cholesky rows ({need_mb:.0f} MB > "
                f"max_memory_mb={self.max_memory_mb}); use kernel: ridge (O(N + d^2) memory) "
                "or raise max_memory_mb"
            )
        xp, x_sq = kernels.prepare(x, "rbf")
        q = np.exp(0.5 * (log_q2 - log_q2.max()))  # quality, scaled (log det shifts by a constant)
        c = np.zeros((budget, n), dtype=np.float32)
        d2 = q * q  # K_ii = 1
        picked = np.empty(budget, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        logdet = 0.0
        for k in range(budget):
            score = np.where(alive, np.log(np.maximum(d2, 1e-300)), -np.inf)
            j = int(np.argmax(score))
            picked[k] = j
            alive[j] = False
            logdet += float(score[j])
            kj = kernels.similarity(xp[j : j + 1], x_sq[j : j + 1], xp, x_sq, "rbf", self.gamma)[0]
            e = (q[j] * q * kj - c[:k, j] @ c[:k]) / np.sqrt(max(d2[j], 1e-300))
            c[k] = e
            d2 = d2 - e.astype(np.float64) ** 2
        return picked, {"gamma": self.gamma, "log_det_scaled": logdet}
