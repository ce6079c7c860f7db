"""Timing helpers the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(run: Callable[[], object], *, repeats: int, number: int) -> float:
    """The median over ``repeats`` of the mean seconds of ``number`` calls (after one to warm up)."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            run()
        times.append((time.perf_counter() - started) / number)
    return statistics.median(times)


def fastest_alternating(first: Callable[[], object], second: Callable[[], object], rounds: int = 5) -> tuple[float, float]:
    """The fewest seconds of one call of each, the two called in turn ``rounds`` times (after a
    call each to warm up): on a shared machine, what another tenant takes slows both alike, and
    the fastest call is the one it slowed least."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for job, record in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            job()
            record.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])
