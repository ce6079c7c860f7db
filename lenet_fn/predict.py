"""``python -m lenet_fn.predict IMAGE [IMAGE ...]``: classify your own digit images.

Each image is read (PNG/JPEG with Pillow; PGM/PBM and .npy without), prepared like MNIST's digits
(``lenet_fn.digits.mnist_style``), and classified by the shipped LeNet-5 or by ``--checkpoint``.
An image that cannot be read or holds no digit gets one line on stderr; the others are still
classified. LeNet-5 also warns on stderr when it is unsure, its nearest class farther than
``UNSURE_DISTANCE``. Exit status: 0 when every image was classified, 1 when some were not, 2 for a
bad checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from lenet_fn.checkpoint import CheckpointError, load_model
from lenet_fn.cli import run_command
from lenet_fn.digits import mnist_style
from lenet_fn.images import ImageError, read_image
from lenet_fn.models import LENET5
from lenet_fn.params import tree_leaves
from lenet_fn.protocol import Model, predict_largest, predict_smallest
from lenet_fn.shipped import pretrained, pretrained_path


UNSURE_DISTANCE = 20.0
"""LeNet-5's RBF distance to its nearest class beyond which ``predict`` warns that it is unsure: with the shipped
weights, 0.6% of the MNIST test digits it reads right are farther, and 38 of the 98 it reads wrong (the docs'
pretrained page)."""


def _unsure(model: Model[Any], outputs: np.ndarray[Any, Any]) -> str | None:
    """Why LeNet-5 is unsure of one image's outputs (1, 10), or None (also for any other model: no measured rule)."""
    nearest = float(outputs.min())
    if model is not LENET5 or nearest <= UNSURE_DISTANCE:
        return None
    return f"unsure, maybe no digit: the nearest class is at RBF distance {nearest:.3g}, genuine digits mostly under {UNSURE_DISTANCE:g}"


def _scores(model: Model[Any], outputs: np.ndarray[Any, Any]) -> tuple[str, np.ndarray[Any, Any]]:
    """What to print per class: the distances of a model that picks the smallest output (LeNet-5's
    RBF layer), softmax probabilities of one that picks the largest (logits), else the raw outputs."""
    if model.predict is predict_smallest:
        return "RBF distances, the smallest wins", outputs
    if model.predict is predict_largest:
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return "probabilities", shifted / shifted.sum(axis=1, keepdims=True)
    return "outputs", outputs


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.predict``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lenet_fn.predict",
        description="Classify digit images with LeNet-5. Images are made MNIST-like: grayscale, inverted when the "
        "background is light, cropped to the digit, fitted into 20x20 keeping the aspect ratio, centred by mass in 28x28.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG (needs Pillow), PGM/PBM/PPM, or .npy")
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT", help=f"a .npz from lenet_fn.train, of any model, yours "
                        f"included (imported by the path the checkpoint records; default: the shipped {pretrained_path().name})")
    args = parser.parse_args(argv)
    try:
        if args.checkpoint is None:
            model, (params, _) = LENET5, pretrained()
        else:
            model, params, _ = load_model(args.checkpoint)
    except CheckpointError as error:
        print(f"error: {error}", file=stderr)
        return 2
    dtype = tree_leaves(params)[0].dtype
    failures = 0
    for path in args.images:
        try:
            digit = mnist_style(read_image(path), source=str(path))
        except (ImageError, MemoryError) as error:
            print(f"error: {error}" if isinstance(error, ImageError) else f"error: {path}: not enough memory to read it", file=stderr)
            failures += 1
            continue
        except Exception as error:  # a picture no rule above foresaw: its own line, and on to the next
            print(f"error: {path}: could not be prepared as a digit ({type(error).__name__}: {error})", file=stderr)
            failures += 1
            continue
        outputs = model.forward(params, model.prepare(digit[None], dtype))[0]
        label, values = _scores(model, outputs)
        table = "  ".join(f"{digit_class}: {value:.4g}" for digit_class, value in enumerate(values[0]))
        print(f"{path}: {int(model.predict(outputs)[0])}   ({label})  {table}", file=stdout)
        if (doubt := _unsure(model, outputs)) is not None:
            print(f"warning: {path}: {doubt}", file=stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    run_command(main)
