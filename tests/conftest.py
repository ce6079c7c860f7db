"""Shared fixtures, and a report of the worst gradient error seen per op at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

_LARGEST_ERRORS: dict[str, float] = {}


class GradientRecorder:
    """Remembers the worst gradient error per op (as a fraction of check_backward's tolerance)."""

    def record(self, op: str, error: float) -> float:
        _LARGEST_ERRORS[op] = max(error, _LARGEST_ERRORS.get(op, 0.0))
        return error


@pytest.fixture
def gradients() -> Iterator[GradientRecorder]:
    yield GradientRecorder()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _LARGEST_ERRORS:
        return
    terminalreporter.section("worst gradient error per op, as a fraction of the tolerance (float64, central differences)")
    for op, error in sorted(_LARGEST_ERRORS.items()):
        terminalreporter.write_line(f"{op:<24} {error:.2e}")
