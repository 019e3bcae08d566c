"""Embedding selectors against brute force: k-center, facility location, DPP."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.selection import kernels
from labelwise.selection import table as T
from labelwise.selection.registry import make_selector


def clustered(n=400, d=8, tasks=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2, (20, d)).astype(np.float32)
    lab = rng.integers(0, 20, n)
    x = centers[lab] + rng.normal(size=(n, d)).astype(np.float32)
    return T.from_arrays(
        [f"p{i:05d}" for i in range(n)],
        [f"t{l % tasks}" for l in lab],
        {"logconf": -rng.gamma(2, 2, n), "n_tokens": rng.integers(1, 20, n).astype(float)},
        x,
    )


def rows_of(tab, ids):
    where = {v: i for i, v in enumerate(tab.ids)}
    return [where[i] for i in ids]


def test_kcenter_is_exact_farthest_first():
    tab = clustered()
    res = make_selector("kcenter", {"working_set": 16}).select(tab, 60, seed=4)  # tiny working set: many rebuilds
    x = tab.embedding.astype(np.float64)
    picked = rows_of(tab, res.ids)
    md = ((x - x[picked[0]]) ** 2).sum(1)
    want = [picked[0]]
    for _ in range(59):
        j = int(np.argmax(md))
        want.append(j)
        md = np.minimum(md, ((x - x[j]) ** 2).sum(1))
    assert picked == want


@pytest.mark.parametrize("kernel,gamma", [("rbf", 0.05), ("cosine", 1.0)])
def test_facility_location_lazy_equals_plain_greedy(kernel, gamma):
    tab = clustered()
    res = make_selector("facility_location", {"kernel": kernel, "gamma": gamma}).select(tab, 40, seed=0)
    assert res.info["structure"] == "dense"
    xp, sq = kernels.prepare(tab.embedding, kernel)
    k = kernels.dense(xp, sq, kernel, gamma).astype(np.float64)
    cur, plain = np.zeros(tab.n), []
    for _ in range(40):
        g = np.maximum(k - cur[None, :], 0).sum(1)
        g[plain] = -1
        plain.append(int(np.argmax(g)))
        cur = np.maximum(cur, k[plain[-1]])
    assert res.info["objective"] == pytest.approx(cur.sum(), rel=1e-5)
    assert rows_of(tab, res.ids) == plain


def test_facility_location_structure_is_chosen_and_recorded():
    tab = clustered(n=600)
    blocks = make_selector("facility_location", {"max_kernel_mb": 0.2}).select(tab, 30, seed=0)
    assert blocks.info["structure"] == "task_blocks"
    assert blocks.info["dense_blocks"] + blocks.info["knn_blocks"] == tab.n_tasks
    assert blocks.info["knn_blocks"] > 0 and blocks.info["dense_kernel_mb"] <= 0.2
    knn = make_selector("facility_location", {"structure": "knn", "knn": 10}).select(tab, 30, seed=0)
    assert knn.info["structure"] == "knn" and len(set(knn.ids)) == 30
    with pytest.raises(ValueError, match="structure: task_blocks or knn"):
        make_selector("facility_location", {"structure": "dense", "max_kernel_mb": 0.1}).select(tab, 5)


def brute_logdet_greedy(l, steps):
    sel = []
    for _ in range(steps):
        best = max((np.linalg.slogdet(l[np.ix_(sel + [i], sel + [i])])[1], i) for i in range(len(l)) if i not in sel)
        sel.append(best[1])
    return sel


@pytest.mark.parametrize("kernel", ["ridge", "rbf"])
@pytest.mark.parametrize("length_normalized", [None, True])
def test_dpp_is_greedy_log_det_with_confidence_quality(kernel, length_normalized):
    """Quality is the sequence confidence exp(logconf) by default (ARCHITECTURE.md:
    "confidence as quality"), the per-token one exp(logconf / n_tokens) on request."""
    tab = clustered(n=150, d=6)
    params = {"kernel": kernel, "gamma": 0.05, "working_set": 8}
    if length_normalized is not None:
        params["length_normalized"] = length_normalized
    res = make_selector("dpp", params).select(tab, 40, seed=0)
    if length_normalized:
        q = np.exp(tab.scores["logconf"] / tab.scores["n_tokens"])
    else:
        q = np.exp(tab.scores["logconf"])
    assert res.record()["confidence"]["kind"] == ("per_token" if length_normalized else "sequence")
    if kernel == "ridge":
        z, _ = kernels.prepare(tab.embedding, "cosine")
        k = z.astype(np.float64) @ z.T.astype(np.float64) + 0.1 * np.eye(tab.n)
    else:
        k = kernels.dense(*kernels.prepare(tab.embedding, "rbf"), "rbf", 0.05).astype(np.float64)
    assert rows_of(tab, res.ids)[:10] == brute_logdet_greedy(q[:, None] * k * q[None, :], 10)


def test_dpp_does_not_stall_past_the_embedding_rank():
    tab = clustered(n=300, d=3)
    res = make_selector("dpp", {"quality": "none"}).select(tab, 100, seed=0)  # 100 picks in 3 dimensions
    assert len(set(res.ids)) == 100 and np.isfinite(res.info["log_det"])
    with pytest.raises(ValueError, match="max_memory_mb"):
        make_selector("dpp", {"kernel": "rbf", "max_memory_mb": 0.01}).select(tab, 100)


def test_error_rows_need_no_embedding():
    """scores.parquet as the scorer writes it: an error row has embedding null and NaN scores."""
    import pyarrow as pa

    table = pa.table(
        {
            "id": ["c", "a", "b", "d"],
            "task": ["y", "x", "x", "y"],
            "logconf": [-2.0, -1.0, float("nan"), float("nan")],
            "error": [None, None, "OutOfMemoryError: CUDA", "overlong: prompt is 900 tokens"],
            "embedding": pa.array([[3.0, 4.0], [1.0, 2.0], None, None], pa.list_(pa.float32())),
        }
    )
    tab = T.from_arrow(table)
    assert tab.ids.tolist() == ["a", "c"] and [r["id"] for r in tab.excluded] == ["b", "d"]
    assert tab.embedding.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert len(make_selector("kcenter").select(tab, 2).ids) == 2
    # a usable row without an embedding is still an error that names it
    broken = table.set_column(4, "embedding", pa.array([None, [1.0, 2.0], None, None], pa.list_(pa.float32())))
    with pytest.raises(T.ScoreTableError, match=r"embedding missing or not 2-dimensional for 1 prompt\(s\): c"):
        T.from_arrow(broken)
    # every usable row without one: scores made without embeddings
    none = table.set_column(4, "embedding", pa.array([None] * 4, pa.list_(pa.float32())))
    assert T.from_arrow(none).embedding is None
