"""Figures drawn with matplotlib (the optional ``plot`` extra: ``pip install 'lenet-fn[plot]'``).

Each ``plot_*`` function writes a PNG and returns its path; the ``*_figure`` function beside it
builds the matplotlib Figure it saves, for reading back. ``matplotlib_available`` says whether
they can run.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lenet_fn.atomic import write_atomically
from lenet_fn.ops import SQUASH_AMPLITUDE

PLOT_HINT = "install the plot extra for figures: python -m pip install 'lenet-fn[plot]' (or: pip install matplotlib)"

# Mantissas of the error axis's labels, sparsest first: 1, 2, 5, 10, 20, ... and two finer ladders
# for curves that span less than a factor of 2.5.
PERCENT_LADDERS: tuple[tuple[str, ...], ...] = (
    ("1", "2", "5"),
    ("1", "1.5", "2", "3", "5", "7"),
    ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8"),
)


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as pyplot

    return pyplot


def save_figure(figure: Any, path: Path) -> Path:
    """Writes ``figure`` to the PNG ``path`` (atomically) and closes it, also when the write fails."""

    def write(stream: Any) -> None:
        figure.savefig(stream, format="png", dpi=120, bbox_inches="tight")

    try:
        write_atomically(path, write)
    finally:
        pyplot().close(figure)
    return path


def _ladder(mantissas: Sequence[str], low: float, high: float) -> list[float]:
    """Every ``mantissa x 10^k`` from the decade below ``low`` to the decade above ``high``."""
    decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
    return sorted(float(f"{mantissa}e{decade}") for decade in decades for mantissa in mantissas)


def _chosen_ladder(low: float, high: float) -> tuple[tuple[str, ...], list[float]]:
    """The ladder ``percent_ticks`` picks for data from ``low`` to ``high``, and its values there."""
    insides = [[value for value in _ladder(mantissas, low, high) if low <= value <= high] for mantissas in PERCENT_LADDERS]
    for enough in (3, 2):
        for mantissas, inside in zip(PERCENT_LADDERS, insides):
            if len(inside) >= enough:
                return mantissas, inside
    finest = _ladder(PERCENT_LADDERS[-1], low, high)
    below = max(value for value in finest if value <= low)
    above = min(value for value in finest if value > max(high, below))
    return PERCENT_LADDERS[-1], [value for value in finest if below <= value <= above]


def percent_ticks(low: float, high: float) -> list[float]:
    """Where to label a log axis of percentages whose data run from ``low`` to ``high`` (both > 0).

    The sparsest ladder of ``PERCENT_LADDERS`` with at least three values within the data, else
    the sparsest with two; when even the finest has fewer, its values from the one at or below
    ``low`` to the first above ``high``.
    """
    return _chosen_ladder(low, high)[1]


def run_title(model: str | None, run_dir: Path) -> str:
    """The error curve's title: the model (when known) and the run directory's name."""
    named = f"run {run_dir.resolve().name}"
    return f"{model}, {named}: error per epoch" if model else f"{named}: error per epoch"


def percent_axis(axes: Any, percents: Sequence[float]) -> None:
    """A log y axis labelled in plain percentages, with room below the data for the best's label."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    shown = [value for value in percents if value > 0] or [1.0]
    mantissas, ticks = _chosen_ladder(min(shown), max(shown))
    low, high = min(min(shown), ticks[0]), max(max(shown), ticks[-1])
    span = math.log(high / low) / 0.78  # the data fill 78% of the height: 17% below, 5% above
    bottom, top = low * math.exp(-0.17 * span), high * math.exp(0.05 * span)
    axes.set_yscale("log")
    axes.set_ylim(bottom, top)
    axes.yaxis.set_major_locator(FixedLocator(_ladder(mantissas, bottom, top)))  # also the margins' values
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_locator(NullLocator())


def _mark_best(axes: Any, numbers: Sequence[int], test_percents: Sequence[float]) -> None:
    """A star on the lowest test error (the first, if tied) and a label ``best 0.88% (epoch 14)``."""
    at = min(range(len(test_percents)), key=test_percents.__getitem__)
    best, epoch = test_percents[at], numbers[at]
    where = (epoch, max(best, axes.get_ylim()[0]))  # an error of 0 sits on the bottom edge
    axes.plot(*where, marker="*", markersize=14, color="tab:red", linestyle="none", clip_on=False, zorder=3)
    first, last = min(numbers), max(numbers)
    side = "center" if last == first else ("left", "center", "right")[min(2, int(3 * (epoch - first) / (last - first)))]
    axes.annotate(
        f"best {best:.2f}% (epoch {epoch})", where, xytext=(epoch, 0.03), textcoords=("data", "axes fraction"),
        ha=side, va="bottom", color="tab:red", arrowprops={"arrowstyle": "-", "color": "tab:red", "shrinkB": 7},
    )  # fmt: skip


def error_rate_figure(epochs: Sequence[dict[str, Any]], *, title: str = "") -> Any:
    """The figure ``plot_error_rates`` saves."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot().subplots(figsize=(6, 4))
    numbers = [int(entry["epoch"]) for entry in epochs]
    train = [100 * entry["train_error"] for entry in epochs]
    test = [100 * entry["test_error"] for entry in epochs]
    axes.plot(numbers, train, marker="o", label="training error")
    axes.plot(numbers, test, marker="s", label="test error")
    axes.set_xlabel("epoch")
    axes.set_ylabel("error rate (%)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    percent_axis(axes, train + test)
    axes.grid(True, alpha=0.3)
    _mark_best(axes, numbers, test)
    axes.legend(loc="upper right")
    if title:
        axes.set_title(title)
    return figure


def plot_error_rates(epochs: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Training and test error (percent, log scale) against the epoch, as in LeCun et al. 1998, Fig. 5.

    The y axis is labelled in plain percentages, the x axis at whole epochs, and the lowest test
    error is starred and labelled with its value and epoch.

    Args:
        epochs: per-epoch figures with ``epoch``, ``train_error`` and ``test_error`` (fractions).
        path: the PNG to write.
        title: a title (``run_title`` makes one from the model and the run directory).

    Returns:
        ``path``.
    """
    return save_figure(error_rate_figure(epochs, title=title), path)


def bitmaps_figure(centers: Any) -> Any:
    """The figure ``plot_bitmaps`` saves."""
    figure, axes = pyplot().subplots(1, 10, figsize=(10, 2.2))
    for digit, axis in enumerate(axes):
        axis.imshow(centers[digit].reshape(12, 7), cmap="gray_r", vmin=-1, vmax=1)
        axis.set_title(str(digit))
        axis.axis("off")
    figure.suptitle("LeNet-5 RBF output prototypes (7 x 12, black = +1)")
    return figure


def plot_bitmaps(centers: Any, path: Path) -> Path:
    """The 10 RBF prototypes (10, 84) as 7 x 12 bitmaps, one panel per digit."""
    return save_figure(bitmaps_figure(centers), path)


def _panel(figure: Any, place: Any, picture: Any, label: str, limits: tuple[float, float]) -> Any:
    axis = figure.add_subplot(place)
    shown = axis.imshow(picture, cmap="gray", vmin=limits[0], vmax=limits[1])
    axis.set_title(label, fontsize=8)
    axis.axis("off")
    return shown


def feature_maps_figure(image: Any, c1: Any, c3: Any, *, title: str = "") -> Any:
    """The figure ``plot_feature_maps`` saves."""
    figure = pyplot().figure(figsize=(12.5, 4.8))
    grid = figure.add_gridspec(3, 11, width_ratios=[1] * 10 + [0.18], wspace=0.25, hspace=0.35)
    squashed = (-SQUASH_AMPLITUDE, SQUASH_AMPLITUDE)
    pixels = _panel(figure, grid[0:2, 0:2], image, "input", (0, 255))
    c1_maps = [_panel(figure, grid[0, 2 + index], c1[index], f"C1 {index}", squashed) for index in range(6)]
    c3_maps = [_panel(figure, grid[1 + index // 8, 2 + index % 8], c3[index], f"C3 {index}", squashed) for index in range(16)]
    input_bar = figure.colorbar(pixels, cax=_bar_axis(figure, grid[2, 0:2]), orientation="horizontal")
    input_bar.set_label("input pixel (0 = background)", fontsize=8)
    input_bar.set_ticks([0, 128, 255])
    for maps, rows, name in ((c1_maps, grid[0, 10], "C1"), (c3_maps, grid[1:3, 10], "C3")):
        bar = figure.colorbar(maps[0], cax=figure.add_subplot(rows))
        bar.set_label(f"{name} output (squashed)", fontsize=8)
        bar.set_ticks([-SQUASH_AMPLITUDE, 0, SQUASH_AMPLITUDE], labels=["-1.7159", "0", "1.7159"], fontsize=7)
    if title:
        figure.suptitle(title)
    return figure


def _bar_axis(figure: Any, place: Any) -> Any:
    """A thin horizontal colour-bar axis near the top of ``place``."""
    holder = figure.add_subplot(place)
    holder.axis("off")
    return holder.inset_axes((0.05, 0.7, 0.9, 0.12))


def plot_feature_maps(image: Any, c1: Any, c3: Any, path: Path, *, title: str = "") -> Path:
    """A uint8 input (H, W) beside its C1 (6, 28, 28) and C3 (16, 10, 10) feature maps.

    Layout: the input on the left; C1 in the first row, C3 in the two rows below (8 per row). The
    input is drawn on its fixed 0..255 scale and every feature map on the squashing function's
    range (-1.7159, 1.7159), each with a colour bar, so panels and inputs can be compared.
    """
    return save_figure(feature_maps_figure(image, c1, c3, title=title), path)


def f6_figure(f6: Any, bitmap: Any, predicted: int, distances: Any) -> Any:
    """The figure ``plot_f6`` saves."""
    figure, axes = pyplot().subplots(1, 3, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1, 2.6]})
    axes[0].imshow(f6.reshape(12, 7), cmap="gray_r", vmin=-SQUASH_AMPLITUDE, vmax=SQUASH_AMPLITUDE)
    axes[0].set_title("F6 output")
    axes[1].imshow(bitmap.reshape(12, 7), cmap="gray_r", vmin=-1, vmax=1)
    axes[1].set_title(f"bitmap of {predicted}")
    for axis in axes[:2]:
        axis.axis("off")
    _distance_bars(axes[2], [float(value) for value in distances], predicted)
    figure.tight_layout()
    return figure


def _distance_bars(axis: Any, distances: Sequence[float], predicted: int) -> None:
    """One bar per class, each with its value written above, the winner red and dotted at its height."""
    colors = ["tab:red" if digit == predicted else "tab:gray" for digit in range(len(distances))]
    axis.bar(range(len(distances)), distances, color=colors)
    axis.plot(predicted, distances[predicted], marker="o", color="tab:red", clip_on=False, zorder=3)
    for digit, value in enumerate(distances):
        axis.annotate(f"{value:.3g}", (digit, value), xytext=(0, 4), textcoords="offset points", ha="center",
                      fontsize=7, color=colors[digit], fontweight="bold" if digit == predicted else "normal")  # fmt: skip
    axis.set_ylim(0, 1.12 * max(max(distances), 1e-12))
    axis.set_xticks(range(len(distances)))
    axis.set_xlabel("class")
    axis.set_ylabel("squared distance to\nthe class's bitmap")
    axis.set_title("RBF output per class (the smallest wins)")


def plot_f6(f6: Any, bitmap: Any, predicted: int, distances: Any, path: Path) -> Path:
    """F6's 84 outputs as a 7 x 12 picture beside the bitmap of the predicted class, and the 10 distances.

    The distances are the RBF layer's outputs, the squared Euclidean distances between F6's output
    and each class's bitmap; each bar carries its value, so the winner's (often near 0) shows.
    """
    return save_figure(f6_figure(f6, bitmap, predicted, distances), path)


def confusion_figure(confusion: Any, *, title: str = "") -> Any:
    """The figure ``plot_confusion`` saves."""
    figure, axis = pyplot().subplots(figsize=(6.5, 5.8), layout="constrained")
    shown = axis.imshow(confusion, cmap="Blues")
    for true in range(confusion.shape[0]):
        for predicted in range(confusion.shape[1]):
            value = int(confusion[true, predicted])
            if value:
                color = "white" if value > confusion.max() / 2 else "black"
                axis.text(predicted, true, str(value), ha="center", va="center", fontsize=7, color=color)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_xticks(range(confusion.shape[1]))
    axis.set_yticks(range(confusion.shape[0]))
    figure.colorbar(shown, ax=axis, shrink=0.9).set_label("images")
    if title:
        figure.suptitle(title)
    return figure


def plot_confusion(confusion: Any, path: Path, *, title: str = "") -> Path:
    """A (K, K) confusion matrix, rows true classes, with the counts written in the cells."""
    return save_figure(confusion_figure(confusion, title=title), path)
