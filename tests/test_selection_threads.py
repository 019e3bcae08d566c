"""The single-thread BLAS limit of greedy loops is shared safely by concurrent selections."""

from __future__ import annotations

import threading

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from labelwise.selection.threads import single_thread_blas  # noqa: E402


def blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture
def baseline():
    import numpy  # noqa: F401  (loads its BLAS)

    try:
        import scipy.linalg.blas  # noqa: F401  (DPP's rank-1 updates: scipy's own BLAS, if any)
    except ImportError:
        pass

    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can control")
    with threadpoolctl.threadpool_limits(limits=3, user_api="blas"):  # a known value above 1
        start = blas_threads()
        assert start and 1 not in start
        yield start


def test_overlapping_users_restore_the_original_limit(baseline):
    """A enters, B enters, A leaves, B leaves: the interleaving of two concurrent selections.
    Plain threadpool_limits contexts restore in the wrong order and leave BLAS at 1 thread."""
    a, b = single_thread_blas(), single_thread_blas()
    a.__enter__()
    assert blas_threads() == {1}
    b.__enter__()
    a.__exit__(None, None, None)
    assert blas_threads() == {1}  # B's greedy loop is still running
    b.__exit__(None, None, None)
    assert blas_threads() == baseline


def test_concurrent_threads_leave_blas_as_found(baseline):
    barrier = threading.Barrier(4)
    errors = []

    def work(i):
        try:
            for k in range(30):
                with single_thread_blas():
                    if k == i:
                        barrier.wait(timeout=10)  # make the four overlap at least once
                    assert blas_threads() == {1}
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert blas_threads() == baseline
    with pytest.raises(RuntimeError):  # an exception inside still restores
        with single_thread_blas():
            raise RuntimeError("boom")
    assert blas_threads() == baseline


def test_concurrent_selections_leave_blas_as_found(baseline):
    """What the threaded SelectionService does: greedy selectors in several threads at once."""
    import numpy as np

    from labelwise.selection import table as T
    from labelwise.selection.service import SelectionServiceImpl

    rng = np.random.default_rng(0)
    n = 400
    tab = T.from_arrays(
        [f"p{i:04d}" for i in range(n)],
        [f"t{i % 5}" for i in range(n)],
        {"logconf": -rng.gamma(2, 1, n), "n_tokens": rng.integers(1, 9, n).astype(float)},
        rng.normal(size=(n, 16)).astype(np.float32),
    )
    svc = SelectionServiceImpl.__new__(SelectionServiceImpl)  # the service without a scores file
    svc.scores_path, svc.table, svc.load_seconds = "<memory>", tab, 0.0
    svc._lock, svc._cache, svc._inflight, svc.computed, svc.hits = threading.Lock(), {}, {}, 0, 0
    errors = []

    def work(strategy, seed):
        try:
            assert len(svc.select(strategy, {}, 40, seed).ids) == 40
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s, k)) for s in ("kcenter", "dpp") for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and svc.computed == 8
    assert blas_threads() == baseline
