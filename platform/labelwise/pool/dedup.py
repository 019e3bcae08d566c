"""``pool.dedup: near``: drop near-duplicate prompts from the pool's rows, counted and shown.

Runs in the pool build after the task filters and caps and before the held-out split, so
that no near duplicate of a test prompt stays in the pool. Prompts are compared across
tasks and sources. Rows are ordered by id first; within a cluster of near duplicates the
row with the smallest id is kept (ids hash source, prompt and response, so the choice
does not depend on the order of the input), the others are dropped under one reason in
pool_meta.json's ``dropped`` and listed in its ``near_duplicates`` (every cluster, with
a few examples in full).
"""

from __future__ import annotations

from collections import Counter

from labelwise.pool import near_dup

EXAMPLES = 5
EXAMPLE_CHARS = 200


def reason(threshold: float) -> str:
    return f"near duplicate (Jaccard >= {threshold:g} with a kept prompt)"


def params(cfg) -> near_dup.Params:
    return near_dup.Params(threshold=cfg.dedup_threshold, shingle=cfg.dedup_shingle, num_perm=cfg.dedup_num_perm)


def find(prompts: list[str], cfg, embed=None) -> near_dup.Found:
    """Clusters of near-duplicate ``prompts`` with the configured engine and second pass."""
    p = params(cfg)
    if cfg.dedup_engine == "ray":
        from labelwise.pool import near_dup_ray

        found = near_dup_ray.find(prompts, p)
    else:
        found = near_dup.find(prompts, p)
    if cfg.dedup_cosine is not None:
        if embed is None:
            from labelwise.pool.infer import embed_texts as embed
        found = near_dup.cosine_filter(found, prompts, cfg.dedup_cosine, embed)
    return found


def _shown(row: dict) -> dict:
    text = row["prompt"]
    return {
        "id": row["id"],
        "task": row["task"],
        "row": row["_where"],
        "prompt": text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "...",
    }


def drop_near_duplicates(rows: list[dict], cfg, drops, embed=None) -> tuple[list[dict], dict]:
    """(rows kept, the ``near_duplicates`` record of pool_meta.json)."""
    rows = sorted(rows, key=lambda r: r["id"])
    found = find([r["prompt"] for r in rows], cfg, embed)
    why = reason(cfg.dedup_threshold)
    dropped = set()
    for members in found.clusters:
        for i in members[1:]:
            dropped.add(i)
            drops.add(why, rows[i]["_where"])
    sim = {(int(a), int(b)): float(s) for (a, b), s in zip(found.edges, found.similarity)}
    biggest = sorted(found.clusters, key=lambda m: (-len(m), m[0]))[:EXAMPLES]
    examples = [
        {
            "kept": _shown(rows[m[0]]),
            "dropped": [{**_shown(rows[i]), "jaccard_with_kept": sim.get((m[0], i))} for i in m[1:EXAMPLES + 1]],
            "size": len(m),
        }
        for m in biggest
    ]
    bands, band_rows = found.bands, found.rows
    info = {
        "engine": cfg.dedup_engine,
        "threshold": cfg.dedup_threshold,
        "shingle": cfg.dedup_shingle,
        "num_perm": cfg.dedup_num_perm,
        "bands": bands,
        "rows_per_band": band_rows,
        "cosine": cfg.dedup_cosine,
        "n_compared": len(rows),
        "n_candidate_pairs": found.n_candidates,
        "n_verified_pairs": int(len(found.edges)) + found.rejected_by_cosine,
        "n_rejected_by_cosine": found.rejected_by_cosine,
        "n_clusters": len(found.clusters),
        "n_dropped": len(dropped),
        "cluster_sizes": {str(k): v for k, v in sorted(Counter(len(m) for m in found.clusters).items())},
        "examples": examples,
        "clusters": [[rows[i]["id"] for i in m] for m in found.clusters],  # kept id first
    }
    return [r for i, r in enumerate(rows) if i not in dropped], info
