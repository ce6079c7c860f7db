"""A sweep's figure (the optional ``plot`` extra): the test (or held-out) error per epoch of every
setting, each seed a thin line and the mean over the seeds a bold one in the same colour, on a log
axis labelled in plain percentages (``plots.percent_axis``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lenet_fn.plots import percent_axis, pyplot, save_figure
from lenet_fn.sweep_results import SettingSummary
from lenet_fn.sweep_task import RunOutcome

RESULTS_PLOT = "results.png"


def sweep_figure(summaries: Sequence[SettingSummary], histories: Mapping[str, Sequence[float]]) -> Any:
    """The figure ``plot_sweep`` saves; ``histories`` maps a run's name to its errors per epoch (fractions)."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot().subplots(figsize=(7, 4.5), constrained_layout=True)
    colours = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    percents: list[float] = []
    for index, summary in enumerate(summaries):
        colour = colours[index % len(colours)]
        curves = [100 * np.asarray(histories[entry.name], dtype=np.float64) for entry in summary.runs]
        for curve in curves:
            axes.plot(np.arange(1, curve.size + 1), curve, color=colour, linewidth=0.8, marker=".", markersize=3, alpha=0.5)
        mean = np.mean(np.stack(curves), axis=0)
        axes.plot(np.arange(1, mean.size + 1), mean, color=colour, linewidth=2.4, marker="o", markersize=4,
                  label=f"{summary.setting} (mean of {len(curves)})")  # fmt: skip
        percents.extend(float(value) for curve in curves for value in curve)
    measured = {summary.evaluated for summary in summaries}
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"{measured.pop() if len(measured) == 1 else 'test or held-out'} error (%)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    percent_axis(axes, percents)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    axes.set_title("error per epoch: each seed thin, the mean over the seeds bold")
    return figure


def plot_sweep(summaries: Sequence[SettingSummary], outcomes: Sequence[RunOutcome], path: Path) -> Path:
    """Draws ``sweep_figure`` of the complete runs of ``outcomes`` to the PNG ``path``.

    Args:
        summaries: the settings' figures (``sweep_results.summarize``).
        outcomes: the runs' outcomes, whose histories are drawn.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    histories = {outcome.name: [entry.test_error for entry in outcome.history] for outcome in outcomes if outcome.complete}
    figure = sweep_figure(summaries, histories)
    return save_figure(figure, path)
