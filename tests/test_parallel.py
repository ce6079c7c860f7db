"""Worker threads: how a batch is split, and the prefetching iterator the training loop uses."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lenet_fn.parallel import MIN_ROWS_PER_PART, Workers, prefetched
from lenet_fn.runtime import blas_threads, set_blas_threads


def test_a_batch_is_split_only_into_parts_worth_a_thread() -> None:
    with Workers(2) as workers:
        assert workers.threads == 2
        assert workers.split(32) == [slice(0, 32)]  # too small to share
        assert workers.split(2 * MIN_ROWS_PER_PART) == [slice(0, MIN_ROWS_PER_PART), slice(MIN_ROWS_PER_PART, 2 * MIN_ROWS_PER_PART)]
        assert workers.split(257) == [slice(0, 128), slice(128, 257)]
    with Workers(3, min_rows=1) as workers:
        parts = workers.split(10)
        assert [part.stop - part.start for part in parts] == [3, 3, 4] and parts[0].start == 0 and parts[-1].stop == 10
        assert workers.split(2) == [slice(0, 1), slice(1, 2)]
    assert Workers(4).split(1000) == [slice(0, 1000)]  # not entered: one thread
    with pytest.raises(ValueError, match="min_rows: expected an integer >= 1, got 0"):
        Workers(2, min_rows=0)


def test_prefetched_yields_the_plain_results_in_order() -> None:
    def job(item: int) -> int:
        time.sleep(0.001 * (item % 3))
        return item * item

    assert list(prefetched(job, range(7))) == [item * item for item in range(7)]
    assert list(prefetched(job, range(7), ahead=False)) == [item * item for item in range(7)]
    assert list(prefetched(job, [])) == []
    assert list(prefetched(job, [5])) == [25]


def test_prefetched_runs_the_next_job_while_the_caller_works() -> None:
    started = [threading.Event() for _ in range(3)]

    def job(item: int) -> str:
        started[item].set()
        return threading.current_thread().name

    names = []
    for item, name in enumerate(prefetched(job, range(3))):
        names.append(name)
        if item + 1 < 3:  # the next job starts without the caller asking for it
            assert started[item + 1].wait(timeout=10)
    assert all(name.startswith("lenet_fn-prefetch") for name in names)


def test_prefetched_raises_a_jobs_error_in_its_place_and_keeps_numpy_settings() -> None:
    def job(item: int) -> str:
        if item == 2:
            raise ValueError("bad item 2")
        return str(np.geterr()["over"])

    results = []
    with np.errstate(over="raise"), pytest.raises(ValueError, match="bad item 2"):
        for result in prefetched(job, range(5)):
            results.append(result)
    assert results == ["raise", "raise"]


def test_closing_prefetched_early_stops_its_thread() -> None:
    iterator = prefetched(lambda item: item, range(100))
    assert next(iterator) == 0
    iterator.close()
    time.sleep(0.05)
    assert not any(thread.name.startswith("lenet_fn-prefetch") for thread in threading.enumerate())


@pytest.mark.parametrize("threads", [1, 2])
def test_workers_keep_blas_to_one_thread_each_and_restore_it(threads: int) -> None:
    before = blas_threads()
    assert before is not None  # numpy's wheels bundle OpenBLAS
    set_blas_threads(2)
    try:
        with Workers(threads):
            assert blas_threads() == 1  # --threads 1 means one core, not one worker plus BLAS threads
        assert blas_threads() == 2
    finally:
        set_blas_threads(before)
