"""pool.dedup: near: planted near-duplicate clusters found, distinct prompts kept, templated
prompts, no near duplicate across the pool and the test split (checked by brute force),
invariants (hypothesis), the Ray engine against the local one, config errors."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from labelwise.config import ConfigError, build
from labelwise.pool import near_dup
from labelwise.pool.build import build_tables
from labelwise.pool.config import PoolConfig
from labelwise.pool.dedup import reason
from labelwise.pool.records import Raw
from labelwise.pool.summary import format_summary

WORDS = (
    "apple river stone cloud music garden window silver paper engine forest candle rocket "
    "bridge lemon tiger planet castle violin harbor meadow pencil desert island mirror "
    "ocean copper falcon basket marble canyon velvet shadow lantern puzzle thunder orchid "
    "glacier compass ribbon saddle walnut beacon"
).split()


def cfg(**kw) -> PoolConfig:
    return build(PoolConfig, {"source": "mem", "dedup": "near", **kw}, "job.yaml: pool")


def raw(prompt, i, task="t", response="a"):
    return Raw(prompt=prompt, response=response, task=task, source="src", where=f"f.jsonl:{i}")


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def words(text):
    """An independent normalization (ASCII text): lower case, non-alphanumerics as spaces."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def grams(text, k=3):
    w = words(text)
    return {tuple(w[i : i + k]) for i in range(max(len(w) - k + 1, 1))}


def brute_jaccard(a, b, k=3):
    x, y = (grams(a, k), grams(b, k)) if isinstance(a, str) else (a, b)
    return len(x & y) / len(x | y)


def variant(rng, text, replace_one=True):
    """Case, punctuation and spacing changed, and one word replaced."""
    w = text.split()
    if replace_one:
        w[rng.randrange(len(w))] = "zebra"
    return ("  ".join(w)).upper() + "?!"


def planted(seed=0, n_base=80, n_clusters=15, length=(25, 40)):
    """Distinct random prompts, and clusters of an original with two variants."""
    rng = random.Random(seed)
    base = [sentence(rng, rng.randint(*length)) for _ in range(n_base)]
    prompts, clusters = list(base), []
    for c in range(n_clusters):
        members = [c]
        for k in range(2):
            prompts.append(variant(rng, base[c], replace_one=k == 1))
            members.append(len(prompts) - 1)
        clusters.append(members)
    return prompts, clusters


def test_planted_clusters_are_found_at_the_default_threshold_and_distinct_prompts_kept():
    prompts, clusters = planted()
    for members in clusters:  # the planted variants are near duplicates by the definition
        assert all(brute_jaccard(prompts[members[0]], prompts[m]) >= 0.7 for m in members[1:])
    found = near_dup.find(prompts, near_dup.Params())
    assert found.clusters == sorted(sorted(m) for m in clusters)
    pool, test, meta = build_tables(cfg(test_fraction=0), [raw(p, i) for i, p in enumerate(prompts)])
    near = meta["near_duplicates"]
    assert near["n_clusters"] == 15 and near["n_dropped"] == 30 and near["cluster_sizes"] == {"3": 15}
    assert len(pool) == len(prompts) - 30
    assert meta["dropped"][reason(0.7)]["count"] == 30  # counted like every other drop
    assert meta["n_read"] == meta["n_pool"] + meta["n_test"] + meta["n_dropped"]
    ids = dict(zip(pool.prompt, pool.id))
    for members in clusters:  # one kept per cluster: the smallest id
        kept = [prompts[m] for m in members if prompts[m] in ids]
        assert len(kept) == 1
    for cl in near["clusters"]:
        assert cl[0] == min(cl) and cl[0] in set(pool.id) and not set(cl[1:]) & set(pool.id)
    text = format_summary(meta)
    assert "near duplicates dropped: 30 in 15 clusters of 110 prompts (Jaccard >= 0.7 on 3-word shingles" in text
    assert "  kept    " in text and "  dropped " in text


def test_distinct_prompts_with_shared_words_are_all_kept():
    rng = random.Random(1)
    prompts = [sentence(rng, rng.randint(5, 30)) for _ in range(200)]
    prompts += [f"{p} and then {sentence(rng, 12)}" for p in prompts[:30]]  # a shared prefix, more new words
    assert len(set(prompts)) == len(prompts)
    pool, _, meta = build_tables(cfg(test_fraction=0), [raw(p, i) for i, p in enumerate(prompts)])
    sets = [grams(p) for p in prompts]
    by_brute = [(i, j) for i in range(len(sets)) for j in range(i) if brute_jaccard(sets[i], sets[j]) >= 0.7]
    assert meta["near_duplicates"]["n_dropped"] == len(by_brute) == 0 and len(pool) == len(prompts)


def test_case_punctuation_and_whitespace_are_normalized():
    prompts = ["What's the capital of France?", "what s   the CAPITAL of france", "What's the capital of Spain?"]
    found = near_dup.find(prompts, near_dup.Params(threshold=1.0))
    assert found.clusters == [[0, 1]]
    assert [list(x) for x in near_dup.normalize(["Ünïcödé wörds—dash_under", "?!"]).to_pylist()] == [
        ["ünïcödé", "wörds", "dash", "under"], ["?!"]]


def test_templated_prompts_differing_in_content_are_kept_apart():
    """The documented behaviour of the default threshold (README, Pools): a short template
    whose numbers differ is kept apart (Jaccard 1/3). Behind a long instruction shared by
    the task the same difference is one shingle in many (Jaccard > 0.9): kept apart because
    the task's shared text is left out of the comparison (dedup_strip_template, default);
    without that, merged, unless the threshold is 1.0."""
    short = [f"What is {a}+{b}?" for a in range(10, 20) for b in range(20, 30)]
    assert brute_jaccard(short[0], short[1]) == pytest.approx(1 / 3)
    assert near_dup.find(short, near_dup.Params()).clusters == []
    intro = ("You are a careful math tutor. Read the question below, think about it step by step, "
             "show every intermediate result, and give the final answer as a single number at the end.\n\n")
    long = [intro + f"What is {a}+{b}?" for a in (17, 18) for b in range(20, 30)] + [intro + "what is 17 + 25 ?"]
    assert brute_jaccard(long[0], long[1]) > 0.9
    records = [raw(p, i) for i, p in enumerate(long)]

    def merged(**kw):
        near = build_tables(cfg(test_fraction=0, **kw), records)[2]["near_duplicates"]
        return sorted(sorted(long[records_by_id[i]] for i in cl) for cl in near["clusters"]), near

    from labelwise.pool.records import stable_id

    records_by_id = {stable_id("src", p, "a"): i for i, p in enumerate(long)}
    clusters, near = merged()
    assert clusters == [sorted([intro + "What is 17+25?", intro + "what is 17 + 25 ?"])]
    left_out = near["task_templates_left_out"]["t"]
    assert len(intro.rstrip()) <= left_out["prefix_chars"] <= len(intro) and left_out["suffix_chars"] == 0
    clusters, _ = merged(dedup_strip_template=False)
    assert clusters == [sorted(long)]
    clusters, _ = merged(dedup_strip_template=False, dedup_threshold=1.0)
    assert clusters == [sorted([intro + "What is 17+25?", intro + "what is 17 + 25 ?"])]


def test_split_has_no_near_duplicate_across_pool_and_test():
    prompts, clusters = planted(seed=2, n_base=120, n_clusters=30)
    records = [raw(p, i, task=f"t{i % 2}") for i, p in enumerate(prompts)]
    settings_ = dict(test_fraction=0.3, test_max_per_task=100, seed=3)
    pool, test, _ = build_tables(cfg(**settings_), records)
    test_sets = [grams(q) for q in test.prompt]
    crossing = [(p, q) for p in pool.prompt for q in test_sets if brute_jaccard(grams(p), q) >= 0.7]
    assert crossing == []
    # without near dedup the same split leaks planted variants into the test split
    pool, test, _ = build_tables(cfg(dedup="exact", **settings_), records)
    assert any(brute_jaccard(p, q) >= 0.7 for p in pool.prompt for q in test.prompt)


@settings(max_examples=20, deadline=None)
@given(
    picks=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["", "?", "!!"]), st.booleans(), st.integers(0, 2)),
           min_size=1, max_size=40),
    seed=st.integers(0, 10_000),
)
@example(picks=[(0, "", False, 0), (0, "", True, 1), (0, "?", True, 1)], seed=0)  # a task of near-identical one-liners has no template
def test_invariants_kept_plus_dropped_one_kept_per_cluster_order_free(picks, seed):
    rng = random.Random(0)
    bases = [sentence(rng, 12) for _ in range(8)]
    prompts = [(bases[b].upper() if up else bases[b]) + punct for b, punct, up, _ in picks]
    records = [raw(p, i, task=f"t{t}", response=str(i)) for i, (p, (_, _, _, t)) in enumerate(zip(prompts, picks))]
    pool, test, meta = build_tables(cfg(test_fraction=0.2), records)
    near = meta["near_duplicates"]
    assert meta["n_read"] == len(records) == len(pool) + len(test) + meta["n_dropped"]
    assert near["n_dropped"] == sum(len(c) - 1 for c in near["clusters"])
    kept = set(pool.id) | set(test.id)
    for cl in near["clusters"]:
        assert [i for i in cl if i in kept] == [min(cl)]
    # one prompt per distinct base text (every variant normalizes to the same words)
    assert len(kept) == len({b for b, _, _, _ in picks})
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    pool2, test2, meta2 = build_tables(cfg(test_fraction=0.2), shuffled)
    assert pool2.equals(pool) and test2.equals(test) and meta2["near_duplicates"] == near


def test_cosine_second_pass_keeps_pairs_whose_embeddings_differ():
    prompts, clusters = planted(seed=3, n_base=20, n_clusters=2)
    apart = {prompts[m] for m in clusters[1]}

    def embed(texts):  # a stand-in embedding: the second cluster's members point apart
        return np.array([[1.0, 0.0] if t not in apart else [0.0, 1.0] if t == prompts[clusters[1][0]] else [1.0, 0.0]
                         for t in texts])

    _, _, meta = build_tables(cfg(test_fraction=0, dedup_cosine=0.9), [raw(p, i) for i, p in enumerate(prompts)], embed=embed)
    near = meta["near_duplicates"]
    assert near["cosine"] == 0.9 and near["n_clusters"] == 2
    assert near["n_rejected_by_cosine"] == 2 and near["n_dropped"] == 3  # cluster 2 keeps its original apart


@pytest.mark.ray
def test_ray_engine_finds_the_same_clusters_as_the_local_one(local_ray, monkeypatch):
    from labelwise.pool import near_dup_ray

    monkeypatch.setattr(near_dup_ray, "ROWS_PER_BLOCK", 100)  # several blocks: the shuffle by key matters
    prompts, _ = planted(seed=4, n_base=150, n_clusters=20, length=(8, 30))
    big = sentence(random.Random(5), 30)
    prompts += [big + "!" * k for k in range(near_dup.ALL_PAIRS_UP_TO + 5)]  # a bucket linked as star + chain
    records = [raw(p, i, task=f"t{i % 3}") for i, p in enumerate(prompts)]
    local = build_tables(cfg(), records)
    on_ray = build_tables(cfg(dedup_engine="ray"), records)
    near, near_ray = local[2]["near_duplicates"], on_ray[2]["near_duplicates"]
    assert near["n_clusters"] >= 15 and max(map(len, near["clusters"])) == near_dup.ALL_PAIRS_UP_TO + 5
    assert near_ray["engine"] == "ray" and near_ray["clusters"] == near["clusters"]
    for key in ("n_candidate_pairs", "n_verified_pairs", "n_dropped", "examples"):
        assert near_ray[key] == near[key], key
    assert on_ray[0].equals(local[0]) and on_ray[1].equals(local[1])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("dedup", "fuzzy", "pool.dedup: expected one of 'exact', 'near'"),
        ("dedup_threshold", 0, "pool.dedup_threshold: must be in (0, 1]"),
        ("dedup_threshold", 1.5, "pool.dedup_threshold: must be in (0, 1]"),
        ("dedup_shingle", 0, "pool.dedup_shingle: must be from 1 to 16"),
        ("dedup_num_perm", 8, "pool.dedup_num_perm: must be from 16 to 1024"),
        ("dedup_cosine", 2, "pool.dedup_cosine: must be in [-1, 1] or null"),
        ("dedup_engine", "spark", "pool.dedup_engine: expected one of 'local', 'ray'"),
    ],
)
def test_bad_dedup_settings_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=re.escape("job.yaml: " + message)):
        cfg(**{key: value})


def test_bench_dedup_runs_small_and_finds_the_planted_variants(capsys):
    from labelwise import cli

    assert cli.main(["bench", "dedup", "--n", "3000"]) == 0
    out = capsys.readouterr().out
    assert "exact-hash dedup (baseline)" in out
    found = float(re.search(r"([\d.]+)% of those at or above the threshold", out).group(1))
    assert found >= 90 and "dropped outside the planted clusters 0 " in out
