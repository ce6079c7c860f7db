"""Worker threads for data-parallel training and evaluation.

NumPy releases the GIL inside its array operations, so two threads working on two halves of a
batch keep two cores busy. While a ``Workers`` block is active, BLAS runs one thread per worker
(nested BLAS threads would compete for the same cores). Where the BLAS thread count cannot be
controlled, ``Workers`` runs everything on the calling thread.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterable
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


class Workers:
    """A pool of ``threads`` worker threads, used as a context manager.

    Args:
        threads: how many jobs run at once (>= 1); 1 runs them on the calling thread.
    """

    def __init__(self, threads: int) -> None:
        self.requested = check_int("threads", threads, minimum=1)
        self.threads = 1
        self._pool: ThreadPoolExecutor | None = None
        self._previous_blas_threads: int | None = None

    def __enter__(self) -> Workers:
        if self.requested > 1:
            self._previous_blas_threads = set_blas_threads(1)
            if self._previous_blas_threads is not None:
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

    def map(self, job: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        """``[job(item) for item in items]``, run ``threads`` at a time; results in order.

        Each job runs in a copy of the caller's context, so settings such as ``numpy.errstate``
        apply in the worker threads too.
        """
        if self._pool is None:
            return [job(item) for item in items]
        context = contextvars.copy_context()
        return list(self._pool.map(lambda item: context.copy().run(job, item), items))


SEQUENTIAL = Workers(1)
"""Runs every job on the calling thread (needs no ``with``)."""
