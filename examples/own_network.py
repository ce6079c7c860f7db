"""A network of your own, end to end: define it from the ops, train it with ``fit``, save it, then
evaluate it and classify an image with the library's commands, which import it by its path.

    python examples/own_network.py [--limit N] [--epochs N] [--out DIR]

The model is a small convnet: conv 5x5 (1 -> 8 maps) - ReLU - 2x2 max pool - linear (1152 -> 10),
softmax cross-entropy. Its parameters are a plain dict; its cache is a frozen attrs class.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn import losses, ops
from lenet_fn.arrays import FloatArray
from lenet_fn import rundir
from lenet_fn.config import TrainConfig
from lenet_fn.data import load_or_download_mnist, standard_prepare
from lenet_fn.loop import fit
from lenet_fn.models import get_model
from lenet_fn.params import Conv2dParams, LinearParams, init_conv2d, init_linear
from lenet_fn.protocol import Model, predict_largest
from lenet_fn.state import EpochMetrics, TrainState, initial_state, prepare_data


def init(rng: np.random.Generator, *, dtype: npt.DTypeLike = np.float32) -> dict[str, Any]:
    """The parameters: ``conv`` (8, 1, 5, 5) and ``out`` (10, 1152), He-uniform, biases zero."""
    return {"conv": init_conv2d(rng, 1, 8, 5, dtype=dtype), "out": init_linear(rng, 8 * 12 * 12, 10, dtype=dtype)}


@attrs.frozen
class SmallConvCache:
    conv: ops.Conv2dCache
    relu: ops.ReluCache
    pool: ops.MaxPool2dCache
    flatten: ops.FlattenCache
    out: ops.LinearCache


def forward(params: dict[str, Any], x: FloatArray) -> tuple[FloatArray, SmallConvCache]:
    """Logits (N, 10) of images (N, 1, 28, 28), and the cache."""
    a, conv = ops.conv2d_forward(x, params["conv"].w, params["conv"].b)
    a, relu = ops.relu_forward(a)
    a, pool = ops.max_pool2d_forward(a)
    a, flatten = ops.flatten_forward(a)
    logits, out = ops.linear_forward(a, params["out"].w, params["out"].b)
    return logits, SmallConvCache(conv, relu, pool, flatten, out)


def backward(d_logits: FloatArray, cache: SmallConvCache) -> dict[str, Any]:
    """The gradients, a dict like the parameters: the forward's steps in reverse."""
    d, d_out_w, d_out_b = ops.linear_backward(d_logits, cache.out)
    d = ops.flatten_backward(d, cache.flatten)
    d = ops.max_pool2d_backward(d, cache.pool)
    d = ops.relu_backward(d, cache.relu)
    _, d_conv_w, d_conv_b = ops.conv2d_backward(d, cache.conv, input_grad=False)  # the images need no gradient
    return {"conv": Conv2dParams(w=d_conv_w, b=d_conv_b), "out": LinearParams(w=d_out_w, b=d_out_b)}


SMALL_CONV = Model(
    init=init,
    forward=forward,
    backward=backward,
    loss_forward=losses.softmax_cross_entropy_forward,
    loss_backward=losses.softmax_cross_entropy_backward,
    predict=predict_largest,
    prepare=standard_prepare((1, 28, 28)),  # standardised digits, (N, 1, 28, 28)
    summary="conv 5x5 (8 maps) - ReLU - max pool - linear, softmax cross-entropy",
)

IMPORT_PATH = "own_network:SMALL_CONV"
"""Where the commands find the model: this file, imported as ``own_network`` (its folder on the path)."""


def _command(*arguments: str) -> str:
    """Runs ``python -m lenet_fn.<command> ...`` with this folder on the path; returns its output."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", *arguments], capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed: {done.stderr.strip()}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description="Train a convnet of your own with lenet_fn, then evaluate and use it.")
    parser.add_argument("--limit", type=int, default=6000, help="training images (default 6000)")
    parser.add_argument("--epochs", type=int, default=2, help="passes over them (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/own_network"), help="where the checkpoints go")
    args = parser.parse_args()

    config = TrainConfig(model=IMPORT_PATH, epochs=args.epochs, limit=args.limit, batch_size=32, lr=0.01, schedule="cosine",
                         warmup=0, distort=False, threads=1)
    model = get_model(config.model)  # imports this file as own_network: the checkpoint records the path
    mnist = load_or_download_mnist(None)
    data = prepare_data(model, mnist, limit=config.limit)
    best = args.out / rundir.BEST

    def on_epoch_end(state: TrainState, metrics: EpochMetrics) -> None:
        print(f"epoch {metrics.epoch}: test error {100 * metrics.test_error:.2f}%")
        rundir.save_state(args.out / rundir.LAST, config, state, kind="last")  # resumable with --resume
        if metrics.test_error <= min(entry.test_error for entry in state.history):
            rundir.save_best(best, config, state)

    state = fit(model, config, data, initial_state(model, config), on_epoch_end=on_epoch_end)

    print(_command("lenet_fn.evaluate", str(best)).splitlines()[1])  # "test error ...% (... misclassified) ..."
    digit = args.out / "digit.npy"
    np.save(digit, mnist.test_images[0])
    print(_command("lenet_fn.predict", "--checkpoint", str(best), str(digit)).strip(), f"(label {mnist.test_labels[0]})")
    print(f"test error after {config.epochs} epochs: {100 * state.history[-1].test_error:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
