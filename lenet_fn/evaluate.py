"""``python -m lenet_fn.evaluate CKPT``: error rate, confusion matrix and per-class scores of a checkpoint."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from lenet_fn.batch import predict_outputs
from lenet_fn.checkpoint import CheckpointError, load_model
from lenet_fn.cli import run_command
from lenet_fn.data import DatasetError, load_or_download_mnist
from lenet_fn.metrics import ClassificationReport, classification_report, format_confusion, format_report
from lenet_fn.parallel import Workers, default_threads
from lenet_fn.params import tree_leaves
from lenet_fn.protocol import Model
from lenet_fn.runtime import reuse_freed_memory


def evaluate(
    model: Model[Any], params: Any, images: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], *, workers: Workers
) -> ClassificationReport:
    """The classification report of ``model`` on uint8 ``images`` (N, 28, 28) with ``labels`` (N,)."""
    dtype = tree_leaves(params)[0].dtype
    outputs = predict_outputs(model, params, model.prepare(images, dtype), workers=workers)
    return classification_report(model.predict(outputs), labels.astype(np.intp))


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] = sys.stdout, stderr: IO[str] = sys.stderr) -> int:
    """Runs ``python -m lenet_fn.evaluate``; returns the exit status (0, or 2 for bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m lenet_fn.evaluate",
        description="Evaluate a checkpoint on MNIST: error rate, confusion matrix, per-class precision/recall/F1, "
        "macro and micro F1.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .npz written by lenet_fn.train (best.npz or last.npz)")
    parser.add_argument("--dataset", type=Path, metavar="PATH", help="directory with the MNIST files (default as in lenet_fn.train)")
    parser.add_argument("--split", choices=["test", "train"], default="test", help="which set to evaluate (default: test)")
    parser.add_argument("--threads", type=int, default=default_threads(), metavar="N", help="worker threads")
    args = parser.parse_args(argv)
    try:
        model, params, metadata = load_model(args.checkpoint)
        dataset = load_or_download_mnist(args.dataset, progress=stderr)
        if args.threads < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
    except (CheckpointError, DatasetError, ValueError) as error:
        print(f"error: {error}", file=stderr)
        return 2
    images, labels = (dataset.test_images, dataset.test_labels) if args.split == "test" else (dataset.train_images, dataset.train_labels)
    if args.threads > default_threads():  # the outputs do not depend on the threads; only the time does
        print(f"note: --threads {args.threads} is more than the {default_threads()} cores here; using {default_threads()}", file=stderr)
        args.threads = default_threads()
    reuse_freed_memory()
    started = time.perf_counter()
    with Workers(args.threads) as workers:
        report = evaluate(model, params, images, labels, workers=workers)
    seconds = time.perf_counter() - started
    epoch = metadata.get("epoch")
    print(f"{args.checkpoint}: {model.name}" + (f" after epoch {epoch}" if epoch is not None else ""), file=stdout)
    print(
        f"{args.split} error {100 * report.error_rate:.2f}% ({int(report.support.sum() - np.trace(report.confusion))} of "
        f"{int(report.support.sum())} misclassified) in {seconds:.1f} s ({labels.shape[0] / seconds:,.0f} images/s)",
        file=stdout,
    )
    print(f"\nconfusion matrix (rows: true digit, columns: predicted)\n{format_confusion(report.confusion)}", file=stdout)
    print(f"\n{format_report(report)}", file=stdout)
    return 0


if __name__ == "__main__":
    run_command(main)
