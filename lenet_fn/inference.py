"""LeNet-5's forward pass for evaluation and prediction: the numbers of ``models.lenet5_forward``
(to round-off), without the caches a backward needs, in the layout each next layer reads best.

Activations stay channel-last, (N, H, W, C), and every convolution is one matrix product whose
left factor holds, per row, a patch of kh rows and ``block`` + kw - 1 columns of the input (rows of
a strided view, whole pixels adjacent in memory, copied once) and a 1 for the bias, and whose
right factor is a banded (Toeplitz) matrix holding the kernels at each of the ``block`` offsets,
then the biases. The product does (``block`` + kw - 1) / ``block`` times the useful multiplications,
but its matrices are wide enough for BLAS to run near its speed: im2col's are 6 x 25 for C1 and
16 x 150 for C3, which BLAS runs far below it.

The squashing function ``A tanh(S z)`` costs one ``np.tanh`` pass: S is folded into the weights and
biases of the layer before it and A into the weights (or coefficients) of the layer after it, so
each layer computes ``S z`` from ``tanh(S z)`` of the layer before; F6's output is scaled by A for
the RBF layer. Subsampling adds each window's two rows, then each pair of columns.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lenet_fn.arrays import FloatArray, check_float_array, check_shape
from lenet_fn.bitmaps import rbf_centers
from lenet_fn.ops import SQUASH_AMPLITUDE, SQUASH_SLOPE
from lenet_fn.params import LeNet5Params, PartialConv2dParams

C1_BLOCK = 7
"""Output columns of C1 per row of its banded product (28 = 4 x 7)."""
C3_BLOCK = 5
"""Output columns of C3 per row of its banded product (10 = 2 x 5)."""


def tanh_in_place(x: FloatArray) -> FloatArray:
    """``np.tanh`` of ``x``, written over ``x`` (a fresh intermediate of the caller's)."""
    result: FloatArray = np.tanh(x, out=x)
    return result


def banded_kernels(w: FloatArray, block: int) -> FloatArray:
    """The (kh * (block + kw - 1) * C, block * F) matrix that maps a patch of kh rows and
    block + kw - 1 columns of a channel-last input to ``block`` adjacent outputs of each of the F
    kernels ``w`` (F, C, kh, kw): entry [(i, q + j, c), (q, f)] is ``w[f, c, i, j]``."""
    f, c, kh, kw = w.shape
    bands = np.zeros((kh, block + kw - 1, c, block, f), dtype=w.dtype)
    kernels = w.transpose(2, 3, 1, 0)  # (kh, kw, C, F)
    for q in range(block):
        bands[:, q : q + kw, :, q, :] = kernels
    return bands.reshape(kh * (block + kw - 1) * c, block * f)


def conv_channels_last(x: FloatArray, w: FloatArray, b: FloatArray, block: int = 1) -> FloatArray:
    """A valid convolution of channel-last inputs as one matrix product: each row of the left
    factor a patch of kh rows and ``block`` + kw - 1 columns (a strided view's rows, copied once)
    and a 1, the right factor ``banded_kernels`` and the biases (``block`` 1: im2col's own product).

    Args:
        x: inputs, shape (N, H, W, C).
        w: kernels, shape (F, C, kh, kw).
        b: biases, shape (F,).
        block: output columns per product row; must divide W - kw + 1.

    Returns:
        The output, channel-last, shape (N, H - kh + 1, W - kw + 1, F).
    """
    n, h, width, c = x.shape
    f, _, kh, kw = w.shape
    ho, wo = h - kh + 1, width - kw + 1
    if wo % block:
        raise ValueError(f"block: expected a divisor of the output width {wo}, got {block}")
    x = np.ascontiguousarray(x)  # (a view of a size-1 axis may carry any stride: only the itemsize is sure)
    s_n, s_h, s_w = x.strides[:3]
    span = (block + kw - 1) * c  # a patch row: whole pixels of C channels, adjacent in memory
    patches = as_strided(x, shape=(n, ho, wo // block, kh, span), strides=(s_n, s_h, block * s_w, s_h, x.itemsize), writeable=False)
    left = np.empty((n, ho, wo // block, kh * span + 1), dtype=x.dtype)
    left[..., :-1].reshape(patches.shape)[...] = patches  # (a view: the last axis is split, not copied)
    left[..., -1] = 1
    right = np.concatenate([banded_kernels(w, block), np.tile(b, block)[None, :]])
    out: FloatArray = (left.reshape(-1, kh * span + 1) @ right).reshape(n, ho, wo, f)
    return out


def subsample_channels_last(x: FloatArray, coeff: FloatArray, bias: FloatArray) -> FloatArray:
    """LeNet-5's 2 x 2 subsampling of channel-last inputs (N, H, W, C): ``coeff * window sum + bias``,
    shape (N, H // 2, W // 2, C). Each window's rows are added first (runs of whole rows), then
    its two columns; the coefficients and biases are tiled along a row, so each pass runs along
    whole rows rather than C values at a time."""
    h, w, c = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2, x.shape[3]
    rows = x[:, 0:h:2, :w] + x[:, 1:h:2, :w]  # (N, H // 2, W, C)
    pairs = rows.reshape(x.shape[0], h // 2, w // 2, 2 * c)
    total = pairs[..., :c] + pairs[..., c:]
    flat = total.reshape(x.shape[0] * (h // 2), (w // 2) * c)  # a view: ``total`` is fresh and contiguous
    flat *= np.tile(coeff, w // 2)
    flat += np.tile(bias, w // 2)
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
    slope, amplitude = x.dtype.type(SQUASH_SLOPE), x.dtype.type(SQUASH_AMPLITUDE)
    gain = slope * amplitude  # a layer fed by a squashed one: A from that squash, S for its own
    images = np.ascontiguousarray(x[:, 0, :, :, None])  # (N, 32, 32, 1)
    t = tanh_in_place(conv_channels_last(images, slope * params.c1.w, slope * params.c1.b, block=C1_BLOCK))
    t = tanh_in_place(subsample_channels_last(t, gain * params.s2.coeff, slope * params.s2.bias))
    t = tanh_in_place(conv_channels_last(t, gain * dense_kernels(params.c3, table), slope * params.c3.b, block=C3_BLOCK))
    t = tanh_in_place(subsample_channels_last(t, gain * params.s4.coeff, slope * params.s4.bias))
    t = tanh_in_place(conv_channels_last(t, gain * params.c5.w, slope * params.c5.b).reshape(x.shape[0], -1))
    a = tanh_in_place(t @ (gain * params.f6.w).T + slope * params.f6.b)
    a *= amplitude
    centers = rbf_centers(a.dtype)
    difference = a[:, None, :] - centers[None, :, :]
    distances: FloatArray = np.einsum("nkd,nkd->nk", difference, difference)
    return distances
