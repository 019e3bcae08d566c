"""BLAS thread limits for greedy loops.

A greedy pick does small matrix-vector products; with several BLAS threads on a busy
machine each one costs far more in thread hand-off than in arithmetic (measured 5-7x
slower on two shared cores). Greedy loops run single-threaded; big matrix products
(kernel blocks, kNN, working-set refreshes) run outside them with every thread.
"""

from __future__ import annotations

import contextlib


def single_thread_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the loops just run slower
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
