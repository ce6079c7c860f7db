"""Worker threads for data-parallel training and evaluation.

NumPy releases the GIL inside its array operations, so two threads working on two halves of a
batch keep two cores busy. While a ``Workers`` block is active, BLAS runs one thread per worker
(nested BLAS threads would compete for the same cores), so ``Workers(1)`` keeps to one core.
Where the BLAS thread count cannot be controlled, ``Workers`` runs everything on the calling
thread.

``prefetched`` runs a producer one item ahead on a thread of its own: the training loop uses it
to warp the next batch while the current one trains.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from lenet_fn.arrays import check_int
from lenet_fn.runtime import set_blas_threads

Item = TypeVar("Item")
Result = TypeVar("Result")


def default_threads() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


MIN_ROWS_PER_PART = 48
"""The smallest part ``Workers.split`` cuts a batch into: smaller parts run slower on two threads
than whole on one (the docs' speed page)."""


class Workers:
    """A pool of ``threads`` worker threads, used as a context manager.

    Args:
        threads: how many jobs run at once (>= 1); 1 runs them on the calling thread.
        min_rows: the fewest rows ``split`` puts in a part (>= 1).
    """

    def __init__(self, threads: int, *, min_rows: int = MIN_ROWS_PER_PART) -> None:
        self.requested = check_int("threads", threads, minimum=1)
        self.min_rows = check_int("min_rows", min_rows, minimum=1)
        self.threads = 1
        self._pool: ThreadPoolExecutor | None = None
        self._previous_blas_threads: int | None = None

    def __enter__(self) -> Workers:
        # one BLAS thread per worker, also for a single worker: ``--threads 1`` means one core
        self._previous_blas_threads = set_blas_threads(1)
        if self.requested > 1 and self._previous_blas_threads is not None:
            self.threads = self.requested
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lenet_fn")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._previous_blas_threads is not None:
            set_blas_threads(self._previous_blas_threads)
            self._previous_blas_threads = None
        self.threads = 1

    def split(self, count: int) -> list[slice]:
        """``count`` rows cut into contiguous parts, one per thread, each of at least ``min_rows``
        rows (a single part when there are too few rows to share: splitting a small batch costs
        more than it saves)."""
        parts = max(1, min(self.threads, count // self.min_rows))
        bounds = [count * part // parts for part in range(parts + 1)]
        return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]

    def map(self, job: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        """``[job(item) for item in items]``, run ``threads`` at a time; results in order.

        Each job runs in a copy of the caller's context, so settings such as ``numpy.errstate``
        apply in the worker threads too.
        """
        items = list(items)
        if self._pool is None or len(items) == 1:  # one job runs here: a hand-off would only add a wait
            return [job(item) for item in items]
        context = contextvars.copy_context()
        return list(self._pool.map(lambda item: context.copy().run(job, item), items))


def prefetched(job: Callable[[Item], Result], items: Iterable[Item], *, ahead: bool = True) -> Generator[Result, None, None]:
    """``job(item)`` for each item, in order; with ``ahead``, the next item's job runs on a thread of
    its own (in a copy of the caller's context) while the caller works on the current result.

    The results are those of the plain loop; an exception raised by a job is raised where its
    result would have been yielded. Closing the iterator early waits for the job in flight.
    """
    if not ahead:
        for item in items:
            yield job(item)
        return
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="lenet_fn-prefetch") as pool:
        pending = None
        for item in items:
            following = pool.submit(context.copy().run, job, item)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


SEQUENTIAL = Workers(1)
"""Runs every job on the calling thread (needs no ``with``)."""
