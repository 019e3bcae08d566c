"""SelectionService: one Ray actor that holds the score table and answers many selections.

The table is loaded once; ``select`` calls run concurrently (a threaded actor, numpy and
BLAS release the GIL) and results are cached by (selector, full parameters, budget, seed,
allow_full_pool). Two identical calls in flight compute once; the second waits.

    service = start_service("runs/x/scores.parquet")          # or get_service(...) by name
    sel = ray.get(service.select.remote("weighted_task_diversity", {"base": 5}, 500, 0))

thtb and ``within_task: hardness`` read judgments.parquet and pool.parquet next to the
scores; they are loaded on the first such request.
"""

from __future__ import annotations

import threading
import time


class SelectionServiceImpl:
    """The plain class (usable without Ray); ``start_service`` wraps it as an actor."""

    def __init__(self, scores_path: str, columns: list[str] | None = None):
        from labelwise.selection.table import load_scores

        t0 = time.perf_counter()
        self.scores_path = str(scores_path)
        self.table = load_scores(scores_path, columns)
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()
        self._attach_lock = threading.Lock()
        self._cache: dict[str, object] = {}
        self._inflight: dict[str, threading.Event] = {}
        self.computed = 0
        self.hits = 0

    def select(self, strategy: str, params: dict | None, budget: int, seed: int = 0, allow_full_pool: bool = False):
        from labelwise.selection.run import request_key, run_selection

        key = request_key(strategy, params, budget, seed, allow_full_pool)
        while True:
            with self._lock:
                if key in self._cache:
                    self.hits += 1
                    return self._cache[key]
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # the same request is being computed by another call
            with self._lock:
                if key not in self._cache and key not in self._inflight:
                    continue  # it failed there; compute here (and raise the same error)
        try:
            self._attach_if_needed(strategy, params)
            result = run_selection(self.table, strategy, params, budget, seed, allow_full_pool)
            with self._lock:
                self._cache[key] = result
                self.computed += 1
            return result
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()

    def _attach_if_needed(self, strategy, params) -> None:
        """Judgments and prompts (next to the scores), loaded once, for the selections that read them."""
        from labelwise.selection.judgments import attach, needs_judgments

        if not needs_judgments({"strategy": strategy, "params": params}):
            return
        with self._attach_lock:
            if self.table.judgments is None:
                attach(self.table, self.scores_path)

    def stats(self) -> dict:
        with self._lock:
            return {
                "scores": self.scores_path,
                "rows": self.table.n,
                "tasks": self.table.n_tasks,
                "excluded": len(self.table.excluded),
                "load_seconds": self.load_seconds,
                "cached": len(self._cache),
                "computed": self.computed,
                "hits": self.hits,
            }


def start_service(scores_path, *, max_concurrency: int = 4, num_cpus: float = 1, name: str | None = None, columns=None):
    """Start (or, with ``name``, find) the SelectionService actor; Ray must be initialized."""
    import ray

    actor = ray.remote(SelectionServiceImpl).options(
        max_concurrency=max_concurrency,
        num_cpus=num_cpus,
        name=name,
        get_if_exists=name is not None,
    )
    return actor.remote(str(scores_path), columns)
