"""Near-duplicate prompts: MinHash LSH over normalized word shingles, vectorized with numpy.

Steps, each a plain function (the Ray engine, pool/near_dup_ray.py, runs the same ones):

1. :func:`normalize` a prompt (pyarrow string kernels, whole batches): lower-cased, every
   run of characters that are not letters, digits or marks (punctuation, symbols, ``_``,
   whitespace) read as one space ("What's  17+25?" -> what, s, 17, 25).
2. :func:`shingles`: the set of its word k-grams (``pool.dedup_shingle`` words, default 3),
   each a 64-bit hash (blake2b of each word, combined and mixed: the same in every process).
   A prompt of fewer than k words is one shingle of all its words.
3. :func:`signatures`: ``num_perm`` MinHash values per prompt, computed for a batch of
   prompts at once (one (shingles x permutations) array per chunk; no Python object per
   prompt): h_p(x) = upper 32 bits of (a_p * x + b_p) mod 2**64, a_p odd, fixed seed.
4. :func:`band_keys`: the signature cut into ``bands`` bands of ``rows`` values (chosen by
   datasketch's MinHashLSH for the threshold, weighting a miss 0.9 and a false candidate
   0.1: misses cost recall, false candidates only a check; at the default 0.7 with 128
   permutations that is 20 bands of 6, so a pair at Jaccard 0.7 is a candidate with
   probability 0.92, at 0.8 0.998); one 64-bit key per (prompt, band). Prompts that share
   a key are candidates.
5. :func:`bucket_pairs`: candidate pairs of one bucket (every pair up to
   ``ALL_PAIRS_UP_TO`` members, else the first member with every other and each member with
   the next: a chain that still connects every true duplicate of a big bucket).
6. :func:`verify`: a candidate pair is a near duplicate when the exact Jaccard similarity of
   the two shingle sets is >= the threshold (so there is no false positive below it;
   misses come only from the banding: a pair at Jaccard J is a candidate with probability
   1 - (1 - J**rows)**bands).
7. :func:`clusters`: connected components of the verified pairs (union-find).

Prompts are indexed 0..n-1 in the order given; callers sort them by id first, so that the
kept prompt of a cluster (its smallest index) is the one with the smallest id, whatever
the input order.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

ALL_PAIRS_UP_TO = 32  # a bucket with more members is linked as a star plus a chain
CHUNK_PROMPTS = 50_000  # prompts shingled at once by find()
CHUNK_SHINGLES = 1 << 14  # shingles hashed at once by signatures(): 16k x num_perm x 8 bytes
PERM_SEED = 20240917  # fixed: near-duplicates do not depend on the pool's sampling seed
_MASK64 = (1 << 64) - 1
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_COMBINE = np.uint64(0x9E3779B97F4A7C15)


@dataclasses.dataclass(frozen=True)
class Params:
    threshold: float = 0.7
    shingle: int = 3
    num_perm: int = 128

    @property
    def bands_rows(self) -> tuple[int, int]:
        return lsh_bands(self.threshold, self.num_perm)


@functools.lru_cache(maxsize=None)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) for a Jaccard threshold, from datasketch's optimizer; where it
    finds fewer than two bands (thresholds near 1), two bands of half the signature."""
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    except ValueError:
        return 2, num_perm // 2
    return int(lsh.b), int(lsh.r)


def normalize(prompts) -> "pyarrow.ListArray":  # noqa: F821
    """Words of each prompt: lower-cased, every run of characters that are not letters,
    digits or marks (punctuation, symbols, ``_``, whitespace) read as one space. A prompt
    with no word at all (punctuation only) is one word: itself, lower-cased and stripped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(prompts, type=pa.string()) if not isinstance(prompts, pa.Array) else prompts
    lower = pc.utf8_lower(text)
    spaced = pc.utf8_trim_whitespace(pc.replace_substring_regex(lower, r"[^\p{L}\p{N}\p{M}]+", " "))
    empty = pc.equal(spaced, "")
    if pc.any(empty).as_py():
        spaced = pc.if_else(empty, pc.utf8_trim_whitespace(lower), spaced)
    return pc.split_pattern(spaced, " ")


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection of uint64 that spreads every input bit)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def word_hashes(words) -> np.ndarray:
    """Stable 64-bit hashes (blake2b) of a string array; each distinct word hashed once."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(words)
    unique = encoded.dictionary.to_pylist()
    table = np.fromiter(
        (int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little") for w in unique),
        dtype=np.uint64, count=len(unique),
    )
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


def shingles(prompts, k: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR shingles: (values uint64, offsets int64 of length n+1); prompt i's shingles are
    values[offsets[i]:offsets[i+1]], at least one, in text order, repeats kept (MinHash
    ignores them; :func:`jaccard` takes the sets)."""
    import pyarrow.compute as pc

    tokens = normalize(prompts)
    n = len(tokens)
    offsets = tokens.offsets.to_numpy().astype(np.int64)
    lens = np.diff(offsets)
    starts = offsets[:-1] - offsets[0]
    flat = word_hashes(pc.list_flatten(tokens))
    n_sh = np.maximum(lens - k + 1, 1)
    owner = np.repeat(np.arange(n), n_sh)
    pos = np.arange(int(n_sh.sum())) - np.repeat(np.cumsum(n_sh) - n_sh, n_sh)  # shingle index inside its prompt
    first = starts[owner] + pos
    h = np.zeros(first.shape, dtype=np.uint64)
    last = max(len(flat) - 1, 0)
    for j in range(k):
        inside = j < lens[owner]  # a short prompt's only shingle stops at its last word
        word = flat[np.minimum(first + j, last)]
        h = np.where(inside, (h ^ word) * _COMBINE + np.uint64(j + 1), h)
    return _mix(h), np.concatenate([[0], np.cumsum(n_sh)]).astype(np.int64)


def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(PERM_SEED)
    a = rng.integers(0, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
    return a, b


def signatures(values: np.ndarray, offsets: np.ndarray, num_perm: int) -> np.ndarray:
    """MinHash signatures (n, num_perm) uint32 of CSR shingle sets."""
    a, b = permutations(num_perm)
    n = len(offsets) - 1
    out = np.empty((n, num_perm), dtype=np.uint32)
    buf = np.empty((CHUNK_SHINGLES, num_perm), dtype=np.uint64)
    shift = np.uint64(32)
    lo = 0
    while lo < n:  # chunks of whole prompts, at most CHUNK_SHINGLES shingles (or one prompt)
        hi = int(np.searchsorted(offsets, offsets[lo] + CHUNK_SHINGLES, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        x = values[offsets[lo] : offsets[hi]]
        h = buf[: len(x)] if len(x) <= CHUNK_SHINGLES else np.empty((len(x), num_perm), dtype=np.uint64)
        np.multiply(x[:, None], a[None, :], out=h)
        np.add(h, b[None, :], out=h)
        np.right_shift(h, shift, out=h)
        out[lo:hi] = np.minimum.reduceat(h, offsets[lo:hi] - offsets[lo], axis=0)
        lo = hi
    return out


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one key per band of each signature (the band number is mixed in,
    so a key names one band's bucket)."""
    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=np.uint64)
    for i in range(bands):
        h = np.full(n, i + 1, dtype=np.uint64)
        for j in range(i * rows, (i + 1) * rows):
            h = _mix(h ^ sig[:, j].astype(np.uint64))
        keys[:, i] = h
    return keys


def bucket_pairs(members) -> list[tuple[int, int]]:
    """Candidate pairs (i < j) of one bucket; ``members`` sorted ascending."""
    m = list(members)
    if len(m) <= ALL_PAIRS_UP_TO:
        return [(m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m))]
    return [(m[0], x) for x in m[1:]] + [(m[i], m[i + 1]) for i in range(1, len(m) - 1)]


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(p, 2) int64 unique candidate pairs, i < j, from every band's buckets."""
    n, bands = keys.shape
    flat = keys.ravel()  # row-major: index i * bands + band
    order = np.argsort(flat, kind="stable")  # members of a bucket stay in ascending index order
    sk = flat[order]
    cut = np.flatnonzero(sk[1:] != sk[:-1]) + 1
    bounds = np.concatenate([[0], cut, [len(sk)]])
    sizes = np.diff(bounds)
    pairs = []
    for s in np.flatnonzero(sizes >= 2):
        pairs.extend(bucket_pairs((order[bounds[s] : bounds[s + 1]] // bands).tolist()))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.asarray(pairs, dtype=np.int64), axis=0)


def jaccard(values: np.ndarray, offsets: np.ndarray, i: int, j: int) -> float:
    a = np.unique(values[offsets[i] : offsets[i + 1]])
    b = np.unique(values[offsets[j] : offsets[j + 1]])
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


def verify(pairs: np.ndarray, values: np.ndarray, offsets: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs whose exact shingle Jaccard is >= threshold, and their Jaccard."""
    sims = np.array([jaccard(values, offsets, int(i), int(j)) for i, j in pairs], dtype=np.float64)
    ok = sims >= threshold - 1e-12
    return pairs[ok], sims[ok]


def clusters(n: int, edges: np.ndarray) -> list[list[int]]:
    """Connected components with at least two members, each sorted ascending (its first
    member is the one kept), ordered by first member."""
    if len(edges) == 0:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    touched = np.unique(edges.ravel())
    groups: dict[int, list[int]] = {}
    for i in touched.tolist():
        groups.setdefault(int(labels[i]), []).append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


@dataclasses.dataclass
class Found:
    """What :func:`find` found: the clusters and the numbers the pool metadata reports."""

    clusters: list[list[int]]
    edges: np.ndarray  # verified pairs (i < j)
    similarity: np.ndarray  # their Jaccard
    n_candidates: int
    bands: int
    rows: int
    rejected_by_cosine: int = 0


def signatures_of(prompts, params: Params, chunk: int = CHUNK_PROMPTS) -> np.ndarray:
    """Signatures of ``prompts``, ``chunk`` prompts at a time (so that only the signatures,
    not every shingle, are held at once)."""
    sig = np.empty((len(prompts), params.num_perm), dtype=np.uint32)
    for lo in range(0, len(prompts), chunk):
        values, offsets = shingles(prompts[lo : lo + chunk], params.shingle)
        sig[lo : lo + chunk] = signatures(values, offsets, params.num_perm)
    return sig


def find(prompts: list[str], params: Params) -> Found:
    """Near-duplicate clusters of ``prompts`` on this machine."""
    bands, rows = params.bands_rows
    pairs = candidate_pairs(band_keys(signatures_of(prompts, params), bands, rows))
    involved = np.unique(pairs.ravel())  # only these prompts' shingles are needed again
    values, offsets = shingles([prompts[i] for i in involved.tolist()], params.shingle)
    local, sims = verify(np.searchsorted(involved, pairs), values, offsets, params.threshold)
    edges = involved[local] if len(local) else local
    return Found(clusters(len(prompts), edges), edges, sims, len(pairs), bands, rows)


def cosine_filter(found: Found, prompts: list[str], min_cosine: float, embed) -> Found:
    """Second pass: keep only the verified pairs whose sentence embeddings (``embed``:
    texts -> unit vectors) have cosine >= ``min_cosine``; only prompts in a pair are
    embedded."""
    if len(found.edges) == 0:
        return found
    involved = np.unique(found.edges.ravel())
    vectors = np.asarray(embed([prompts[i] for i in involved.tolist()]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    where = np.searchsorted(involved, found.edges)
    cos = np.einsum("ij,ij->i", vectors[where[:, 0]], vectors[where[:, 1]])
    ok = cos >= min_cosine - 1e-6
    return dataclasses.replace(
        found,
        clusters=clusters(len(prompts), found.edges[ok]),
        edges=found.edges[ok],
        similarity=found.similarity[ok],
        rejected_by_cosine=int((~ok).sum()),
    )
