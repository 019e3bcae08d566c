"""THTB's scores and staged cuts ("The Harder The Better"; ../shared/reference/thtb-method.md).

A run of :func:`staged` takes a set of rows through cuts in order; each cut ranks its pool
by one score, descending, and keeps ``cut_size(len(pool), fraction, budget)`` =
min(len(pool), max(budget, floor(len(pool) * fraction))): the fraction sets the size, and a
cut never leaves fewer than the budget. The last stage's order gives the final picks: its
first ``budget`` rows, so the result is exactly the budget. Every score is computed over the
stage's current pool (min-max normalizations too), as the authors' code does.

Scores (labelwise has prompts and the base model's greedy answers, no gold responses):
* quality: the judge's prompt-quality score in [0, 1] (substitute for the reward model on
  the gold pair);
* IHS = (bloom_norm + IC) / 2, bloom_norm = (bloom_score - 1) / 20, IC = min-max(discipline
  count) + discipline_spread (range about [0, 2), so IC weighs more, as in the method);
* EHS = (IREI + silhouette) / 2. IREI (substitute): characters of the prompt and of the base
  model's greedy answer, total = |prompt| + |answer| and ratio = |answer| / |prompt|, each
  min-max normalized, then averaged (|prompt| counts as at least 1 in the ratio); it
  reflects the model's verbosity, not the gold response's. Silhouette: TF-IDF of the
  prompts (``max_features``), k-means with ``clusters`` clusters (k-means++, seeded),
  per-prompt silhouette with cosine distance, mapped to (s + 1) / 2.

Tiny clusters (the authors' code zeroes every silhouette when one cluster has fewer than 2
members): k is at most len(pool) - 1; a prompt alone in its cluster gets the neutral 0.5
(silhouette 0, scikit-learn's convention) and the others keep theirs; when fewer than 2
clusters are non-empty, the pool has fewer than 3 prompts or no TF-IDF vocabulary, every
prompt gets 0.5. ``info`` records which case applied.

Missing judgments (selection/judgments.py): a stage whose score cannot be computed for a row
ranks it last; ties (and missing rows among themselves) are broken by a seeded permutation.
A min-max over equal values gives 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from labelwise.selection.base import tie_broken_order

NEUTRAL = 0.5  # the mapped silhouette of a prompt that has none (s = 0)
SMALL = 20_000  # pools below this cluster on one OpenMP thread


def cut_size(n: int, fraction: float, budget: int) -> int:
    """How many of ``n`` a cut keeps: its fraction, but never fewer than the budget."""
    return int(min(n, max(budget, np.floor(n * fraction + 1e-9))))


def minmax(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min) over the finite values; NaN stays NaN; all equal: 0."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return v.copy()
    lo, hi = v[ok].min(), v[ok].max()
    return (v - lo) / (hi - lo) if hi > lo else np.where(ok, 0.0, np.nan)


def silhouette(texts, clusters: int, max_features: int, seed: int) -> tuple[np.ndarray, dict]:
    """Per-text silhouette mapped to [0, 1] ((s + 1) / 2), and what happened (tiny clusters)."""
    n = len(texts)
    if n < 3:
        return np.full(n, NEUTRAL), {"case": "fewer than 3 prompts: all 0.5"}
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import silhouette_samples

    try:
        x = TfidfVectorizer(max_features=max_features).fit_transform(list(texts))
    except ValueError:  # empty vocabulary (no word in any prompt)
        return np.full(n, NEUTRAL), {"case": "no TF-IDF vocabulary: all 0.5"}
    import warnings

    from threadpoolctl import threadpool_limits

    k = min(clusters, n - 1)
    # small pools (within_task: one task): OpenMP threads cost far more in hand-off than they
    # save (measured 17x slower with 2 threads on two shared cores)
    with warnings.catch_warnings(), threadpool_limits(limits=1 if n < SMALL else None, user_api="openmp"):
        warnings.simplefilter("ignore")  # fewer distinct prompts than clusters: sklearn warns, we count below
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(x)
        sizes = np.bincount(labels)
        used = int((sizes > 0).sum())
        info = {"k": k, "clusters_used": used, "singletons": int((sizes == 1).sum())}
        if used < 2 or used > n - 1:
            return np.full(n, NEUTRAL), {**info, "case": "fewer than 2 clusters: all 0.5"}
        s = silhouette_samples(x, labels, metric="cosine")
    s[sizes[labels] < 2] = 0.0  # sklearn already gives 0 there; kept explicit
    return (s + 1.0) / 2.0, {**info, "case": "ok" if not (sizes == 1).any() else "singletons at 0.5"}


@dataclasses.dataclass
class Stage:
    name: str  # quality | ihs | ehs
    fraction: float


def stage_scores(name: str, table, rows: np.ndarray, clusters: int, max_features: int, seed: int) -> tuple[np.ndarray, dict, dict]:
    """(key over ``rows``, NaN where the row cannot be scored; score columns; info)."""
    j = table.judgments
    if name == "quality":
        q = np.where(j.missing("quality")[rows], np.nan, j.values["quality"][rows])
        return q, {"quality": q}, {}
    if name == "ihs":
        miss = j.missing("ihs")[rows]
        bloom = np.where(miss, np.nan, (j.values["bloom_score"][rows] - 1.0) / 20.0)
        ic = minmax(np.where(miss, np.nan, j.values["discipline_count"][rows])) + j.values["discipline_spread"][rows]
        ic = np.where(miss, np.nan, ic)
        ihs = (bloom + ic) / 2.0
        return ihs, {"bloom_norm": bloom, "ic": ic, "ihs": ihs}, {}
    prompt_chars = np.asarray([len(p) for p in table.prompts[rows]], dtype=np.float64)
    answer_chars = table.answer_chars[rows]
    total = minmax(prompt_chars + answer_chars)
    ratio = minmax(answer_chars / np.maximum(prompt_chars, 1.0))
    irei = (total + ratio) / 2.0
    sil, info = silhouette(table.prompts[rows], clusters, max_features, seed)
    ehs = (irei + sil) / 2.0
    return ehs, {"irei": irei, "silhouette": sil, "ehs": ehs}, {"silhouette": info}


@dataclasses.dataclass
class Staged:
    rows: np.ndarray  # the picks in final order (exactly the budget)
    columns: dict  # name -> (budget,) per pick: every stage's scores and ``stage``
    cuts: list  # per stage: pool, fraction, by_fraction, kept, missing


def staged(table, rows: np.ndarray, budget: int, stages: list[Stage], rng: np.random.Generator,
           clusters: int, max_features: int) -> Staged:
    """Take ``rows`` through ``stages``; exactly ``budget`` picks (budget <= len(rows)).

    ``stage`` of a pick: the deepest stage it passed within the stage's own fraction, every
    stage before included ("pool": kept only so that the selection reaches the budget)."""
    rows = np.asarray(rows, dtype=np.int64)
    kmeans_seed = int(rng.integers(2**31 - 1))
    pool = np.arange(len(rows))  # local positions into rows, ranked after each cut
    scores: dict[str, np.ndarray] = {}
    passed = np.full(len(rows), "pool", dtype=object)
    chain = np.ones(len(rows), dtype=bool)  # passed every stage so far within its fraction
    cuts = []
    for st in stages:
        key, cols, info = stage_scores(st.name, table, rows[pool], clusters, max_features, kmeans_seed)
        for name, values in cols.items():
            scores[name] = np.full(len(rows), np.nan)
            scores[name][pool] = values
        missing = ~np.isfinite(key)
        order = tie_broken_order(-np.where(missing, -np.inf, key), rng)
        by_fraction = int(np.floor(len(pool) * st.fraction + 1e-9))
        keep = cut_size(len(pool), st.fraction, budget)
        kept = pool[order[:keep]]
        chain[kept] &= np.arange(keep) < by_fraction
        passed[kept[chain[kept]]] = st.name
        cuts.append({"stage": st.name, "pool": int(len(pool)), "fraction": st.fraction, "by_fraction": by_fraction,
                     "kept": keep, "missing": int(missing.sum()), **info})
        pool = kept  # ranked: the last stage's first rows are the picks
    picks = pool[:budget]
    columns = {name: values[picks] for name, values in scores.items()}
    columns["stage"] = passed[picks]
    return Staged(rows[picks], columns, cuts)
