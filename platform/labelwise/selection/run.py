"""One selection call over a loaded table, and the cache key that identifies it."""

from __future__ import annotations

import json

from labelwise.selection.registry import make_selector


def request_key(strategy: str, params: dict | None, budget: int, seed: int, allow_full_pool: bool = False) -> str:
    """Canonical key: full parameters (defaults filled in), budget, seed."""
    full = make_selector(strategy, params).get_params()
    return json.dumps([strategy, full, int(budget), int(seed), bool(allow_full_pool)], sort_keys=True, default=str)


def run_selection(table, strategy: str, params: dict | None, budget: int, seed: int, allow_full_pool: bool = False):
    return make_selector(strategy, params).select(table, budget, seed, allow_full_pool)
