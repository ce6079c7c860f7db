"""Every figure of `show` is written, the bitmaps print as ASCII, and bad arguments get one line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import plots, show
from lenet_fn.shipped import pretrained_path


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return show.main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def _metrics(directory: Path) -> Path:
    epochs = [{"epoch": epoch, "train_error": 0.05 / epoch, "test_error": 0.04 / epoch} for epoch in range(1, 6)]
    (directory / "metrics.json").write_text(json.dumps({"epochs": epochs}))
    return directory


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["bitmaps"], "bitmaps.png"),
        (["features", "--test", "0"], "features.png"),
        (["f6", "--test", "1"], "f6.png"),
        (["curve", "RUN"], "curve.png"),
        (["confusion", "CKPT"], "confusion.png"),
    ],
)
def test_every_figure_is_written(argv: list[str], name: str, tmp_path: Path) -> None:
    argv = [str(_metrics(tmp_path)) if part == "RUN" else str(pretrained_path()) if part == "CKPT" else part for part in argv]
    status, out, err = _run([*argv, "--out", str(tmp_path / name)])
    assert status == 0, err
    assert out == f"wrote {tmp_path / name}\n"
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 5000


def test_features_of_an_image_file(tmp_path: Path) -> None:
    pixels = np.zeros((40, 40), np.uint8)
    pixels[8:32, 18:22] = 255  # a "1"
    np.save(tmp_path / "one.npy", pixels)
    status, _, err = _run(["features", str(tmp_path / "one.npy"), "--out", str(tmp_path / "one.png")])
    assert status == 0 and (tmp_path / "one.png").stat().st_size > 5000, err


def test_bitmaps_as_ascii_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    status, out, _ = _run(["bitmaps"])
    assert status == 0
    assert out.startswith("digit 0\n.#####.\n") and out.count("digit ") == 10
    assert out.splitlines()[-1] == f"(printed as text: {plots.PLOT_HINT})"
    status, _, err = _run(["curve", "."])
    assert status == 2 and err == f"error: curve: {plots.PLOT_HINT}\n"


def test_bad_arguments_get_one_line(tmp_path: Path) -> None:
    assert _run(["features"]) == (2, "", "error: features: give an IMAGE or --test N (an index into the MNIST test set)\n")
    assert _run(["f6", "--test", "10000"])[2] == "error: --test: expected an index in [0, 10000), got 10000\n"
    status, _, err = _run(["curve", str(tmp_path)])
    assert status == 2 and err == f"error: {tmp_path / 'metrics.json'}: no such file\n"


# The figures read back: every test builds a figure (or captures the one `show` saves) and checks
# what a reader sees in it.


def _epochs(train: list[float], test: list[float]) -> list[dict[str, float]]:
    """Per-epoch entries from error rates in percent."""
    return [{"epoch": at + 1, "train_error": a / 100, "test_error": b / 100} for at, (a, b) in enumerate(zip(train, test))]


def _shown_ticks(axis: Any, which: str) -> list[str]:
    """The tick labels of the x or y axis that lie within the axes' limits (after a draw)."""
    axis.figure.canvas.draw()
    low, high = sorted(axis.get_xlim() if which == "x" else axis.get_ylim())
    labels = axis.get_xticklabels() if which == "x" else axis.get_yticklabels()
    return [label.get_text() for label in labels if low <= (label.get_position()[0 if which == "x" else 1]) <= high]


def _saved_figure(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Any:
    """The figure ``show`` would write for ``argv``, kept open instead of saved."""
    kept: list[Any] = []

    def keep(figure: Any, path: Path) -> Path:
        kept.append(figure)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    status, _, err = _run(argv)
    assert status == 0, err
    return kept[0]


def _overlap(figure: Any, first: Any, second: Any) -> bool:
    renderer = figure.canvas.get_renderer()
    return bool(first.get_window_extent(renderer).overlaps(second.get_window_extent(renderer)))


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0.89, 17.0, [1, 2, 5, 10]),  # a LeNet-5 run: 1-2-5 steps
        (0.9, 90.0, [1, 2, 5, 10, 20, 50]),  # from chance to 1%
        (0.29, 0.6, [0.3, 0.4, 0.5, 0.6]),  # a few tenths: a finer ladder
        (2.2, 3.1, [2.5, 3]),  # too narrow for three: two
        (0.88, 0.89, [0.8, 1]),  # too narrow for any two inside: the values around it
    ],
)
def test_percent_ticks_are_plain_steps_two_or_more_in_range(low: float, high: float, ticks: list[float]) -> None:
    assert plots.percent_ticks(low, high) == pytest.approx(ticks)


def test_error_curve_labels_percent_and_whole_epochs() -> None:
    run = json.loads((Path(__file__).parents[1] / "docs/data/runs/default_s0/metrics.json").read_text())
    axes = plots.error_rate_figure(run["epochs"], title="a title").axes[0]
    assert _shown_ticks(axes, "y") == ["0.5", "1", "2", "5", "10", "20"]  # not 10^0 / 10^1, no 6x10^0
    assert _shown_ticks(axes, "x") == ["5", "10", "15", "20"]
    assert axes.get_ylabel() == "error rate (%)" and axes.get_title() == "a title"
    wide = plots.error_rate_figure(_epochs([90, 40, 9, 3, 1.3], [88, 30, 6, 2, 1.0])).axes[0]
    assert _shown_ticks(wide, "y") == ["0.5", "1", "2", "5", "10", "20", "50", "100"]
    few_tenths = plots.error_rate_figure(_epochs([0.6, 0.4, 0.32], [0.5, 0.38, 0.33])).axes[0]
    assert _shown_ticks(few_tenths, "y") == ["0.3", "0.4", "0.5", "0.6"]
    assert all(label.get_text() == "" for label in few_tenths.get_yminorticklabels())  # matplotlib's 3x10^-1, 6x10^-1
    below_the_labels = plots.error_rate_figure(_epochs([10.4, 1, 0.22], [2.5, 1, 0.9])).axes[0]
    assert _shown_ticks(below_the_labels, "y") == ["0.1", "0.2", "0.5", "1", "2", "5", "10"]  # 0.1 in the margin
    one_epoch = plots.error_rate_figure(_epochs([3.1], [2.2])).axes[0]
    assert _shown_ticks(one_epoch, "x") == ["1"]
    assert _shown_ticks(one_epoch, "y") == ["2.5", "3"]


def test_error_curve_marks_the_best_test_error() -> None:
    figure = plots.error_rate_figure(_epochs([5, 3, 2, 1.5, 1.4], [4, 2, 0.88, 0.9, 0.88]))
    axes = figure.axes[0]
    stars = [line for line in axes.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [3] and stars[0].get_ydata()[0] == pytest.approx(0.88)
    (label,) = axes.texts
    assert label.get_text() == "best 0.88% (epoch 3)"  # the first of the tied epochs
    figure.canvas.draw()
    assert not _overlap(figure, label, axes.get_legend())
    inside = axes.get_window_extent(figure.canvas.get_renderer())
    assert inside.contains(*label.get_window_extent().min) and inside.contains(*label.get_window_extent().max)
    lowest_point = min(axes.transData.transform(line.get_xydata())[:, 1].min() for line in axes.get_lines())
    assert label.get_window_extent().y1 < lowest_point  # in the margin below both curves, crossing neither


def test_error_curve_title_names_the_model_and_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "seed-3"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"model": "lenet5_relu", "epochs": _epochs([2, 1], [1.5, 1])}))
    figure = _saved_figure(monkeypatch, ["curve", str(run / "metrics.json")])
    assert figure.axes[0].get_title() == "lenet5_relu, run seed-3: error per epoch"
    _metrics(run)  # no "model": the run directory alone
    assert _saved_figure(monkeypatch, ["curve", str(run)]).axes[0].get_title() == "run seed-3: error per epoch"


def test_confusion_title_clears_the_colour_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    figure = _saved_figure(monkeypatch, ["confusion", str(pretrained_path())])
    matrix, bar = figure.axes
    assert figure.get_suptitle() == "lenet5, lenet5.npz\ntest error 0.95% (95 of 10000 misclassified)"
    assert bar.get_ylabel() == "images"
    figure.canvas.draw()
    assert not _overlap(figure, figure._suptitle, bar) and not _overlap(figure, figure._suptitle, matrix)


def test_f6_distances_show_the_winner_and_their_units() -> None:
    distances = np.array([170.0, 120, 140, 110, 210, 150, 200, 0.002, 170, 150])
    figure = plots.f6_figure(np.zeros(84), np.ones(84), 7, distances)
    bars = figure.axes[2]
    assert bars.get_xlabel() == "class" and bars.get_ylabel() == "squared distance to\nthe class's bitmap"
    assert [text.get_text() for text in bars.texts] == ["170", "120", "140", "110", "210", "150", "200", "0.002", "170", "150"]
    assert bars.texts[7].get_color() == "tab:red"
    (dot,) = [line for line in bars.get_lines() if line.get_marker() == "o"]
    assert (list(dot.get_xdata()), list(dot.get_ydata())) == ([7], [0.002])


def test_features_use_fixed_scales_with_colour_bars() -> None:
    faint = np.zeros((28, 28), np.uint8)
    faint[6:22, 12:16] = 40  # a faint stroke stays faint
    c1, c3 = np.full((6, 28, 28), 0.1), np.full((16, 10, 10), -0.2)
    figure = plots.feature_maps_figure(faint, c1, c3)
    images = [image for axis in figure.axes for image in axis.get_images()]
    assert [image.get_clim() for image in images] == [(0, 255)] + [(-1.7159, 1.7159)] * 22
    bars = [image.colorbar for image in images if image.colorbar is not None]
    labels = [bar.ax.get_xlabel() or bar.ax.get_ylabel() for bar in bars]
    assert labels == ["input pixel (0 = background)", "C1 output (squashed)", "C3 output (squashed)"]
