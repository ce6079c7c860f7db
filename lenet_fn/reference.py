"""Plain-loop reference implementations of conv2d, the pools, LeNet subsampling and squashing.

They loop over output pixels, one window at a time, the way the operations are defined; the fast
versions in ``lenet_fn.ops`` are tested against them and benchmarked against them. They take the
same arguments as the ops and return arrays rather than caches. Not for training: they are slow.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, check_float_array, check_same_dtype
from lenet_fn.ops import SQUASH_AMPLITUDE, SQUASH_SLOPE, check_connection_table, check_conv2d_args, check_pool_args, conv2d_output_size


def conv2d_reference(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> FloatArray:
    """Loop version of ``conv2d_forward``.

    Args:
        x: inputs, shape (N, C, H, W).
        w: weights, shape (F, C, kh, kw).
        b: biases, shape (F,).
        stride: an int or (sh, sw).
        padding: an int or (ph, pw).

    Returns:
        ``out`` of shape (N, F, Ho, Wo).
    """
    x, w, b, (sh, sw), (ph, pw) = check_conv2d_args(x, w, b, stride, padding)
    n, _, h, width = x.shape
    f, _, kh, kw = w.shape
    ho, wo = conv2d_output_size((h, width), (kh, kw), (sh, sw), (ph, pw))
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.empty((n, f, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = padded[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def conv2d_backward_reference(
    d_out: FloatArray,
    x: FloatArray,
    w: FloatArray,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Loop version of ``conv2d_backward``.

    Args:
        d_out: upstream gradient, shape (N, F, Ho, Wo).
        x: the forward inputs, shape (N, C, H, W).
        w: the forward weights, shape (F, C, kh, kw).
        stride: an int or (sh, sw).
        padding: an int or (ph, pw).

    Returns:
        ``(d_x, d_w, d_b)`` of shapes (N, C, H, W), (F, C, kh, kw), (F,).
    """
    bias = np.zeros(w.shape[0], dtype=w.dtype)
    x, w, _, (sh, sw), (ph, pw) = check_conv2d_args(x, w, bias, stride, padding)
    d_out = check_float_array("d_out", d_out, layout="(N, F, Ho, Wo)")
    check_same_dtype("d_out", d_out, "x", x.dtype)
    _, _, h, width = x.shape
    _, _, kh, kw = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    d_padded = np.zeros_like(padded)
    d_w = np.zeros_like(w)
    for i in range(d_out.shape[2]):
        for j in range(d_out.shape[3]):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            d_pixel = d_out[:, :, i, j]
            d_w += np.tensordot(d_pixel, padded[:, :, rows, cols], axes=([0], [0]))
            d_padded[:, :, rows, cols] += np.tensordot(d_pixel, w, axes=([1], [0]))
    d_b = d_out.sum(axis=(0, 2, 3))
    return d_padded[:, :, ph : ph + h, pw : pw + width], d_w, d_b


def partial_conv2d_reference(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    *,
    table: npt.NDArray[np.bool_],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> FloatArray:
    """Loop version of ``partial_conv2d_forward``: each output map sums one convolution per connection.

    Args:
        x: inputs, shape (N, C, H, W).
        w: one kernel per connection (row-major order of the table), shape (connections, kh, kw).
        b: biases, shape (F,).
        table: which inputs feed which output, boolean, shape (F, C).
        stride: an int or (sh, sw).
        padding: an int or (ph, pw).

    Returns:
        ``out`` of shape (N, F, Ho, Wo).
    """
    table = check_connection_table(table, out_channels=b.shape[0], in_channels=x.shape[1])
    no_bias = np.zeros(1, dtype=x.dtype)
    maps = []
    connection = 0
    for output_map in range(table.shape[0]):
        total = np.full(1, b[output_map], dtype=x.dtype)
        for input_map in range(table.shape[1]):
            if table[output_map, input_map]:
                kernel = w[connection][None, None]
                one = x[:, input_map : input_map + 1]
                total = total + conv2d_reference(one, kernel, no_bias, stride=stride, padding=padding)[:, 0]
                connection += 1
        maps.append(total)
    return np.stack(maps, axis=1)


def _windows(x: FloatArray, size: int) -> tuple[int, int]:
    return x.shape[2] // size, x.shape[3] // size


def avg_pool2d_reference(x: FloatArray, *, size: int = 2) -> FloatArray:
    """Loop version of ``avg_pool2d_forward``: (N, C, H, W) -> (N, C, H // size, W // size)."""
    x, size = check_pool_args(x, size)
    ho, wo = _windows(x, size)
    out = np.empty(x.shape[:2] + (ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size].mean(axis=(2, 3))
    return out


def avg_pool2d_backward_reference(d_out: FloatArray, x: FloatArray, *, size: int = 2) -> FloatArray:
    """Loop version of ``avg_pool2d_backward``: returns ``d_x`` of the shape of ``x``."""
    x, size = check_pool_args(x, size)
    d_x = np.zeros_like(x)
    for i in range(d_out.shape[2]):
        for j in range(d_out.shape[3]):
            d_x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size] = d_out[:, :, i, j, None, None] / (size * size)
    return d_x


def max_pool2d_reference(x: FloatArray, *, size: int = 2) -> FloatArray:
    """Loop version of ``max_pool2d_forward``: (N, C, H, W) -> (N, C, H // size, W // size)."""
    x, size = check_pool_args(x, size)
    ho, wo = _windows(x, size)
    out = np.empty(x.shape[:2] + (ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size].max(axis=(2, 3))
    return out


def max_pool2d_backward_reference(d_out: FloatArray, x: FloatArray, *, size: int = 2) -> FloatArray:
    """Loop version of ``max_pool2d_backward``: the gradient goes to each window's first maximum."""
    x, size = check_pool_args(x, size)
    n, c = x.shape[:2]
    d_x = np.zeros_like(x)
    for i in range(d_out.shape[2]):
        for j in range(d_out.shape[3]):
            window = x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size].reshape(n, c, size * size)
            first = window.argmax(axis=2)
            d_window = np.zeros((n, c, size * size), dtype=x.dtype)
            for k in range(n):
                for m in range(c):
                    d_window[k, m, first[k, m]] = d_out[k, m, i, j]
            d_x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size] = d_window.reshape(n, c, size, size)
    return d_x


def subsample_reference(x: FloatArray, coeff: FloatArray, bias: FloatArray, *, size: int = 2) -> FloatArray:
    """Loop version of ``subsample_forward``: ``coeff[c] * sum(window) + bias[c]``."""
    x, size = check_pool_args(x, size)
    ho, wo = _windows(x, size)
    out = np.empty(x.shape[:2] + (ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window_sum = x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size].sum(axis=(2, 3))
            out[:, :, i, j] = coeff * window_sum + bias
    return out


def subsample_backward_reference(
    d_out: FloatArray, x: FloatArray, coeff: FloatArray, *, size: int = 2
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Loop version of ``subsample_backward``: returns ``(d_x, d_coeff, d_bias)``."""
    x, size = check_pool_args(x, size)
    d_x = np.zeros_like(x)
    d_coeff = np.zeros_like(coeff)
    for i in range(d_out.shape[2]):
        for j in range(d_out.shape[3]):
            rows, cols = slice(i * size, (i + 1) * size), slice(j * size, (j + 1) * size)
            d_coeff += (d_out[:, :, i, j] * x[:, :, rows, cols].sum(axis=(2, 3))).sum(axis=0)
            d_x[:, :, rows, cols] = (d_out[:, :, i, j] * coeff)[:, :, None, None]
    return d_x, d_coeff, d_out.sum(axis=(0, 2, 3))


def squash_reference(x: FloatArray) -> FloatArray:
    """Loop version of ``squash_forward``: ``A * tanh(S * x)`` one element at a time, in float64."""
    x = check_float_array("x", x)
    out = np.empty(x.shape, dtype=np.float64)
    for index, value in np.ndenumerate(x):
        out[index] = SQUASH_AMPLITUDE * math.tanh(SQUASH_SLOPE * float(value))
    return out.astype(x.dtype)


def squash_backward_reference(d_out: FloatArray, x: FloatArray) -> FloatArray:
    """Loop version of ``squash_backward``: ``d_out * A * S * (1 - tanh(S * x)**2)``, in float64."""
    x = check_float_array("x", x)
    d_x = np.empty(x.shape, dtype=np.float64)
    for index, value in np.ndenumerate(x):
        d_x[index] = float(d_out[index]) * SQUASH_AMPLITUDE * SQUASH_SLOPE * (1.0 - math.tanh(SQUASH_SLOPE * float(value)) ** 2)
    return d_x.astype(x.dtype)


def bilinear_sample_reference(images: FloatArray, positions: npt.NDArray[np.float64], *, fill: float) -> FloatArray:
    """``augment.bilinear_sample`` one value at a time: images (N, C, H, W) read at (row, column)
    positions (N, P, 2), each the four surrounding pixels weighted by nearness, ``fill`` outside;
    shape (N, C, P)."""
    n, c, h, w = images.shape
    out = np.empty((n, c, positions.shape[1]), dtype=images.dtype)

    def pixel(image: int, channel: int, row: int, column: int) -> float:
        return float(images[image, channel, row, column]) if 0 <= row < h and 0 <= column < w else fill

    for image in range(n):
        for point, (row, column) in enumerate(positions[image]):
            top, left = int(np.floor(row)), int(np.floor(column))
            down, right = row - top, column - left
            for channel in range(c):
                upper = pixel(image, channel, top, left) * (1 - right) + pixel(image, channel, top, left + 1) * right
                lower = pixel(image, channel, top + 1, left) * (1 - right) + pixel(image, channel, top + 1, left + 1) * right
                out[image, channel, point] = upper * (1 - down) + lower * down
    return out
