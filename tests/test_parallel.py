"""Worker threads: how a batch is split, and the prefetching iterator the training loop uses."""

from __future__ import annotations

import math
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lenet_fn.parallel import MIN_ROWS_PER_PART, Workers, helper_process, prefetched
from lenet_fn.runtime import find_blas


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

    expected = [item * item for item in range(7)]
    assert list(prefetched(job, range(7), executor=None)) == expected
    with ThreadPoolExecutor(2) as pool:
        for ahead in (1, 2, 10):
            assert list(prefetched(job, range(7), executor=pool, ahead=ahead)) == expected
        assert list(prefetched(job, [], executor=pool)) == []
        assert list(prefetched(job, [5], executor=pool)) == [25]
        with pytest.raises(ValueError, match="ahead: expected an integer >= 1, got 0"):
            next(prefetched(job, range(3), executor=pool, ahead=0))


def test_prefetched_runs_the_next_jobs_while_the_caller_works() -> None:
    started = [threading.Event() for _ in range(4)]

    def job(item: int) -> int:
        started[item].set()
        return item

    with ThreadPoolExecutor(2) as pool:
        for item in prefetched(job, range(4), executor=pool, ahead=2):
            for following in range(item + 1, min(item + 3, 4)):  # started without the caller asking
                assert started[following].wait(timeout=10)


def test_prefetched_raises_a_jobs_error_in_its_place() -> None:
    def job(item: int) -> int:
        if item == 2:
            raise ValueError("bad item 2")
        return item

    results = []
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="bad item 2"):
        for result in prefetched(job, range(5), executor=pool):
            results.append(result)
    assert results == [0, 1]


def test_closing_prefetched_early_cancels_the_jobs_not_started() -> None:
    done: list[int] = []

    def job(item: int) -> int:
        time.sleep(0.02)
        done.append(item)
        return item

    with ThreadPoolExecutor(1) as pool:
        iterator = prefetched(job, range(100), executor=pool, ahead=3)
        assert next(iterator) == 0
        iterator.close()
    assert done[:2] == [0, 1] and len(done) <= 3  # at most the job running at close finished


def helper_settings(_: object) -> tuple[bool, int | None]:
    """Run in the helper process: does it ignore Ctrl-C, and how many BLAS threads does it use."""
    blas = find_blas()
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN, None if blas is None else blas.get_threads()


def test_the_helper_process_ignores_ctrl_c_runs_one_blas_thread_and_reports_errors() -> None:
    with helper_process() as pool:
        assert list(prefetched(helper_settings, range(2), executor=pool)) == [(True, 1), (True, 1)]
        with pytest.raises(ValueError, match="math domain error"):
            list(prefetched(math.sqrt, [4.0, -1.0], executor=pool))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not this process's


@pytest.mark.parametrize("threads", [1, 2])
def test_workers_keep_blas_to_one_thread_each_and_restore_it(threads: int) -> None:
    blas = find_blas()
    assert blas is not None  # numpy's wheels bundle OpenBLAS
    before = blas.get_threads()
    blas.set_threads(2)
    try:
        with Workers(threads):
            assert blas.get_threads() == 1  # --threads 1 means one core, not one worker plus BLAS threads
        assert blas.get_threads() == 2
    finally:
        blas.set_threads(before)
