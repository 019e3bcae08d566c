"""``pool.dedup: near``: drop near-duplicate prompts from the pool's rows, counted and shown.

Runs in the pool build after the task filters and caps and before the held-out split, so
that no near duplicate of a test prompt stays in the pool. Prompts are compared across
tasks and sources. Rows are ordered by id first; within a cluster of near duplicates the
row with the smallest id is kept (ids hash source, prompt and response, so the choice
does not depend on the order of the input), the others are dropped under one reason in
pool_meta.json's ``dropped`` and listed in its ``near_duplicates`` (every cluster, with
a few examples in full).

With ``pool.dedup_strip_template`` (the default) prompts are compared without the whole
lines that every prompt of their task starts and ends with: a task's shared
instruction (Super-NaturalInstructions puts its long definition before every input) would
otherwise make every pair of the task's prompts a near duplicate, whatever their inputs.
A prompt that is nothing but its task's shared text is compared whole.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

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


def _shared_start(texts: list[str]) -> int:
    """Characters at the start of every text, cut back to the end of a line (a shared
    instruction is whole lines; a shared first half of a line is content)."""
    common = os.path.commonprefix([min(texts), max(texts)])
    if all(len(t) == len(common) or t[len(common)] == "\n" for t in texts):
        return len(common)
    return common.rfind("\n") + 1


def _shared_ends(texts: list[str]) -> tuple[int, int]:
    """(prefix, suffix) lengths in characters of the whole lines all ``texts`` start and end
    with; (0, 0) for fewer than two texts."""
    if len(texts) < 2:
        return 0, 0
    return _shared_start(texts), _shared_start([t[::-1] for t in texts])


def compared_texts(rows: list[dict], strip: bool) -> tuple[list[str], dict]:
    """The text each row is compared by, and the shared (prefix, suffix) characters left out
    per task (tasks with none are not listed)."""
    texts = [r["prompt"] for r in rows]
    if not strip:
        return texts, {}
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_task[r["task"]].append(i)
    shared = {}
    for task, idx in sorted(by_task.items()):
        pre, suf = _shared_ends([texts[i] for i in idx])
        if not pre and not suf:
            continue
        shared[task] = {"prefix_chars": pre, "suffix_chars": suf}
        for i in idx:
            core = texts[i][pre : len(texts[i]) - suf].strip()
            texts[i] = core or texts[i]
    return texts, shared


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 3] + "..."


def _shown(row: dict, compared: str) -> dict:
    """An example row; ``compared`` is the text it was compared by (without its task's
    shared instruction)."""
    return {"id": row["id"], "task": row["task"], "row": row["_where"], "prompt": _cut(row["prompt"]), "compared": _cut(compared)}


def drop_near_duplicates(rows: list[dict], cfg, drops, embed=None) -> tuple[list[dict], dict]:
    """(rows kept, the ``near_duplicates`` record of pool_meta.json)."""
    rows = sorted(rows, key=lambda r: r["id"])
    texts, shared = compared_texts(rows, cfg.dedup_strip_template)
    found = find(texts, cfg, embed)
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
            "kept": _shown(rows[m[0]], texts[m[0]]),
            "dropped": [{**_shown(rows[i], texts[i]), "jaccard_with_kept": sim.get((m[0], i))} for i in m[1:EXAMPLES + 1]],
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
        "strip_template": cfg.dedup_strip_template,
        "task_templates_left_out": shared,
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
