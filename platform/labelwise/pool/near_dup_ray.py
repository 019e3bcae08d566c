"""Near-duplicate clusters on Ray Data, for pools too large for one machine
(``pool.dedup_engine: ray``).

The same steps and functions as pool/near_dup.py, spread out:

1. ``map_batches``: shingles, MinHash signatures and band keys of each batch of prompts;
   one output row per (prompt, band): key, prompt index, the prompt's shingles;
2. ``groupby("key").map_groups``: the rows of one bucket meet on one worker (Ray Data's
   shuffle by key); its candidate pairs (:func:`near_dup.bucket_pairs`, members in index
   order) are verified by exact Jaccard there;
3. the driver collects the pairs (few: only buckets with two or more members make any),
   drops the repeats found in several bands and joins them into clusters (union-find).

Given the same prompts and parameters it finds exactly the clusters of the local engine
(tests/test_pool_dedup.py checks it on a real local Ray). The pool stage starts or joins
the job's Ray (``ray:``) first; called alone, :func:`find` uses labelwise.ray_start's
default (RAY_ADDRESS joins a cluster, else a local Ray).
"""

from __future__ import annotations

import numpy as np

from labelwise.pool import near_dup

ROWS_PER_BLOCK = 20_000


def _band_rows(batch, shingle: int, num_perm: int, bands: int, rows: int):
    import pyarrow as pa

    idx = batch.column("idx").to_numpy()
    values, offsets = near_dup.shingles(batch.column("prompt").combine_chunks(), shingle)
    keys = near_dup.band_keys(near_dup.signatures(values, offsets, num_perm), bands, rows)
    sets = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, type=pa.uint64()))
    take = np.repeat(np.arange(len(idx)), bands)  # row i * bands + band, as keys.ravel()
    return pa.table({"key": pa.array(keys.ravel(), type=pa.uint64()), "idx": idx[take], "shingles": sets.take(pa.array(take))})


def _verify_bucket(batch, threshold: float):
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64()), "sim": pa.array([], pa.float64())})
    if batch.num_rows < 2:
        return empty
    batch = batch.sort_by("idx")
    idx = batch.column("idx").to_numpy()
    sets = batch.column("shingles").combine_chunks()
    values = pc.list_flatten(sets).to_numpy()
    offsets = sets.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    pairs = near_dup.bucket_pairs(range(len(idx)))
    sims = [near_dup.jaccard(values, offsets, i, j) for i, j in pairs]
    return pa.table({
        "a": pa.array([int(idx[i]) for i, _ in pairs], pa.int64()),
        "b": pa.array([int(idx[j]) for _, j in pairs], pa.int64()),
        "sim": pa.array(sims, pa.float64()),
    })


def find(prompts: list[str], params: near_dup.Params, rows_per_block: int | None = None) -> near_dup.Found:
    """Near-duplicate clusters of ``prompts`` with Ray Data (joins or starts Ray), in blocks
    of ``rows_per_block`` prompts (default ROWS_PER_BLOCK)."""
    import pyarrow as pa
    import ray

    from labelwise.ray_start import init_ray

    init_ray()
    bands, rows = params.bands_rows
    rows_per_block = rows_per_block or ROWS_PER_BLOCK
    n = len(prompts)
    table = pa.table({"idx": pa.array(np.arange(n), pa.int64()), "prompt": pa.array(prompts, pa.string())})
    blocks = max(1, -(-n // rows_per_block))
    ds = ray.data.from_arrow(table).repartition(blocks)
    keyed = ds.map_batches(
        _band_rows, batch_format="pyarrow", batch_size=rows_per_block,
        fn_kwargs={"shingle": params.shingle, "num_perm": params.num_perm, "bands": bands, "rows": rows},
    )
    checked = keyed.groupby("key", num_partitions=blocks).map_groups(_verify_bucket, batch_format="pyarrow", fn_kwargs={"threshold": params.threshold})
    out = checked.to_arrow_refs()
    got = pa.concat_tables(ray.get(out)) if out else None
    if got is None or got.num_rows == 0:
        return near_dup.Found([], np.zeros((0, 2), np.int64), np.zeros(0), 0, bands, rows)
    pairs = np.stack([got.column("a").to_numpy(), got.column("b").to_numpy()], axis=1)
    sims = got.column("sim").to_numpy()
    pairs, first = np.unique(pairs, axis=0, return_index=True)  # a pair found in several bands
    sims = sims[first]
    ok = sims >= params.threshold - 1e-12
    edges, sims = pairs[ok], sims[ok]
    return near_dup.Found(near_dup.clusters(n, edges), edges, sims, len(pairs), bands, rows)
