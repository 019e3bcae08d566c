"""Interdisciplinary spread (THTB's IC, second term): the mean pairwise cosine distance of the
disciplines' description embeddings; 0.0 with one discipline."""

from __future__ import annotations

import numpy as np


def discipline_spread(vectors) -> float:
    """Mean over pairs i < j of 1 - cos(v_i, v_j); 0.0 for fewer than two vectors."""
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) < 2:
        return 0.0
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norms > 0, norms, 1.0)
    sims = v @ v.T
    i, j = np.triu_indices(len(v), k=1)
    return float(np.mean(1.0 - np.clip(sims[i, j], -1.0, 1.0)))


def embed(descriptions: dict[str, str]) -> dict:
    """Discipline -> unit-length MiniLM embedding of its description (pool/infer.py's model)."""
    if not descriptions:
        return {}
    from labelwise.pool.infer import embed_texts

    names = list(descriptions)
    vectors = embed_texts([descriptions[n] for n in names])
    return dict(zip(names, vectors))
