"""What bounds LeNet-5's training step and evaluation in NumPy: a floor under any implementation
made of NumPy calls and BLAS products, measured piece by piece on one thread.

    python benchmarks/numpy_floor.py [--batch-size 256]

The floor counts only what a step (or an evaluation) cannot do without, each piece in the fastest
of the two layouts lenet_fn has (im2col, and the banded products of ``lenet_fn.inference``),
timed alone on operands made beforehand, with the cheapest NumPy pass for each elementwise job
(into a preallocated array: no allocation):

- every matrix product (forward; backward: weight and input gradients, C1 none for its input),
  which also writes the layer's output; the biases and scale factors taken as folded into them;
- building the products' left factors from the layer inputs (the unfold or the patch copy), and
  summing C3's and C5's input gradients back from their columns: one pass reading the smaller
  column form;
- the squashing function as one ``np.tanh`` pass; its derivative ``d * (A^2 - y^2)`` as the three
  passes NumPy needs (square, subtract, multiply: NumPy has no fused multiply-add);
- a subsampling: one pass reading its input (the window sums), one writing its output; backward,
  one pass writing its input gradient and two reductions (coefficients and biases);
- the bias gradients: one reduction over each convolution's and F6's output gradient.

Nothing else: no Python between the calls, no layout copies, no RBF layer, no momentum step, no
loss. A real step does more, so it is slower than the floor; a target above the floor's speed is
out of reach for NumPy, whatever the code. ``bench_train.py --torch`` sets it against PyTorch in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import threadpool_limits

from lenet_fn.inference import C1_BLOCK, C3_BLOCK, banded_kernels
from lenet_fn.ops import _unfold

from timing import best_of

Array = np.ndarray[Any, Any]
# (input channels, input side, output channels, banded block) of the three convolutions
CONVOLUTIONS = {"c1": (1, 32, 6, C1_BLOCK), "c3": (6, 14, 16, C3_BLOCK), "c5": (16, 5, 120, 1)}


def seconds_of(run: Callable[[], object], repeats: int = 7) -> float:
    """``timing.best_of`` of ``run``, with enough calls per repeat to take about 20 ms."""
    run()
    started = time.perf_counter()
    run()
    number = max(1, int(0.02 / max(time.perf_counter() - started, 1e-6)))
    return best_of(run, repeats=repeats, number=number)


def banded_patches(x: Array, kernel: int, block: int) -> Array:
    """The left factor of ``inference.conv_channels_last`` for channel-last ``x`` (N, H, W, C), as a
    strided view (reshaping it to rows copies it)."""
    n, h, w, c = x.shape
    s_n, s_h, s_w, _ = x.strides
    ho, wo = h - kernel + 1, w - kernel + 1
    span = (block + kernel - 1) * c
    view = as_strided(x, shape=(n, ho, wo // block, kernel, span), strides=(s_n, s_h, block * s_w, s_h, x.itemsize))
    return view


def convolution_floor(name: str, batch: int, rng: np.random.Generator, *, backward: bool) -> dict[str, float]:
    """Seconds of a convolution's unavoidable pieces, the faster layout of each."""
    c, side, f, block = CONVOLUTIONS[name]
    out = side - 4
    x = rng.standard_normal((c, batch, side, side), dtype=np.float32)  # channel-major, as lenet_fn keeps it
    w = rng.standard_normal((f, c, 5, 5), dtype=np.float32)
    columns = _unfold(x, (5, 5), (1, 1), (out, out))
    w_rows = w.reshape(f, -1)
    channel_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0))
    patches_view = banded_patches(channel_last, 5, block)
    patches = patches_view.reshape(-1, patches_view.shape[-2] * patches_view.shape[-1])
    bands = banded_kernels(w, block)
    d_rows = rng.standard_normal((f, columns.shape[1]), dtype=np.float32)
    d_banded = rng.standard_normal((patches.shape[0], bands.shape[1]), dtype=np.float32)
    pieces = {
        "unfold": min(seconds_of(lambda: _unfold(x, (5, 5), (1, 1), (out, out))), seconds_of(lambda: patches_view.reshape(patches.shape))),
        "forward product": min(seconds_of(lambda: w_rows @ columns), seconds_of(lambda: patches @ bands)),
    }
    if backward:
        pieces["weight-gradient product"] = min(seconds_of(lambda: d_rows @ columns.T), seconds_of(lambda: patches.T @ d_banded))
        if name != "c1":
            d_columns = w_rows.T @ d_rows
            pieces["input-gradient product"] = min(seconds_of(lambda: w_rows.T @ d_rows), seconds_of(lambda: d_banded @ bands.T))
            smaller = d_columns if d_columns.size < patches.size else patches
            pieces["col2im (one read of its columns)"] = seconds_of(lambda: smaller.sum())
    return {f"{name} {piece}": seconds for piece, seconds in pieces.items()}


def pass_floor(sizes: Iterable[int], batch: int, rng: np.random.Generator, kernel: Callable[[Array, Array], object]) -> float:
    """Seconds of one ``kernel(source, out)`` pass over each array of ``size`` values per image, summed."""
    total = 0.0
    for size in sizes:
        source = rng.standard_normal(batch * size, dtype=np.float32)
        out = np.empty_like(source)
        total += seconds_of(lambda: kernel(source, out))
    return total


def write_pass(source: Array, out: Array) -> None:
    np.multiply(source, 1.0, out=out)


def tanh_pass(source: Array, out: Array) -> None:
    np.tanh(source, out=out)


def read_pass(source: Array, out: Array) -> None:
    source.sum()


SQUASHED = {"c1": 6 * 28 * 28, "s2": 6 * 14 * 14, "c3": 16 * 10 * 10, "s4": 16 * 5 * 5, "c5": 120, "f6": 84}
"""Values per image of each layer's output, each squashed."""
SUBSAMPLED_INPUTS = (6 * 28 * 28, 16 * 10 * 10)
"""Values per image of S2's and S4's inputs."""
SUBSAMPLED_OUTPUTS = (6 * 14 * 14, 16 * 5 * 5)
"""Values per image of S2's and S4's outputs."""
BIASED = {"c1": 6 * 28 * 28, "c3": 16 * 10 * 10, "c5": 120, "f6": 84}
"""Values per image of the outputs of the layers with a bias."""


def forward_elementwise_floor(batch: int, rng: np.random.Generator) -> dict[str, float]:
    """The subsamplings' window sums and outputs, and the squashing (one tanh pass each)."""
    return {
        "subsampling: read the input, write the output": pass_floor(SUBSAMPLED_INPUTS, batch, rng, read_pass)
        + pass_floor(SUBSAMPLED_OUTPUTS, batch, rng, write_pass),
        "squashing: one tanh pass each": pass_floor(SQUASHED.values(), batch, rng, tanh_pass),
    }


def step_floor(batch: int, rng: np.random.Generator) -> dict[str, float]:
    """The training step's floor, piece by piece (seconds, one thread)."""
    pieces: dict[str, float] = {}
    for name in CONVOLUTIONS:
        pieces |= convolution_floor(name, batch, rng, backward=True)
    x, w = rng.standard_normal((batch, 120), dtype=np.float32), rng.standard_normal((84, 120), dtype=np.float32)
    d_out = rng.standard_normal((batch, 84), dtype=np.float32)
    pieces["f6 products"] = seconds_of(lambda: x @ w.T) + seconds_of(lambda: d_out.T @ x) + seconds_of(lambda: d_out @ w)
    pieces |= forward_elementwise_floor(batch, rng)
    pieces["squash derivative: three passes each"] = 3 * pass_floor(SQUASHED.values(), batch, rng, write_pass)
    pieces["subsampling backward: a write, two reductions"] = pass_floor(SUBSAMPLED_INPUTS, batch, rng, write_pass) + 2 * pass_floor(
        SUBSAMPLED_OUTPUTS, batch, rng, read_pass
    )
    pieces["bias gradients: one reduction each"] = pass_floor(BIASED.values(), batch, rng, read_pass)
    return pieces


def evaluation_floor(batch: int, rng: np.random.Generator) -> dict[str, float]:
    """Evaluation's floor, piece by piece (seconds, one thread)."""
    pieces: dict[str, float] = {}
    for name in CONVOLUTIONS:
        pieces |= convolution_floor(name, batch, rng, backward=False)
    x, w = rng.standard_normal((batch, 120), dtype=np.float32), rng.standard_normal((84, 120), dtype=np.float32)
    pieces["f6 product"] = seconds_of(lambda: x @ w.T)
    return pieces | forward_elementwise_floor(batch, rng)


def floors(batch: int) -> tuple[dict[str, float], dict[str, float]]:
    """The step's and evaluation's floors at ``batch`` images, on one BLAS thread."""
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):
        return step_floor(batch, rng), evaluation_floor(batch, rng)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    for title, pieces in zip(("training step", "evaluation"), floors(args.batch_size), strict=True):
        total = sum(pieces.values())
        print(f"{title}, batch {args.batch_size}, one thread: floor {1e3 * total:.2f} ms = {args.batch_size / total:.0f} images/s")
        for piece, seconds in pieces.items():
            print(f"  {piece:<40} {1e3 * seconds:7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
