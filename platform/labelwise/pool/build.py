"""Build the pool and the held-out test split from raw records: plain functions, no Ray.

Order of work: read -> clean (empty prompt, no task, too long: dropped with a reason) ->
ids and duplicates -> optional task inference -> task filters and caps -> near duplicates
(pool.dedup: near, pool/dedup.py) -> test split.
Every row that does not reach pool.parquet or test.parquet is counted under a reason.
Sampling is order-invariant: rows are ranked by a hash of (seed, purpose, id), so moving
rows in the input file changes nothing, and adding a task does not reshuffle the others.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter, defaultdict
from typing import Iterable

from labelwise.contracts import POOL_COLUMNS
from labelwise.pool.config import PoolConfig
from labelwise.pool.records import Raw, stable_id

COLUMNS = POOL_COLUMNS
EXAMPLES_PER_REASON = 5


class Drops:
    """Dropped rows by reason, with a few example locations for each reason."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, where: str, n: int = 1) -> None:
        """Count ``n`` rows dropped for ``reason``; ``where`` is one place, kept as an example."""
        self.counts[reason] += n
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(where)

    def absorb(self, reported: dict) -> int:
        """Add drops reported as ``as_dict()`` does (by a source, or another Drops); returns
        how many rows they count."""
        for reason, d in reported.items():
            self.counts[reason] += int(d["count"])
            room = EXAMPLES_PER_REASON - len(self.examples[reason])
            self.examples[reason].extend(list(d.get("examples", []))[: max(room, 0)])
        return sum(int(d["count"]) for d in reported.values())

    def as_dict(self) -> dict:
        return {r: {"count": n, "examples": self.examples[r]} for r, n in self.counts.most_common()}


def hashed_order(keys: Iterable[str], seed: int, purpose: str) -> list[str]:
    """``keys`` in a seeded pseudo-random order that does not depend on their input order."""

    def rank(k: str) -> str:
        return hashlib.sha1(f"{seed}\x00{purpose}\x00{k}".encode()).hexdigest()

    return sorted(keys, key=rank)


def clean(records: Iterable[Raw], cfg: PoolConfig, drops: Drops, need_task: bool = True) -> tuple[list[dict], dict]:
    """Drop bad rows (with reasons), give ids, drop exact duplicates (reported)."""
    rows: list[dict] = []
    seen: dict[str, str] = {}
    prompt_answers: dict[tuple[str | None, str], str] = {}
    dup_examples, conflicts = [], 0
    absent = Drops()  # rows lacking a mapped column (read as empty), by column
    n_read = 0
    for r in records:
        n_read += 1
        for column in r.absent:
            absent.add(column, r.where)
        prompt = r.prompt.strip() if r.prompt else ""
        if not prompt:
            drops.add("empty prompt", r.where)
            continue
        if need_task and not r.task:
            drops.add("no task", r.where)
            continue
        if cfg.max_prompt_chars is not None and len(prompt) > cfg.max_prompt_chars:
            drops.add(f"prompt longer than max_prompt_chars={cfg.max_prompt_chars}", r.where)
            continue
        response = (r.response or "").strip()
        if cfg.max_response_chars is not None and len(response) > cfg.max_response_chars:
            drops.add(f"response longer than max_response_chars={cfg.max_response_chars}", r.where)
            continue
        rid = stable_id(r.source, prompt, response)
        if rid in seen:
            drops.add("duplicate (same source, prompt and response)", r.where)
            if len(dup_examples) < EXAMPLES_PER_REASON:
                dup_examples.append({"row": r.where, "first_seen": seen[rid]})
            continue
        seen[rid] = r.where
        key = (r.task, prompt)
        if key in prompt_answers and prompt_answers[key] != response:
            conflicts += 1
        prompt_answers.setdefault(key, response)
        rows.append({"id": rid, "task": r.task, "prompt": prompt, "response": response, "source": r.source, "_where": r.where})
    info = {
        "n_read": n_read,
        "duplicates": {"count": drops.counts["duplicate (same source, prompt and response)"], "examples": dup_examples},
        "prompts_with_conflicting_responses": conflicts,
        "absent_columns": absent.as_dict(),
    }
    return rows, info


def filter_tasks(rows: list[dict], cfg: PoolConfig, drops: Drops) -> list[dict]:
    """pool.tasks / exclude_tasks / min_per_task / max_tasks / max_per_task / task_caps."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    if cfg.tasks is not None:
        unknown = [t for t in cfg.tasks if t not in by_task]
        if unknown:
            raise ValueError(
                f"pool.tasks: {unknown[0]!r} is not a task of {cfg.source_label}; tasks found: "
                f"{', '.join(sorted(by_task)[:40])}{' ...' if len(by_task) > 40 else ''}"
            )
    unknown_caps = [t for t in cfg.task_caps if t not in by_task]
    if unknown_caps:
        raise ValueError(f"pool.task_caps: {unknown_caps[0]!r} is not a task of {cfg.source_label}")

    def drop_task(task: str, reason: str) -> None:
        for row in by_task.pop(task):
            drops.add(reason, row["_where"])

    for task in sorted(by_task):
        if cfg.tasks is not None and task not in cfg.tasks:
            drop_task(task, "task not in pool.tasks")
        elif task in cfg.exclude_tasks:
            drop_task(task, "task in pool.exclude_tasks")
    for task in sorted(by_task):
        if len(by_task[task]) < cfg.min_per_task:
            drop_task(task, f"task has fewer than min_per_task={cfg.min_per_task} prompts")
    if cfg.max_tasks is not None and len(by_task) > cfg.max_tasks:
        keep = set(hashed_order(by_task, cfg.seed, "tasks")[: cfg.max_tasks])
        for task in sorted(set(by_task) - keep):
            drop_task(task, f"task not among the max_tasks={cfg.max_tasks} kept")
    out = []
    for task in sorted(by_task):
        cap = cfg.task_caps.get(task, cfg.max_per_task)
        group = {r["id"]: r for r in by_task[task]}
        order = hashed_order(group, cfg.seed, f"cap:{task}")
        for rid in order[cap:] if cap is not None else []:
            drops.add("over the per-task cap (max_per_task / task_caps)", group[rid]["_where"])
        out.extend(group[rid] for rid in (order[:cap] if cap is not None else order))
    return out


def held_out_size(n: int, fraction: float, cap: int) -> int:
    """Held-out rows for a task of n prompts: floor(fraction * n), at most cap, and the
    pool always keeps at least one prompt."""
    return max(0, min(cap, math.floor(fraction * n), n - 1))


def split_test(rows: list[dict], cfg: PoolConfig) -> tuple[list[dict], list[dict]]:
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    pool, test = [], []
    for task in sorted(by_task):
        group = {r["id"]: r for r in by_task[task]}
        order = hashed_order(group, cfg.seed, f"test:{task}")
        k = held_out_size(len(order), cfg.test_fraction, cfg.test_max_per_task)
        test.extend(group[i] for i in order[:k])
        pool.extend(group[i] for i in order[k:])
    return pool, test


def to_frame(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame([{c: r[c] for c in COLUMNS} for r in rows], columns=COLUMNS)
    df = df.sort_values(["task", "id"], kind="stable").reset_index(drop=True)
    return df.astype({c: "str" for c in COLUMNS})


def _length_stats(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 1),
        "max": max(values),
    }


def selection_limits(n_pool: int, n_tasks: int) -> dict:
    """What selection can do with this pool, recorded in pool_meta.json as
    ``selection_limits``, from the minimums every selector enforces (contracts.MIN_PROMPTS,
    MIN_TASKS_TASK_AWARE; the select stage refuses a pool below them, the pool stage only
    warns, since a one-task pool is fine for random or uncertainty selection).
    ``usable_by_any_selector`` false means no selector can run,
    ``usable_by_task_aware_selectors`` false means the task-aware ones cannot."""
    from labelwise.contracts import MIN_PROMPTS, MIN_TASKS_TASK_AWARE, TASK_AWARE_SELECTORS

    problems = []
    if n_pool < MIN_PROMPTS:
        problems.append(f"the pool has {n_pool} prompt(s): selectors need at least {MIN_PROMPTS}")
    if n_tasks < MIN_TASKS_TASK_AWARE:
        problems.append(
            f"the pool has {n_tasks} task(s): task-aware selectors ({', '.join(TASK_AWARE_SELECTORS)}) "
            f"need at least {MIN_TASKS_TASK_AWARE}"
        )
    return {
        "min_prompts": MIN_PROMPTS,
        "min_tasks_task_aware": MIN_TASKS_TASK_AWARE,
        "task_aware_selectors": list(TASK_AWARE_SELECTORS),
        "usable_by_any_selector": n_pool >= MIN_PROMPTS,
        "usable_by_task_aware_selectors": n_pool >= MIN_PROMPTS and n_tasks >= MIN_TASKS_TASK_AWARE,
        "problems": problems,
    }


def describe(pool: list[dict], test: list[dict]) -> dict:
    """Per-task sizes and prompt lengths, and warnings the later stages care about."""
    pool_by: dict[str, list[dict]] = defaultdict(list)
    test_count: Counter = Counter(r["task"] for r in test)
    for r in pool:
        pool_by[r["task"]].append(r)
    tasks = sorted(set(pool_by) | set(test_count))
    per_task = []
    for t in tasks:
        p = pool_by.get(t, [])
        per_task.append(
            {
                "task": t,
                "pool": len(p),
                "test": test_count[t],
                "prompt_chars_mean": round(statistics.fmean(len(r["prompt"]) for r in p), 1) if p else 0.0,
                "response_chars_mean": round(statistics.fmean(len(r["response"]) for r in p), 1) if p else 0.0,
            }
        )
    limits = selection_limits(len(pool), len(pool_by))
    warnings = list(limits["problems"])
    no_answer = sum(1 for r in pool if not r["response"])
    if no_answer:
        warnings.append(f"{no_answer} pool prompts have no gold response (simulated annotation needs them)")
    return {
        "n_pool": len(pool),
        "n_test": len(test),
        "n_tasks": len(tasks),
        "tasks": per_task,
        "prompt_chars": _length_stats([len(r["prompt"]) for r in pool]),
        "response_chars": _length_stats([len(r["response"]) for r in pool]),
        "warnings": warnings,
        "selection_limits": limits,
    }


def build_tables(cfg: PoolConfig, records: Iterable[Raw], source_info: dict | None = None, embed=None):
    """Records -> (pool DataFrame, test DataFrame, metadata dict). ``embed`` (texts ->
    array) is used for task inference when ``cfg.infer_tasks`` > 0 and for the second pass
    of near-duplicate removal when ``cfg.dedup_cosine`` is set."""
    from labelwise.config import to_dict

    drops = Drops()
    rows, clean_info = clean(records, cfg, drops, need_task=cfg.infer_tasks == 0)
    # Rows a source dropped before yielding records (BIG-bench examples with no usable
    # target, ...): counted here too, so that read = pool + test + dropped still holds.
    n_at_source = drops.absorb((source_info or {}).get("dropped_at_source") or {})
    inferred = None
    if cfg.infer_tasks:
        from labelwise.pool import infer

        rows, inferred = infer.assign_tasks(rows, cfg.infer_tasks, cfg.seed, embed=embed)
    rows = filter_tasks(rows, cfg, drops)
    near = None
    if cfg.dedup == "near":
        from labelwise.pool.dedup import drop_near_duplicates

        rows, near = drop_near_duplicates(rows, cfg, drops, embed=embed)
    pool, test = split_test(rows, cfg)
    meta = {
        "config": to_dict(cfg),
        "source": source_info or {},
        "n_read": clean_info["n_read"] + n_at_source,
        "n_dropped_at_source": n_at_source,
        **describe(pool, test),
        "n_dropped": sum(drops.counts.values()),
        "dropped": drops.as_dict(),
        "duplicates": clean_info["duplicates"],
        "near_duplicates": near,
        "prompts_with_conflicting_responses": clean_info["prompts_with_conflicting_responses"],
        "absent_columns": clean_info["absent_columns"],
        "inferred_tasks": inferred,
    }
    return to_frame(pool), to_frame(test), meta
