"""Similarity kernels on prompt embeddings, computed in chunks (shared by FL and DPP)."""

from __future__ import annotations

import numpy as np


def prepare(x: np.ndarray, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows ready for ``similarity``: unit rows for cosine; plus squared norms."""
    x = np.asarray(x, dtype=np.float32)
    if kernel == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return x, np.einsum("ij,ij->i", x, x)


def similarity(a, a_sq, b, b_sq, kernel: str, gamma: float) -> np.ndarray:
    """K(a_i, b_j) in [0, 1]: rbf exp(-gamma ||a-b||^2), or cosine shifted to (1 + cos) / 2."""
    g = a @ b.T
    if kernel == "cosine":
        g += 1.0
        g *= 0.5
        return np.clip(g, 0.0, 1.0, out=g)
    g *= 2.0
    g -= a_sq[:, None]
    g -= b_sq[None, :]
    np.minimum(g, 0.0, out=g)  # -||a-b||^2
    g *= gamma
    return np.exp(g, out=g)


def dense(x, x_sq, kernel, gamma, chunk=2048) -> np.ndarray:
    n = len(x)
    out = np.empty((n, n), dtype=np.float32)
    for s in range(0, n, chunk):
        out[s : s + chunk] = similarity(x[s : s + chunk], x_sq[s : s + chunk], x, x_sq, kernel, gamma)
    return out


def knn(x, x_sq, kernel, gamma, k, chunk=1024):
    """For every row, its k most similar rows (itself included): (idx (n,k) int64, sim (n,k) float32)."""
    n = len(x)
    k = min(k, n)
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, chunk):
        blk = similarity(x[s : s + chunk], x_sq[s : s + chunk], x, x_sq, kernel, gamma)
        if k < n:
            top = np.argpartition(blk, n - k, axis=1)[:, n - k :]
        else:
            top = np.broadcast_to(np.arange(n), blk.shape)
        idx[s : s + chunk] = top
        sim[s : s + chunk] = np.take_along_axis(blk, top, axis=1)
    return idx, sim
