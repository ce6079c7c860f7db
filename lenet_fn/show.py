"""``python -m lenet_fn.show WHAT ...``: pictures of what LeNet-5 learned (matplotlib ``plot`` extra).

    bitmaps                    the 10 RBF prototypes (as ASCII in the terminal with --ascii or without matplotlib)
    features IMAGE|--test N    an input and its C1 and C3 feature maps
    f6 IMAGE|--test N          F6's output as a 7x12 picture beside the bitmap of the predicted class
    curve RUN_DIR|metrics.json training and test error per epoch
    confusion CKPT             the test-set confusion matrix

Each figure is written to ``--out`` (default ``<what>.png``); the path is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from lenet_fn import plots
from lenet_fn.bitmaps import rbf_centers, render_bitmap
from lenet_fn.checkpoint import CheckpointError, load_model
from lenet_fn.cli import run_command
from lenet_fn.data import DatasetError, load_or_download_mnist
from lenet_fn.evaluate import evaluate
from lenet_fn.digits import mnist_style
from lenet_fn.images import ImageError, read_image
from lenet_fn.models import LENET5, lenet5_forward
from lenet_fn.parallel import Workers, default_threads
from lenet_fn.rundir import METRICS, read_metrics
from lenet_fn.shipped import pretrained

FIGURES = ("bitmaps", "features", "f6", "curve", "confusion")


class ShowError(Exception):
    """A bad argument for a figure (one line, exit status 2)."""


def _lenet5_params(checkpoint: Path | None) -> Any:
    if checkpoint is None:
        return pretrained()[0]
    model, params, _ = load_model(checkpoint)
    if model.name != LENET5.name:
        raise ShowError(f"--checkpoint: this figure shows LeNet-5's layers; {checkpoint} holds a {model.name}")
    return params


def _digit(args: argparse.Namespace) -> tuple[np.ndarray[Any, Any], str]:
    """The uint8 28x28 digit to show: an image file, or MNIST test image ``--test N``."""
    if args.input is not None:
        return mnist_style(read_image(args.input), source=str(args.input)), str(args.input)
    if args.test is None:
        raise ShowError(f"{args.what}: give an IMAGE or --test N (an index into the MNIST test set)")
    dataset = load_or_download_mnist(args.dataset)
    if not 0 <= args.test < dataset.test_images.shape[0]:
        raise ShowError(f"--test: expected an index in [0, {dataset.test_images.shape[0]}), got {args.test}")
    return dataset.test_images[args.test], f"MNIST test image {args.test} (label {dataset.test_labels[args.test]})"


def _curve_title(metrics: Path) -> str:
    """The model named in ``metrics`` (when it names one) and its run directory's name."""
    try:
        model = json.loads(metrics.read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        model = None
    return plots.run_title(model if isinstance(model, str) else None, metrics.parent)


def _figure(args: argparse.Namespace, stdout: IO[str]) -> Path | None:
    out = args.out or Path(f"{args.what}.png")
    if args.what == "bitmaps":
        if args.ascii or not plots.matplotlib_available():
            for digit in range(10):
                print(f"digit {digit}\n{render_bitmap(digit)}\n", file=stdout)
            return None
        return plots.plot_bitmaps(rbf_centers(), out)
    if not plots.matplotlib_available():
        raise ShowError(f"{args.what}: {plots.PLOT_HINT}")
    if args.what in ("features", "f6"):
        params = _lenet5_params(args.checkpoint)
        image, name = _digit(args)
        distances, cache = lenet5_forward(params, LENET5.prepare(image[None], np.float32))
        predicted = int(LENET5.predict(distances)[0])
        if args.what == "features":
            title = f"{name}: predicted {predicted}"
            return plots.plot_feature_maps(image, cache.c1_squash.out[0], cache.c3_squash.out[0], out, title=title)
        return plots.plot_f6(cache.f6_squash.out[0], rbf_centers()[predicted], predicted, distances[0], out)
    if args.what == "curve":
        source = args.input or Path(".")
        metrics = source / METRICS if source.is_dir() else source
        return plots.plot_error_rates(read_metrics(metrics), out, title=_curve_title(metrics))
    if args.input is None:
        raise ShowError("confusion: give a checkpoint (.npz)")
    model, params, _ = load_model(args.input)
    dataset = load_or_download_mnist(args.dataset)
    with Workers(default_threads()) as workers:
        report = evaluate(model, params, dataset.test_images, dataset.test_labels, workers=workers)
    images = int(report.confusion.sum())
    wrong = images - int(np.trace(report.confusion))
    title = f"{model.name}, {args.input.name}\ntest error {100 * report.error_rate:.2f}% ({wrong} of {images} misclassified)"
    return plots.plot_confusion(report.confusion, out, title=title)


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.show``; returns the exit status (0, or 2 for bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m lenet_fn.show", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("what", choices=FIGURES, help="which figure")
    parser.add_argument("input", nargs="?", type=Path, help="an image (features, f6), a run directory or metrics.json "
                        "(curve, default: .), or a checkpoint (confusion)")  # fmt: skip
    parser.add_argument("--test", type=int, metavar="N", help="features, f6: use MNIST test image N instead of an image file")
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT", help="features, f6: a lenet5 .npz (default: the shipped weights)")
    parser.add_argument("--dataset", type=Path, metavar="PATH", help="the MNIST directory (default as in lenet_fn.train)")
    parser.add_argument("--ascii", action="store_true", help="bitmaps: print them as text instead of a figure")
    parser.add_argument("--out", type=Path, metavar="PNG", help="where to write the figure (default: <what>.png)")
    args = parser.parse_args(argv)
    try:
        written = _figure(args, stdout)
    except (ShowError, ImageError, CheckpointError, DatasetError) as error:
        print(f"error: {error}", file=stderr)
        return 2
    except BrokenPipeError:
        raise  # stdout closed (--ascii | head): the command ends quietly (lenet_fn.cli)
    except OSError as error:
        print(f"error: --out: cannot write {error.filename}: {error.strerror}", file=stderr)
        return 2
    if written is not None:
        print(f"wrote {written}", file=stdout)
    elif not args.ascii:
        print(f"(printed as text: {plots.PLOT_HINT})", file=stdout)
    return 0


if __name__ == "__main__":
    run_command(main)
