"""BLAS thread limits for greedy loops.

A greedy pick does small matrix-vector products; with several BLAS threads on a busy
machine each one costs far more in thread hand-off than in arithmetic (measured 5-7x
slower on two shared cores). Greedy loops run single-threaded; big matrix products
(kernel blocks, kNN, working-set refreshes) run outside them with every thread.

The BLAS thread count is a process-wide setting, and the SelectionService runs several
selections at once in threads. Plain ``threadpool_limits`` contexts entered and left by
concurrent threads restore in the wrong order (A saves N and sets 1, B saves 1, A restores
N, B restores 1: BLAS stuck at one thread for good). So the limit is shared: the first
concurrent user sets it, later users only count themselves in, and the last one to leave
restores what the first one found. While any greedy loop runs, every thread of the process
sees one BLAS thread.

threadpoolctl (>= 3.6) lets only one "controlling" thread change a pthreads OpenBLAS and
silently ignores the others; the first and the last user can be different threads, so each
change here takes control first and gives it back after (under the same lock).
"""

from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_users = 0
_limiter = None  # the threadpool_limits object made by the first of the current users


def _release_control() -> None:
    """Let the calling thread change OpenBLAS limits (threadpoolctl >= 3.6; a no-op before)."""
    try:
        from threadpoolctl import OpenBLASController

        OpenBLASController.clear_controlling_thread(force=True)
    except (ImportError, AttributeError, TypeError):
        pass


@contextlib.contextmanager
def single_thread_blas():
    global _users, _limiter
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the loops just run slower
        yield
        return
    with _lock:
        if _users == 0:
            _release_control()
            _limiter = threadpool_limits(limits=1, user_api="blas")
            _release_control()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                limiter, _limiter = _limiter, None
                _release_control()
                limiter.restore_original_limits()
                _release_control()
