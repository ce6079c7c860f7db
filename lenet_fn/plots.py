"""Figures drawn with matplotlib (the optional ``plot`` extra: ``pip install 'lenet-fn[plot]'``).

Every function writes a PNG and returns its path; ``matplotlib_available`` says whether they can.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lenet_fn.atomic import write_atomically

PLOT_HINT = "install the plot extra for figures: python -m pip install 'lenet-fn[plot]' (or: pip install matplotlib)"


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as pyplot

    return pyplot


def _save(figure: Any, path: Path) -> Path:
    def write(stream: Any) -> None:
        figure.savefig(stream, format="png", dpi=120, bbox_inches="tight")

    write_atomically(path, write)
    _pyplot().close(figure)
    return path


def plot_error_rates(epochs: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Training and test error (percent, log scale) against the epoch, as in LeCun et al. 1998, Fig. 5.

    Args:
        epochs: per-epoch figures with ``epoch``, ``train_error`` and ``test_error`` (fractions).
        path: the PNG to write.
        title: a title.

    Returns:
        ``path``.
    """
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(6, 4))
    numbers = [entry["epoch"] for entry in epochs]
    axes.plot(numbers, [100 * entry["train_error"] for entry in epochs], marker="o", label="training error")
    axes.plot(numbers, [100 * entry["test_error"] for entry in epochs], marker="s", label="test error")
    axes.set_xlabel("epoch")
    axes.set_ylabel("error rate (%)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    return _save(figure, path)
