"""Pool building as plain functions: ids, templates, drops, duplicates, caps, test split."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.config import ConfigError, build
from labelwise.pool.build import build_tables, split_test, held_out_size
from labelwise.pool.config import PoolConfig
from labelwise.pool.records import Mapper, Raw, map_rows, render_template, stable_id


def cfg(**kw) -> PoolConfig:
    return build(PoolConfig, {"source": "mem", **kw}, "job.yaml: pool")


def raw(prompt, response="a", task="t", where="f.jsonl:1", source="src"):
    return Raw(prompt=prompt, response=response, task=task, source=source, where=where)


def test_stable_id_depends_on_source_and_content_only():
    a = stable_id("s", "p", "r")
    assert a == stable_id("s", "p", "r") and len(a) == 16
    assert len({a, stable_id("s2", "p", "r"), stable_id("s", "p2", "r"), stable_id("s", "p", "r2")}) == 4
    # no ambiguity from concatenation
    assert stable_id("s", "ab", "c") != stable_id("s", "a", "bc")


def test_template_joins_columns_and_leaves_out_empty_paragraphs():
    t = "{instruction}\n\n{context}"
    assert render_template(t, {"instruction": "Sum up.", "context": "Text."}) == "Sum up.\n\nText."
    assert render_template(t, {"instruction": "Sum up.", "context": ""}) == "Sum up."
    assert render_template(t, {"instruction": "Sum up.", "context": None}) == "Sum up."
    assert render_template("Q: {q} A:", {"q": "why"}) == "Q: why A:"


def test_missing_column_lists_columns_found():
    m = Mapper(prompt="question", response="answer", task="task")
    with pytest.raises(ValueError, match=r"f.csv: column 'question' not found; columns found: q, answer, task"):
        list(map_rows([("f.csv:2", {"q": "x", "answer": "y", "task": "t"})], m, "src", "f.csv"))


def test_a_column_absent_from_one_row_reads_as_empty_and_is_counted():
    m = Mapper(prompt=None, response="output", task="task", prompt_template="{instruction}\n\n{input}")
    rows = [
        ("f.jsonl:1", {"instruction": "Add.", "input": "1 2", "output": "3", "task": "math"}),
        ("f.jsonl:2", {"instruction": "Greet.", "output": "hi", "task": "chat"}),  # no input key
        ("f.jsonl:3", {"instruction": "Name one.", "input": "", "output": "x"}),  # no task key
        ("f.jsonl:4", {"instruction": "Spell.", "input": "", "output": "y", "task": None}),  # task null
    ]
    records = list(map_rows(rows, m, "src", "f.jsonl"))  # no error
    assert [r.absent for r in records] == [(), ("input",), ("task",), ()]
    assert records[1].prompt == "Greet." and records[2].task is None and records[3].task is None
    pool, _, meta = build_tables(cfg(test_fraction=0), records)
    assert sorted(pool.prompt) == ["Add.\n\n1 2", "Greet."]
    # an absent task key is counted like a null one, with its place
    assert meta["dropped"]["no task"] == {"count": 2, "examples": ["f.jsonl:3", "f.jsonl:4"]}
    assert meta["absent_columns"] == {
        "input": {"count": 1, "examples": ["f.jsonl:2"]},
        "task": {"count": 1, "examples": ["f.jsonl:3"]},
    }
    assert meta["n_read"] == meta["n_pool"] + meta["n_test"] + meta["n_dropped"]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"job.yaml: pool.test_fraction: must be in \[0, 1\)"):
        cfg(test_fraction=1.5)
    with pytest.raises(ConfigError, match=r"pool.columns: unknown key 'answer'"):
        cfg(columns={"answer": "x"})
    with pytest.raises(ConfigError, match=r"pool.source: unknown built-in pool 'builtin:nope'"):
        build(PoolConfig, {"source": "builtin:nope"}, "job.yaml: pool")
    with pytest.raises(ConfigError, match=r"pool.infer_tasks"):
        cfg(infer_tasks=1)


def test_bad_rows_are_counted_with_reasons_and_places():
    records = [
        raw("good one", where="f:1"),
        raw("   ", where="f:2"),
        raw("no task here", task=None, where="f:3"),
        raw("good one", where="f:4"),  # exact duplicate of f:1
        raw("x" * 50, where="f:5"),
        raw("good two", response="r" * 30, where="f:6"),
        raw("good one", response="other", where="f:7"),  # same prompt, other answer: kept
    ]
    pool, test, meta = build_tables(cfg(max_prompt_chars=40, max_response_chars=20, test_fraction=0), records)
    assert list(pool.prompt) == ["good one", "good one"]
    assert meta["n_read"] == 7 and meta["n_pool"] == 2 and meta["n_dropped"] == 5
    d = meta["dropped"]
    assert d["empty prompt"] == {"count": 1, "examples": ["f:2"]}
    assert d["no task"] == {"count": 1, "examples": ["f:3"]}
    assert d["duplicate (same source, prompt and response)"]["examples"] == ["f:4"]
    assert meta["duplicates"] == {"count": 1, "examples": [{"row": "f:4", "first_seen": "f:1"}]}
    assert d["prompt longer than max_prompt_chars=40"]["examples"] == ["f:5"]
    assert d["response longer than max_response_chars=20"]["examples"] == ["f:6"]
    assert meta["prompts_with_conflicting_responses"] == 1
    # read = kept + dropped: nothing vanishes silently
    assert meta["n_read"] == meta["n_pool"] + meta["n_test"] + meta["n_dropped"]


def many(task_sizes: dict[str, int]) -> list[Raw]:
    return [raw(f"{t} prompt {i}", response=str(i), task=t, where=f"f:{t}{i}") for t, n in task_sizes.items() for i in range(n)]


def test_task_filters_caps_and_min_size():
    sizes = {"a": 50, "b": 30, "c": 3, "d": 10, "e": 8}
    c = cfg(exclude_tasks=["e"], min_per_task=5, max_per_task=20, task_caps={"b": 12}, test_fraction=0)
    pool, _, meta = build_tables(c, many(sizes))
    counts = pool.task.value_counts().to_dict()
    assert counts == {"a": 20, "b": 12, "d": 10}
    d = meta["dropped"]
    assert d["task in pool.exclude_tasks"]["count"] == 8
    assert d["task has fewer than min_per_task=5 prompts"]["count"] == 3
    assert d["over the per-task cap (max_per_task / task_caps)"]["count"] == 30 + 18
    pool2, _, _ = build_tables(cfg(tasks=["a", "c"], test_fraction=0), many(sizes))
    assert sorted(set(pool2.task)) == ["a", "c"]
    pool3, _, meta3 = build_tables(cfg(max_tasks=2, test_fraction=0), many(sizes))
    assert pool3.task.nunique() == 2 and meta3["dropped"]["task not among the max_tasks=2 kept"]["count"] > 0


def test_unknown_task_names_are_errors_listing_tasks():
    with pytest.raises(ValueError, match=r"pool.tasks: 'zzz' is not a task of mem; tasks found: a, b"):
        build_tables(cfg(tasks=["a", "zzz"]), many({"a": 2, "b": 2}))
    with pytest.raises(ValueError, match=r"pool.task_caps: 'zzz'"):
        build_tables(cfg(task_caps={"zzz": 3}), many({"a": 2}))


def test_test_size_rule():
    assert held_out_size(100, 0.2, 8) == 8
    assert held_out_size(30, 0.2, 8) == 6
    assert held_out_size(4, 0.2, 8) == 0  # tiny tasks keep everything for the pool
    assert held_out_size(2, 0.9, 8) == 1  # the pool always keeps one
    assert held_out_size(1, 0.9, 8) == 0


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.dictionaries(st.sampled_from("abcdefg"), st.integers(1, 40), min_size=1, max_size=5),
    fraction=st.floats(0, 0.9),
    cap=st.integers(0, 10),
    seed=st.integers(0, 3),
    shuffle_seed=st.integers(0, 1000),
)
def test_split_is_disjoint_complete_bounded_and_order_invariant(sizes, fraction, cap, seed, shuffle_seed):
    c = cfg(test_fraction=fraction, test_max_per_task=cap, seed=seed)
    records = many(sizes)
    pool, test, meta = build_tables(c, records)
    assert set(pool.id).isdisjoint(test.id)
    assert len(pool) + len(test) == sum(sizes.values())
    for t, n in sizes.items():
        assert (test.task == t).sum() == held_out_size(n, fraction, cap)
        assert (pool.task == t).sum() >= 1
    shuffled = list(records)
    random.Random(shuffle_seed).shuffle(shuffled)
    pool2, test2, _ = build_tables(c, shuffled)
    assert pool2.equals(pool) and test2.equals(test)


def test_other_seed_gives_another_split_and_adding_a_task_keeps_the_others():
    base = {"a": 40, "b": 40}
    _, t0, _ = build_tables(cfg(seed=0), many(base))
    _, t1, _ = build_tables(cfg(seed=1), many(base))
    assert set(t0.id) != set(t1.id)
    _, t2, _ = build_tables(cfg(seed=0), many({**base, "c": 25}))
    assert set(t0.id) == set(t2[t2.task != "c"].id)


def test_split_test_directly_on_rows():
    rows = [{"id": f"{i:04d}", "task": "t"} for i in range(10)]
    pool, test = split_test(rows, cfg(test_fraction=0.3, test_max_per_task=2))
    assert len(test) == 2 and len(pool) == 8


def test_warnings_for_pools_selectors_cannot_use():
    _, _, meta = build_tables(cfg(test_fraction=0), many({"a": 1}))
    assert any("1 prompt(s)" in w for w in meta["warnings"])
    assert any("1 task(s)" in w for w in meta["warnings"])
    limits = meta["selection_limits"]
    assert limits["usable_by_any_selector"] is False and limits["usable_by_task_aware_selectors"] is False
    assert limits["min_prompts"] == 2 and limits["min_tasks_task_aware"] == 2
    assert "weighted_task_diversity" in limits["task_aware_selectors"]


def test_selection_limits_are_the_ones_the_selectors_enforce():
    """pool_meta.json's limits come from contracts, without importing selection; every
    registered selector must enforce exactly those minimums, or the pool's warnings lie."""
    from labelwise.contracts import MIN_PROMPTS, MIN_TASKS_TASK_AWARE, TASK_AWARE_SELECTORS
    from labelwise.selection.registry import NAMES, selector_class

    task_aware = set(TASK_AWARE_SELECTORS)
    assert task_aware <= set(NAMES)
    for name in NAMES:
        cls = selector_class(name)
        assert cls.min_prompts == MIN_PROMPTS, name
        assert cls.min_tasks == (MIN_TASKS_TASK_AWARE if name in task_aware else 1), name


def test_selection_limits_flag_one_task_pools_for_task_aware_selectors():
    _, _, one_task = build_tables(cfg(test_fraction=0), many({"a": 5}))
    assert one_task["selection_limits"]["usable_by_any_selector"] is True
    assert one_task["selection_limits"]["usable_by_task_aware_selectors"] is False
    assert one_task["selection_limits"]["problems"] == one_task["warnings"]
    _, _, two = build_tables(cfg(test_fraction=0), many({"a": 5, "b": 1}))
    assert two["selection_limits"]["usable_by_task_aware_selectors"] is True and two["warnings"] == []


def test_example_pool_jobs_are_valid():
    import pathlib

    import yaml

    jobs = sorted((pathlib.Path(__file__).resolve().parents[1] / "jobs").glob("pool_*.yaml"))
    assert len(jobs) >= 5
    for path in jobs:
        data = yaml.safe_load(path.read_text())
        build(PoolConfig, data["pool"], f"{path.name}: pool")
