"""LeNet-5 built from layer objects and trained with ``Net``, in the style of the seed's framework.

    python examples/lenet5_from_layers.py [--epochs N] [--limit N] [--seed S]

One epoch on MNIST reaches below 3% test error. ``LENET5`` below is also a model the commands
can train: ``python -m lenet_fn.train --model lenet5_from_layers:LENET5`` (with this folder on the
path and the settings below as flags) gives the same figures, epoch for epoch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from lenet_fn import Net, sequential
from lenet_fn.bitmaps import rbf_centers
from lenet_fn.data import epoch_order, load_or_download_mnist, minibatches, prepare_images
from lenet_fn.layers import RBF, Conv2D, Flatten, Linear, PartialConv2D, Squash, Subsampling
from lenet_fn.models import C3_TABLE
from lenet_fn.optim import SCHEDULES


def lenet5_inputs(images: npt.NDArray[np.uint8], dtype: npt.DTypeLike) -> npt.NDArray[np.floating[Any]]:
    """MNIST digits padded to 32x32, background -0.1 and ink 1.175 (the paper's)."""
    return prepare_images(images, pad=2, low=-0.1, high=1.175, dtype=dtype)


LENET5 = sequential(
    Conv2D(1, 6, kernel_size=5, scheme="lecun98", name="c1"), Squash(),     # 6 maps of 28x28
    Subsampling(6, name="s2"), Squash(),                                     # 14x14
    PartialConv2D(C3_TABLE, kernel_size=5, name="c3"), Squash(),             # 16 maps of 10x10
    Subsampling(16, name="s4"), Squash(),                                    # 5x5
    Conv2D(16, 120, kernel_size=5, scheme="lecun98", name="c5"), Squash(),   # 120 maps of 1x1
    Flatten(),
    Linear(120, 84, scheme="lecun98", name="f6"), Squash(),
    RBF(rbf_centers(np.float64)),                                            # distances to the 10 digit bitmaps
    loss="map", prepare=lenet5_inputs, input_shape=(1, 32, 32),
)  # fmt: skip

BATCH_SIZE, LR, MOMENTUM, WARMUP = 32, 0.002, 0.9, 500
"""The settings: python -m lenet_fn.train --batch-size 32 --lr 0.002 --momentum 0.9 --warmup 500
--schedule paper --weight-decay 0 --no-distort --threads 1 gives the same run."""


def main() -> int:
    parser = argparse.ArgumentParser(description="Train LeNet-5, built from layers, with Net.")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    mnist = load_or_download_mnist(None)
    train_x = LENET5.prepare(mnist.train_images[: args.limit], np.float32)
    train_y = mnist.train_labels[: args.limit].astype(np.intp)
    test_x, test_y = LENET5.prepare(mnist.test_images, np.float32), mnist.test_labels.astype(np.intp)

    rng = np.random.default_rng(args.seed)
    net = Net(LENET5, rng=rng, momentum=MOMENTUM)  # the weights first, then every epoch's order
    step = 0
    for epoch in range(args.epochs):
        loss_sum, errors = 0.0, 0
        for rows in minibatches(epoch_order(train_y.shape[0], rng), BATCH_SIZE):
            out = net(train_x[rows])
            loss = net.loss(out, train_y[rows])
            net.backward()
            lr = LR * SCHEDULES["paper"](epoch, args.epochs)
            if step < WARMUP:
                lr *= (step + 1) / WARMUP
            net.update_weights(lr)
            loss_sum += loss * rows.shape[0]
            errors += int(np.count_nonzero(LENET5.predict(out) != train_y[rows]))
            step += 1
        predicted = np.concatenate([net.predict(test_x[start : start + 256]) for start in range(0, test_x.shape[0], 256)])
        test_error = float(np.mean(predicted != test_y))
        print(f"epoch {epoch + 1}: loss {loss_sum / train_y.shape[0]:.6f}  train error {100 * errors / train_y.shape[0]:.2f}%  "
              f"test error {100 * test_error:.2f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
