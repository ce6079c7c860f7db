"""LeNet-5's forward pass for evaluation and prediction: the numbers of ``models.lenet5_forward``
(to round-off), without the caches a backward needs, in the layout each next layer reads best.

Activations stay channel-last, (N, H, W, C), so every convolution is one matrix product of a
strided view of its input with a weight matrix built once per call:

- **C1** (one input channel) treats a row of ``BLOCK`` outputs at a time: a 5 x (``BLOCK`` + 4)
  patch of the image times a banded (Toeplitz) matrix that holds the six kernels at each of the
  ``BLOCK`` offsets. The product does ``(BLOCK + 4) / BLOCK`` times the useful multiplications, but
  its matrices are wide enough for BLAS (im2col's is 6 x 25, which BLAS runs far below its speed),
  and the patches take 5 (``BLOCK`` + 4) / ``BLOCK`` floats per output pixel instead of 25.
- **C3**, **C5** read their windows as (N, Ho, Wo, kh, kw, C) views whose last axes are whole
  rows of the channel-last input, so im2col copies runs of ``kw * C`` floats.
- **S2**, **S4** add the four strided taps of each window, channel-last.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lenet_fn.arrays import FloatArray, check_float_array, check_shape
from lenet_fn.bitmaps import rbf_centers
from lenet_fn.ops import SQUASH_AMPLITUDE, SQUASH_SLOPE
from lenet_fn.params import LeNet5Params, PartialConv2dParams

BLOCK = 7
"""Output columns of C1 computed by one row of its banded product (28 = 4 x 7): measured fastest
of 2, 4, 7, 14 and 28 (the docs' speed page)."""


def squash(x: FloatArray) -> FloatArray:
    """``1.7159 tanh(2/3 x)`` as ``2A / (1 + exp(-2 S x)) - A`` (as ``ops.squash_forward``), in place
    on a fresh array: ``x`` itself is not changed."""
    out = np.multiply(x, x.dtype.type(-2.0 * SQUASH_SLOPE))
    with np.errstate(over="ignore", under="ignore"):
        np.exp(out, out=out)
    out += 1.0
    np.divide(x.dtype.type(2.0 * SQUASH_AMPLITUDE), out, out=out)
    out -= x.dtype.type(SQUASH_AMPLITUDE)
    return out


def banded_kernels(w: FloatArray, block: int = BLOCK) -> FloatArray:
    """The (kh * (block + kw - 1), block * F) matrix that maps a patch of kh rows and block + kw - 1
    columns of a one-channel image to ``block`` adjacent outputs of each of the F kernels ``w``
    (F, 1, kh, kw): entry [(i, q + j), (q, f)] is ``w[f, 0, i, j]``."""
    f, _, kh, kw = w.shape
    bands = np.zeros((kh, block + kw - 1, block, f), dtype=w.dtype)
    for q in range(block):
        bands[:, q : q + kw, q, :] = w[:, 0].transpose(1, 2, 0)
    return bands.reshape(kh * (block + kw - 1), block * f)


def conv_one_channel(x: FloatArray, w: FloatArray, b: FloatArray, block: int = BLOCK) -> FloatArray:
    """A valid convolution of one-channel images by the banded product (``banded_kernels``).

    Args:
        x: images, shape (N, H, W).
        w: kernels, shape (F, 1, kh, kw).
        b: biases, shape (F,).
        block: output columns per product row; must divide W - kw + 1.

    Returns:
        The output, channel-last, shape (N, H - kh + 1, W - kw + 1, F).
    """
    n, h, width = x.shape
    f, _, kh, kw = w.shape
    ho, wo = h - kh + 1, width - kw + 1
    if wo % block:
        raise ValueError(f"block: expected a divisor of the output width {wo}, got {block}")
    s_n, s_h, s_w = x.strides
    patches = as_strided(x, shape=(n, ho, wo // block, kh, block + kw - 1), strides=(s_n, s_h, block * s_w, s_h, s_w), writeable=False)
    out = patches.reshape(n * ho * (wo // block), kh * (block + kw - 1)) @ banded_kernels(w, block)
    out = out.reshape(n, ho, wo, f)
    out += b
    return out


def conv_channels_last(x: FloatArray, w: FloatArray, b: FloatArray) -> FloatArray:
    """A valid convolution of channel-last inputs, as one product of their windows and the kernels.

    Args:
        x: inputs, shape (N, H, W, C), C-contiguous.
        w: kernels, shape (F, C, kh, kw).
        b: biases, shape (F,).

    Returns:
        The output, channel-last, shape (N, H - kh + 1, W - kw + 1, F).
    """
    n, h, width, c = x.shape
    f, _, kh, kw = w.shape
    ho, wo = h - kh + 1, width - kw + 1
    s_n, s_h, s_w, s_c = x.strides
    windows = as_strided(x, shape=(n, ho, wo, kh, kw, c), strides=(s_n, s_h, s_w, s_h, s_w, s_c), writeable=False)
    out = windows.reshape(n * ho * wo, kh * kw * c) @ w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)
    out = out.reshape(n, ho, wo, f)
    out += b
    return out


def subsample_channels_last(x: FloatArray, coeff: FloatArray, bias: FloatArray) -> FloatArray:
    """LeNet-5's 2 x 2 subsampling of channel-last inputs (N, H, W, C): ``coeff * window sum + bias``,
    shape (N, H // 2, W // 2, C)."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    total = x[:, 0:h:2, 0:w:2] + x[:, 0:h:2, 1:w:2]
    total += x[:, 1:h:2, 0:w:2]
    total += x[:, 1:h:2, 1:w:2]
    total *= coeff
    total += bias
    return total


def dense_kernels(params: PartialConv2dParams, table: np.ndarray[tuple[int, int], np.dtype[np.bool_]]) -> FloatArray:
    """A partial convolution's kernels as dense (F, C, kh, kw) ones, zero where ``table`` has no connection."""
    dense = np.zeros(table.shape + params.w.shape[1:], dtype=params.w.dtype)
    dense[table] = params.w
    return dense


def lenet5_infer(params: LeNet5Params, x: FloatArray, table: np.ndarray[tuple[int, int], np.dtype[np.bool_]]) -> FloatArray:
    """LeNet-5's RBF distances without caches (``models.lenet5_forward``'s numbers, to round-off).

    Args:
        params: the parameters, in the dtype of ``x``.
        x: images prepared by ``prepare_images``, shape (N, 1, 32, 32).
        table: C3's connection table, shape (16, 6).

    Returns:
        The squared distances of F6's output to the 10 digit bitmaps, shape (N, 10).
    """
    x = check_float_array("x", x, layout="(N, 1, 32, 32)")
    check_shape("x", x, (x.shape[0], 1, 32, 32), "(prepared 32x32 images)")
    images = np.ascontiguousarray(x[:, 0])
    a = squash(conv_one_channel(images, params.c1.w, params.c1.b))
    a = squash(subsample_channels_last(a, params.s2.coeff, params.s2.bias))
    a = squash(conv_channels_last(a, dense_kernels(params.c3, table), params.c3.b))
    a = squash(subsample_channels_last(a, params.s4.coeff, params.s4.bias))
    a = squash(conv_channels_last(a, params.c5.w, params.c5.b).reshape(x.shape[0], -1))
    a = squash(a @ params.f6.w.T + params.f6.b)
    centers = rbf_centers(a.dtype)
    difference = a[:, None, :] - centers[None, :, :]
    distances: FloatArray = np.einsum("nkd,nkd->nk", difference, difference)
    return distances
