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


def plot_bitmaps(centers: Any, path: Path) -> Path:
    """The 10 RBF prototypes (10, 84) as 7 x 12 bitmaps, one panel per digit."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 10, figsize=(10, 2.2))
    for digit, axis in enumerate(axes):
        axis.imshow(centers[digit].reshape(12, 7), cmap="gray_r", vmin=-1, vmax=1)
        axis.set_title(str(digit))
        axis.axis("off")
    figure.suptitle("LeNet-5 RBF output prototypes (7 x 12, black = +1)")
    return _save(figure, path)


def plot_feature_maps(image: Any, c1: Any, c3: Any, path: Path, *, title: str = "") -> Path:
    """An input (H, W) beside its C1 (6, 28, 28) and C3 (16, 10, 10) feature maps.

    Layout: the input on the left; C1 in the first row, C3 in the two rows below (8 per row).
    """
    pyplot = _pyplot()
    figure = pyplot.figure(figsize=(12, 4.5))
    grid = figure.add_gridspec(3, 10)
    panels = [(grid[:, 0:2], image, "input")]
    panels += [(grid[0, 2 + index], c1[index], f"C1 {index}") for index in range(6)]
    panels += [(grid[1 + index // 8, 2 + index % 8], c3[index], f"C3 {index}") for index in range(16)]
    for place, picture, label in panels:
        axis = figure.add_subplot(place)
        axis.imshow(picture, cmap="gray")
        axis.set_title(label, fontsize=8)
        axis.axis("off")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_f6(f6: Any, bitmap: Any, predicted: int, distances: Any, path: Path) -> Path:
    """F6's 84 outputs as a 7 x 12 picture beside the bitmap of the predicted class, and the 10 distances."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 3, figsize=(9, 3.5), gridspec_kw={"width_ratios": [1, 1, 2]})
    axes[0].imshow(f6.reshape(12, 7), cmap="gray_r", vmin=-1.7159, vmax=1.7159)
    axes[0].set_title("F6 output")
    axes[1].imshow(bitmap.reshape(12, 7), cmap="gray_r", vmin=-1, vmax=1)
    axes[1].set_title(f"bitmap of {predicted}")
    for axis in axes[:2]:
        axis.axis("off")
    axes[2].bar(range(10), distances, color=["tab:red" if digit == predicted else "tab:gray" for digit in range(10)])
    axes[2].set_xticks(range(10))
    axes[2].set_title("RBF distance per class")
    return _save(figure, path)


def plot_confusion(confusion: Any, path: Path, *, title: str = "") -> Path:
    """A (K, K) confusion matrix, rows true classes, with the counts written in the cells."""
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(6.5, 5.5))
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
    figure.colorbar(shown, ax=axis)
    if title:
        axis.set_title(title)
    return _save(figure, path)
