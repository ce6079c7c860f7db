"""How often ``python -m lenet_fn.predict`` is right on generated digit pictures and on MNIST digits saved as PNG.

    python benchmarks/predict_photos.py [--per-digit 10] [--mnist 1000] [--seed 1]

Writes ``--per-digit`` pictures of each digit 0-9 for every kind of ``tests/photo_digits.py`` and
the first ``--mnist`` MNIST test digits (28 x 28, as stored) as PNG files in a temporary folder,
classifies them all with the shipped LeNet-5 through ``predict.main``, and prints per kind how many
were right, how many were refused (an error line: no digit found), how many were classified with a
warning that LeNet-5 is unsure, and the seconds taken. A refused picture counts as not right.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # the generator lives with the tests

from lenet_fn import predict  # noqa: E402
from lenet_fn.data import load_mnist, repository_dataset_dir  # noqa: E402
from tests.photo_digits import KINDS, Pixels, digit_set  # noqa: E402


def _written(folder: Path, name: str, pictures: Sequence[tuple[Pixels, int]]) -> list[tuple[Path, int]]:
    """The pictures saved as PNG files ``folder/name_<index>.png``, with their labels."""
    from PIL import Image

    written = []
    for index, (pixels, label) in enumerate(pictures):
        path = folder / f"{name}_{index:04d}.png"
        Image.fromarray(pixels).save(path)
        written.append((path, label))
    return written


def score(files: Sequence[tuple[Path, int]]) -> tuple[int, int, int, float]:
    """Runs predict on the files: (right, refused, unsure, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    predict.main([str(path) for path, _ in files], stdout=out, stderr=err)
    seconds = time.perf_counter() - start
    predicted = {line.split(": ", 1)[0]: int(line.split(": ", 1)[1].split()[0]) for line in out.getvalue().splitlines()}
    right = sum(predicted.get(str(path)) == label for path, label in files)
    notes = err.getvalue().splitlines()
    return right, sum(line.startswith("error:") for line in notes), sum(line.startswith("warning:") for line in notes), seconds


def main(argv: Sequence[str] | None = None) -> None:
    """Prints one row per kind of picture, then MNIST's row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-digit", type=int, default=10, help="pictures of each digit per kind")
    parser.add_argument("--mnist", type=int, default=1000, help="how many MNIST test digits (the first ones)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    dataset = load_mnist(repository_dataset_dir())
    print(f"{'kind':<16} {'right':>11} {'refused':>8} {'unsure':>7} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as folder:
        sets = {kind: _written(Path(folder), kind, digit_set(rng, kind, args.per_digit)) for kind in KINDS}
        mnist = list(zip(dataset.test_images[: args.mnist], (int(label) for label in dataset.test_labels[: args.mnist])))
        sets["mnist_png"] = _written(Path(folder), "mnist", mnist)
        for kind, files in sets.items():
            right, refused, unsure, seconds = score(files)
            print(f"{kind:<16} {right:>5} / {len(files):<4} {refused:>8} {unsure:>7} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
