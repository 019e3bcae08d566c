"""``labelwise bench dedup``: near-duplicate removal on N synthetic prompts, against plain
exact-hash dedup in the same run.

The prompts: random sentences of 12 to 60 words from a Zipf-distributed vocabulary; a
fraction of them (``--dup-fraction``) are planted variants of an earlier prompt (case
changed, punctuation and spaces added, and half of them one word replaced). Printed: the
time and peak memory of each step, the ratio against exact-hash dedup (a sha1 per prompt,
the pool's exact rule), the fraction of planted variants each one found, the fraction
found among the variants whose true Jaccard with their original is at or above the
threshold, and the prompts dropped outside the planted clusters (random sentences that
happen to be near duplicates: their Jaccard was checked, so they are not false positives).
Times are wall clock and this process's CPU time (Ray workers' CPU is not in the latter).

    labelwise bench dedup                        # 1,000,000 prompts, local engine
    labelwise bench dedup --n 20000 --engine ray
    labelwise bench dedup --n 100000 --datasketch 5000   # also one datasketch MinHash per prompt
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time

import numpy as np


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _vocabulary(rng, size: int) -> list[str]:
    """``size`` distinct pseudo-words of 2 to 4 syllables (16**4 + 16**3 + 16**2 to pick from)."""
    syllables = ["ka", "lo", "mi", "tu", "re", "sa", "no", "vi", "de", "po", "ga", "shi", "ber", "an", "ex", "tor"]
    codes = rng.choice(16**4 + 16**3 + 16**2, size, replace=False)
    words = []
    for c in codes.tolist():
        n, c = (2, c) if c < 256 else (3, c - 256) if c < 256 + 4096 else (4, c - 256 - 4096)
        words.append("".join(syllables[(c >> (4 * i)) & 15] for i in range(n)))
    return words


def synthetic(n: int, dup_fraction: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(prompts, origin): origin[i] is the index of the prompt that i is a planted variant
    of, or -1 for an original."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocabulary(rng, 20_000))
    n_var = int(n * dup_fraction)
    n_base = n - n_var
    lens = rng.integers(12, 61, n_base)
    words = vocab[(rng.zipf(1.2, int(lens.sum())) - 1) % len(vocab)]
    cuts = np.cumsum(lens)[:-1]
    base = [" ".join(w) for w in np.split(words, cuts)]
    origin = np.full(n, -1, dtype=np.int64)
    src = rng.integers(0, n_base, n_var)
    origin[n_base:] = src
    variants = []
    for k, s in enumerate(src.tolist()):
        w = base[s].split()
        if k % 2:  # one word replaced
            w[int(rng.integers(len(w)))] = str(vocab[int(rng.integers(len(vocab)))])
        text = " ".join(w)
        style = k % 3
        text = text.upper() if style == 0 else text.capitalize() if style == 1 else text.replace(" ", "  ")
        variants.append(text + ("?" if k % 4 == 0 else " !"))
    return base + variants, origin


def exact_dedup(prompts: list[str]) -> np.ndarray:
    """The plain baseline: True for a prompt whose sha1 was seen before."""
    seen, dropped = set(), np.zeros(len(prompts), dtype=bool)
    for i, p in enumerate(prompts):
        h = hashlib.sha1(p.encode("utf-8")).digest()
        if h in seen:
            dropped[i] = True
        seen.add(h)
    return dropped


def datasketch_signatures(prompts: list[str], params) -> float:
    """Seconds for one datasketch MinHash object per prompt over the same shingles."""
    from datasketch import MinHash

    from labelwise.pool import near_dup

    values, offsets = near_dup.shingles(prompts, params.shingle)
    t0 = time.perf_counter()
    for i in range(len(prompts)):
        m = MinHash(num_perm=params.num_perm)
        m.update_batch([v.tobytes() for v in values[offsets[i] : offsets[i + 1]]])
    return time.perf_counter() - t0


def run(a) -> dict:
    from labelwise.pool import near_dup

    params = near_dup.Params(threshold=a.threshold, shingle=a.shingle, num_perm=a.num_perm)
    params.bands_rows  # datasketch's optimizer, imported once, outside the timings
    t0 = time.perf_counter()
    prompts, origin = synthetic(a.n, a.dup_fraction, a.seed)
    gen_s = time.perf_counter() - t0
    rss_data = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    exact = exact_dedup(prompts)
    exact_s, exact_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    if a.engine == "ray":
        from labelwise.pool import near_dup_ray

        found = near_dup_ray.find(prompts, params)
    else:
        found = near_dup.find(prompts, params)
    near_s, near_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    dropped = np.zeros(len(prompts), dtype=bool)
    for m in found.clusters:
        dropped[m[1:]] = True
    planted = origin >= 0
    # the true Jaccard of each variant with its original (exact, on the shingle sets)
    var_idx = np.flatnonzero(planted)
    both = np.unique(np.concatenate([var_idx, origin[var_idx]]))
    values, offsets = near_dup.shingles([prompts[i] for i in both.tolist()], params.shingle)
    at = np.searchsorted(both, np.stack([origin[var_idx], var_idx], axis=1))
    true_j = np.array([near_dup.jaccard(values, offsets, int(i), int(j)) for i, j in at])
    above = var_idx[true_j >= params.threshold]
    # a variant counts as found when it shares a cluster with its original
    label = np.arange(len(prompts))
    for m in found.clusters:
        label[m] = m[0]
    together = label[var_idx] == label[origin[var_idx]]
    together_above = label[above] == label[origin[above]]
    # a prompt dropped whose cluster holds no planted relation is a false drop
    related = np.zeros(len(prompts), dtype=bool)
    related[var_idx[together]] = True
    related[origin[var_idx[together]]] = True
    out = {
        "n": len(prompts), "planted": int(planted.sum()), "planted_at_or_above_threshold": int(len(above)),
        "threshold": params.threshold, "shingle": params.shingle, "num_perm": params.num_perm,
        "bands": found.bands, "rows": found.rows, "engine": a.engine, "generate_s": gen_s,
        "exact_s": exact_s, "exact_cpu_s": exact_cpu_s, "near_cpu_s": near_cpu_s, "exact_dropped": int(exact.sum()), "exact_found_fraction": float(exact[planted].mean()) if planted.any() else 0.0,
        "near_s": near_s, "near_dropped": int(dropped.sum()), "clusters": len(found.clusters),
        "candidate_pairs": found.n_candidates,
        "near_found_fraction": float(together.mean()) if len(together) else 0.0,
        "near_found_fraction_at_or_above_threshold": float(together_above.mean()) if len(together_above) else 0.0,
        "false_drops": int((dropped & ~related).sum()),
        "rss_after_data_mb": rss_data, "peak_rss_mb": _rss_mb(),
    }
    if a.datasketch:
        k = min(a.datasketch, len(prompts))
        sub = prompts[:k]
        t0 = time.perf_counter()
        v, o = near_dup.shingles(sub, params.shingle)
        near_dup.signatures(v, o, params.num_perm)
        ours = time.perf_counter() - t0
        out.update(datasketch_n=k, datasketch_s=datasketch_signatures(sub, params), numpy_signatures_s=ours)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labelwise bench dedup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic prompts (default 1,000,000)")
    p.add_argument("--dup-fraction", type=float, default=0.1, help="fraction of the prompts that are planted variants")
    p.add_argument("--threshold", type=float, default=0.7, help="Jaccard threshold (pool.dedup_threshold)")
    p.add_argument("--shingle", type=int, default=3, help="words per shingle (pool.dedup_shingle)")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (pool.dedup_num_perm)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="pool.dedup_engine")
    p.add_argument("--datasketch", type=int, default=0, metavar="K",
                   help="also time one datasketch MinHash object per prompt on the first K prompts")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.n < 2 or not 0 <= a.dup_fraction < 1 or not 0 < a.threshold <= 1:
        print("labelwise bench dedup: --n must be >= 2, --dup-fraction in [0, 1), --threshold in (0, 1]", file=sys.stderr)
        return 2
    r = run(a)
    print(
        f"dedup bench: {r['n']:,} synthetic prompts, {r['planted']:,} planted variants "
        f"({r['planted_at_or_above_threshold']:,} at Jaccard >= {r['threshold']:g}); "
        f"{r['shingle']}-word shingles, {r['num_perm']} permutations, {r['bands']} bands x {r['rows']} rows, engine {r['engine']}"
    )
    print(f"  exact-hash dedup (baseline): {r['exact_s']:.2f} s (CPU {r['exact_cpu_s']:.2f} s), dropped {r['exact_dropped']:,}, "
          f"found {r['exact_found_fraction']:.1%} of the planted variants")
    print(f"  near-duplicate dedup:        {r['near_s']:.2f} s (CPU {r['near_cpu_s']:.2f} s; {r['near_s'] / max(r['exact_s'], 1e-9):.1f}x the baseline), "
          f"dropped {r['near_dropped']:,} in {r['clusters']:,} clusters from {r['candidate_pairs']:,} candidate pairs; "
          f"found {r['near_found_fraction']:.1%} of the planted variants, "
          f"{r['near_found_fraction_at_or_above_threshold']:.1%} of those at or above the threshold; "
          f"dropped outside the planted clusters {r['false_drops']:,} (chance near duplicates of the generator)")
    print(f"  peak RSS {r['peak_rss_mb']:.0f} MB (after generating the prompts: {r['rss_after_data_mb']:.0f} MB)")
    if "datasketch_s" in r:
        print(f"  signatures of the first {r['datasketch_n']:,} prompts: numpy batches {r['numpy_signatures_s']:.2f} s, "
              f"one datasketch MinHash per prompt {r['datasketch_s']:.2f} s "
              f"({r['datasketch_s'] / max(r['numpy_signatures_s'], 1e-9):.1f}x slower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
