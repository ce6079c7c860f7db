"""Every layer as a pure pair: ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(d_out, cache)``.

Conventions (the docs' Concepts page): images are NCHW, conv weights ``(C_out, C_in, kh, kw)``, linear
weights ``(out, in)``. Ops preserve the dtype (float32 or float64; all arrays of one call share
it), never write into their arguments, and keep read-only views in their caches.
Hyperparameters are keyword-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import (
    FloatArray,
    FloatDType,
    check_cache,
    check_float_array,
    check_int,
    check_int_pair,
    check_positive_float,
    check_same_dtype,
    check_shape,
    readonly_view,
)

SQUASH_AMPLITUDE = 1.7159
"""LeCun's squashing function ``A * tanh(S * x)``: the amplitude ``A``."""
SQUASH_SLOPE = 2.0 / 3.0
"""LeCun's squashing function ``A * tanh(S * x)``: the slope ``S``."""


def _check_d_out(d_out: object, shape: tuple[int, ...], dtype: FloatDType) -> FloatArray:
    """Checks an upstream gradient against the forward output's shape and dtype."""
    d_out = check_float_array("d_out", d_out)
    check_shape("d_out", d_out, shape, "(the shape of the forward output)")
    check_same_dtype("d_out", d_out, "the forward output", dtype)
    return d_out


# --------------------------------------------------------------------------------------------
# linear


@attrs.frozen
class LinearCache:
    """Saved by ``linear_forward``: the input ``x`` (N, in) and weights ``w`` (out, in)."""

    x: FloatArray
    w: FloatArray


def linear_forward(x: FloatArray, w: FloatArray, b: FloatArray) -> tuple[FloatArray, LinearCache]:
    """Affine map ``out = x @ w.T + b``.

    Args:
        x: inputs, shape (N, in).
        w: weights, shape (out, in).
        b: biases, shape (out,).

    Returns:
        ``out`` of shape (N, out), and the cache for ``linear_backward``.

    Example:
        >>> import numpy as np
        >>> x, w, b = np.ones((2, 3)), np.full((4, 3), 0.5), np.zeros(4)
        >>> out, cache = linear_forward(x, w, b)
        >>> out[0]
        array([1.5, 1.5, 1.5, 1.5])
        >>> d_x, d_w, d_b = linear_backward(np.ones_like(out), cache)
        >>> d_x.shape, d_w.shape, d_b.shape
        ((2, 3), (4, 3), (4,))
    """
    x = check_float_array("x", x, layout="(N, in)")
    w = check_float_array("w", w, layout="(out, in)")
    b = check_float_array("b", b, layout="(out,)")
    check_same_dtype("w", w, "x", x.dtype)
    check_same_dtype("b", b, "x", x.dtype)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w: expected {x.shape[1]} input features (x has shape {x.shape}), got w of shape {w.shape}"
        )
    check_shape("b", b, (w.shape[0],), "(one bias per row of w)")
    out = x @ w.T
    out += b
    return out, LinearCache(x=readonly_view(x), w=readonly_view(w))


@overload
def linear_backward(
    d_out: FloatArray, cache: LinearCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def linear_backward(
    d_out: FloatArray, cache: LinearCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def linear_backward(
    d_out: FloatArray, cache: LinearCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def linear_backward(
    d_out: FloatArray, cache: LinearCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of ``linear_forward``.

    Args:
        d_out: upstream gradient, shape (N, out).
        cache: from ``linear_forward``.
        input_grad: compute ``d_x``; ``False`` returns ``None`` in its place (a first layer).

    Returns:
        ``(d_x, d_w, d_b)`` of shapes (N, in), (out, in), (out,).
    """
    cache = check_cache(cache, LinearCache, "linear_forward")
    x, w = cache.x, cache.w
    d_out = _check_d_out(d_out, (x.shape[0], w.shape[0]), x.dtype)
    d_x = d_out @ w if input_grad else None
    return d_x, d_out.T @ x, d_out.sum(axis=0)


# --------------------------------------------------------------------------------------------
# conv2d


@attrs.frozen
class Conv2dCache:
    """Saved by ``conv2d_forward``.

    Attributes:
        columns: the unfolded padded input, shape (C * kh * kw, N * Ho * Wo).
        w: weights, shape (F, C, kh, kw).
        x_shape: the input's shape (N, C, H, W).
        stride: (sh, sw).
        padding: (ph, pw).
    """

    columns: FloatArray
    w: FloatArray
    x_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        """The output's spatial size (Ho, Wo)."""
        kernel = (self.w.shape[2], self.w.shape[3])
        return conv2d_output_size((self.x_shape[2], self.x_shape[3]), kernel, self.stride, self.padding)


def conv2d_output_size(
    in_size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[int, int]:
    """Spatial output size of a convolution (floor mode, as in PyTorch)."""
    return (
        (in_size[0] + 2 * padding[0] - kernel[0]) // stride[0] + 1,
        (in_size[1] + 2 * padding[1] - kernel[1]) // stride[1] + 1,
    )


def check_conv2d_args(
    x: object, w: object, b: object, stride: object, padding: object
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, int], tuple[int, int]]:
    """Validates the arguments of a 2-D convolution (shared with the loop reference)."""
    x = check_float_array("x", x, layout="(N, C, H, W)")
    w = check_float_array("w", w, layout="(F, C, kh, kw)")
    b = check_float_array("b", b, layout="(F,)")
    check_same_dtype("w", w, "x", x.dtype)
    check_same_dtype("b", b, "x", x.dtype)
    strides = check_int_pair("stride", stride, minimum=1)
    paddings = check_int_pair("padding", padding, minimum=0)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w: expected {x.shape[1]} input channels (x has shape {x.shape}), got w of shape {w.shape}"
        )
    check_shape("b", b, (w.shape[0],), "(one bias per output channel of w)")
    if min(w.shape) < 1:
        raise ValueError(f"w: expected at least one filter of at least 1x1 on at least one channel, got w of shape {w.shape}")
    padded = (x.shape[2] + 2 * paddings[0], x.shape[3] + 2 * paddings[1])
    if w.shape[2] > padded[0] or w.shape[3] > padded[1]:
        raise ValueError(
            f"w: kernel {w.shape[2]}x{w.shape[3]} is larger than the padded input "
            f"{padded[0]}x{padded[1]} (x is {x.shape[2]}x{x.shape[3]}, padding {paddings})"
        )
    return x, w, b, strides, paddings


def _channels_first_padded(x: FloatArray, padding: tuple[int, int]) -> FloatArray:
    """``x`` (N, C, H, W) as a (C, N, Hp, Wp) array with zero padding: a view when nothing needs copying.

    Activations produced by ``conv2d_forward`` are channel-major in memory, so for them (and for
    any single-channel input) the transposed view is already contiguous.
    """
    ph, pw = padding
    x_t = x.transpose(1, 0, 2, 3)
    if ph == 0 and pw == 0:
        return x_t
    n, c, h, w = x.shape
    padded = np.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph : ph + h, pw : pw + w] = x_t
    return padded


def _unfold(
    padded: FloatArray, kernel: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int]
) -> FloatArray:
    """im2col: the windows of ``padded`` (C, N, Hp, Wp) as columns, shape (C * kh * kw, N * Ho * Wo).

    In two passes: ``kw`` column-shifted copies of the rows, then ``kh`` row-shifted copies of
    those, whose inner runs are whole Ho x Wo windows (far faster to copy than rows of Wo).
    """
    c, n, hp = padded.shape[:3]
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_size
    shifted = np.empty((c, kw, n, hp, wo), dtype=padded.dtype)
    for j in range(kw):
        shifted[:, j] = padded[:, :, :, j : j + sw * (wo - 1) + 1 : sw]
    columns = np.empty((c, kh, kw, n, ho, wo), dtype=padded.dtype)
    for i in range(kh):
        columns[:, i] = shifted[:, :, :, i : i + sh * (ho - 1) + 1 : sh]
    return columns.reshape(c * kh * kw, n * ho * wo)


def _fold(
    d_columns: FloatArray,
    padded_shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    out_size: tuple[int, int],
) -> FloatArray:
    """col2im, the adjoint of ``_unfold``: sums the column gradients back into (C, N, Hp, Wp).

    The two passes of ``_unfold`` in reverse: rows first, then columns.
    """
    c, n, hp, wp = padded_shape
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_size
    windows = d_columns.reshape(c, kh, kw, n, ho, wo)
    d_shifted = np.zeros((c, kw, n, hp, wo), dtype=d_columns.dtype)
    for i in range(kh):
        d_shifted[:, :, :, i : i + sh * (ho - 1) + 1 : sh] += windows[:, i]
    d_padded = np.zeros(padded_shape, dtype=d_columns.dtype)
    for j in range(kw):
        d_padded[:, :, :, j : j + sw * (wo - 1) + 1 : sw] += d_shifted[:, j]
    return d_padded


def conv2d_forward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[FloatArray, Conv2dCache]:
    """2-D cross-correlation (PyTorch's ``conv2d``) with zero padding.

    Computed as one matrix product of the weights with the unfolded input (im2col). The output is
    channel-major in memory (a transposed view of a (F, N, Ho, Wo) array): elementwise ops keep that
    layout and the next convolution reads it without a copy.

    Args:
        x: inputs, shape (N, C, H, W).
        w: weights, shape (F, C, kh, kw).
        b: biases, shape (F,).
        stride: step between windows, an int or (sh, sw), each >= 1.
        padding: zeros added on each side, an int or (ph, pw), each >= 0.

    Returns:
        ``out`` of shape (N, F, Ho, Wo) with ``Ho = (H + 2 ph - kh) // sh + 1`` (likewise ``Wo``),
        and the cache for ``conv2d_backward``.

    Example:
        >>> import numpy as np
        >>> x, w, b = np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), np.zeros(2)
        >>> out, cache = conv2d_forward(x, w, b, padding=1)
        >>> out.shape, out[0, 0, 2, 2].item(), out[0, 0, 0, 0].item()   # a corner sees 4 of the 9 taps
        ((1, 2, 5, 5), 9.0, 4.0)
        >>> d_x, d_w, d_b = conv2d_backward(np.ones_like(out), cache)
        >>> d_x.shape, d_w.shape, d_b.tolist()
        ((1, 1, 5, 5), (2, 1, 3, 3), [25.0, 25.0])
    """
    x, w, b, strides, paddings = check_conv2d_args(x, w, b, stride, padding)
    n, _, h, width = x.shape
    f, c, kh, kw = w.shape
    ho, wo = conv2d_output_size((h, width), (kh, kw), strides, paddings)
    columns = _unfold(_channels_first_padded(x, paddings), (kh, kw), strides, (ho, wo))
    out = w.reshape(f, c * kh * kw) @ columns
    out += b[:, None]
    cache = Conv2dCache(
        columns=readonly_view(columns), w=readonly_view(w), x_shape=(n, c, h, width), stride=strides, padding=paddings
    )
    return out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3), cache


@overload
def conv2d_backward(
    d_out: FloatArray, cache: Conv2dCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def conv2d_backward(
    d_out: FloatArray, cache: Conv2dCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def conv2d_backward(
    d_out: FloatArray, cache: Conv2dCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def conv2d_backward(
    d_out: FloatArray, cache: Conv2dCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of ``conv2d_forward``.

    Args:
        d_out: upstream gradient, shape (N, F, Ho, Wo).
        cache: from ``conv2d_forward``.
        input_grad: compute ``d_x``; ``False`` returns ``None`` in its place (the first layer).

    Returns:
        ``(d_x, d_w, d_b)`` of shapes (N, C, H, W), (F, C, kh, kw), (F,); ``d_x`` is channel-major
        in memory, like the outputs of ``conv2d_forward``.
    """
    cache = check_cache(cache, Conv2dCache, "conv2d_forward")
    n, c, h, width = cache.x_shape
    f, _, kh, kw = cache.w.shape
    ho, wo = cache.out_size
    d_out = _check_d_out(d_out, (n, f, ho, wo), cache.w.dtype)
    d_rows = d_out.transpose(1, 0, 2, 3).reshape(f, n * ho * wo)  # a view when d_out is channel-major
    d_b = d_rows.sum(axis=1)
    d_w = (d_rows @ cache.columns.T).reshape(cache.w.shape)
    if not input_grad:
        return None, d_w, d_b
    d_columns = cache.w.reshape(f, c * kh * kw).T @ d_rows
    ph, pw = cache.padding
    d_padded = _fold(d_columns, (c, n, h + 2 * ph, width + 2 * pw), (kh, kw), cache.stride, (ho, wo))
    return d_padded[:, :, ph : ph + h, pw : pw + width].transpose(1, 0, 2, 3), d_w, d_b


# --------------------------------------------------------------------------------------------
# partially connected conv2d (LeNet-5's C3)


@attrs.frozen
class PartialConv2dCache:
    """Saved by ``partial_conv2d_forward``: the cache of the dense convolution and the table (F, C)."""

    conv: Conv2dCache
    table: npt.NDArray[np.bool_]


def check_connection_table(table: object, *, out_channels: int | None, in_channels: int) -> npt.NDArray[np.bool_]:
    """Validates a connection table: booleans of shape (F, C), every output map fed by some input."""
    if not isinstance(table, np.ndarray) or table.dtype != np.bool_:
        kind = table.dtype if isinstance(table, np.ndarray) else type(table).__name__
        raise TypeError(f"table: expected a boolean numpy.ndarray of shape (F, C), got {kind}")
    if table.ndim != 2 or table.shape[1] != in_channels or (out_channels is not None and table.shape[0] != out_channels):
        expected = f"({out_channels if out_channels is not None else 'F'}, {in_channels})"
        raise ValueError(f"table: expected shape {expected} (output maps, input maps of x), got {table.shape}")
    if not table.any(axis=1).all():
        raise ValueError(f"table: expected every output map to have an input, rows {np.flatnonzero(~table.any(axis=1)).tolist()} are empty")
    return table


def partial_conv2d_forward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray,
    *,
    table: npt.NDArray[np.bool_],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[FloatArray, PartialConv2dCache]:
    """A convolution in which output map ``f`` sees only the input maps ``c`` with ``table[f, c]``.

    LeNet-5's C3 (LeCun et al. 1998, Table I). Only the connections in the table have weights: the
    missing ones are not parameters, get no gradient and never change. Computed as one dense
    convolution whose missing kernels are zero.

    Args:
        x: inputs, shape (N, C, H, W).
        w: one kernel per connection, in row-major order of the table's True entries,
            shape (connections, kh, kw).
        b: biases, shape (F,).
        table: which inputs feed which output, boolean, shape (F, C).
        stride: an int or (sh, sw).
        padding: an int or (ph, pw).

    Returns:
        ``out`` of shape (N, F, Ho, Wo), and the cache for ``partial_conv2d_backward``.

    Example:
        >>> import numpy as np
        >>> table = np.array([[True, False], [True, True]])       # map 0 sees input 0; map 1 sees both
        >>> x, w, b = np.ones((1, 2, 4, 4)), np.ones((3, 3, 3)), np.zeros(2)
        >>> out, cache = partial_conv2d_forward(x, w, b, table=table)
        >>> out[0, :, 0, 0].tolist()
        [9.0, 18.0]
        >>> partial_conv2d_backward(np.ones_like(out), cache)[1].shape   # one kernel per connection
        (3, 3, 3)
    """
    x = check_float_array("x", x, layout="(N, C, H, W)")
    w = check_float_array("w", w, layout="(connections, kh, kw)")
    b = check_float_array("b", b, layout="(F,)")
    table = check_connection_table(table, out_channels=b.shape[0], in_channels=x.shape[1])
    connections = int(table.sum())
    if w.shape[0] != connections:
        raise ValueError(f"w: expected {connections} kernels (one per connection of table), got w of shape {w.shape}")
    check_same_dtype("w", w, "x", x.dtype)
    dense = np.zeros(table.shape + w.shape[1:], dtype=w.dtype)
    dense[table] = w
    out, conv_cache = conv2d_forward(x, dense, b, stride=stride, padding=padding)
    return out, PartialConv2dCache(conv=conv_cache, table=readonly_view(table))


@overload
def partial_conv2d_backward(
    d_out: FloatArray, cache: PartialConv2dCache, *, input_grad: Literal[True] = True
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def partial_conv2d_backward(
    d_out: FloatArray, cache: PartialConv2dCache, *, input_grad: Literal[False]
) -> tuple[None, FloatArray, FloatArray]: ...
@overload
def partial_conv2d_backward(
    d_out: FloatArray, cache: PartialConv2dCache, *, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]: ...
def partial_conv2d_backward(
    d_out: FloatArray, cache: PartialConv2dCache, *, input_grad: bool = True
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of ``partial_conv2d_forward``.

    Args:
        d_out: upstream gradient, shape (N, F, Ho, Wo).
        cache: from ``partial_conv2d_forward``.
        input_grad: compute ``d_x``; ``False`` returns ``None`` in its place.

    Returns:
        ``(d_x, d_w, d_b)`` of shapes (N, C, H, W), (connections, kh, kw), (F,).
    """
    cache = check_cache(cache, PartialConv2dCache, "partial_conv2d_forward")
    d_x, d_dense, d_b = conv2d_backward(d_out, cache.conv, input_grad=input_grad)
    return d_x, d_dense[cache.table], d_b


# --------------------------------------------------------------------------------------------
# pools and LeNet subsampling (non-overlapping windows: stride = size, floor mode)


def check_pool_args(x: object, size: object) -> tuple[FloatArray, int]:
    """Validates the input and window size of a pool (shared with the loop references)."""
    x = check_float_array("x", x, layout="(N, C, H, W)")
    size = check_int("size", size, minimum=1)
    if size > x.shape[2] or size > x.shape[3]:
        raise ValueError(f"size: expected a window no larger than the input {x.shape[2]}x{x.shape[3]}, got {size}")
    return x, size


def _window_taps(x: FloatArray, size: int) -> list[FloatArray]:
    """The size * size strided views ``x[:, :, i::size, j::size]`` (cropped to whole windows), row-major.

    Element ``[n, c, a, b]`` of view ``i * size + j`` is pixel ``(i, j)`` of window ``(a, b)``.
    """
    ho, wo = x.shape[2] // size, x.shape[3] // size
    return [x[:, :, i : ho * size : size, j : wo * size : size] for i in range(size) for j in range(size)]


def _window_sums(x: FloatArray, size: int) -> FloatArray:
    """Sum over each size x size window: (N, C, H, W) -> (N, C, H // size, W // size)."""
    taps = _window_taps(x, size)
    if len(taps) == 1:
        return taps[0].copy()
    total = taps[0] + taps[1]
    for tap in taps[2:]:
        total += tap
    return total


def _like(reference: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """An uninitialised array of ``shape`` with the memory order (e.g. channel-major) of ``reference``."""
    return np.empty_like(reference, shape=shape)


def _zero_remainder(d_x: FloatArray, size: int) -> None:
    """Zeros the rows and columns of a fresh gradient that no whole window covers."""
    ho, wo = d_x.shape[2] // size, d_x.shape[3] // size
    d_x[:, :, ho * size :, :] = 0
    d_x[:, :, :, wo * size :] = 0


def _spread_windows(d_windows: FloatArray, x_shape: tuple[int, ...], size: int) -> FloatArray:
    """Adjoint of ``_window_sums``: every pixel of a window receives its window's gradient."""
    d_x = _like(d_windows, x_shape)
    for tap in _window_taps(d_x, size):
        tap[...] = d_windows
    _zero_remainder(d_x, size)
    return d_x


@attrs.frozen
class AvgPool2dCache:
    """Saved by ``avg_pool2d_forward``: the input's shape (N, C, H, W), the window size, the dtype."""

    x_shape: tuple[int, int, int, int]
    size: int
    dtype: FloatDType


def avg_pool2d_forward(x: FloatArray, *, size: int = 2) -> tuple[FloatArray, AvgPool2dCache]:
    """Average over non-overlapping size x size windows (stride = size; a remainder is dropped).

    Args:
        x: inputs, shape (N, C, H, W).
        size: window side, at most min(H, W).

    Returns:
        ``out`` of shape (N, C, H // size, W // size), and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = avg_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4))
        >>> out[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> avg_pool2d_backward(np.ones_like(out), cache)[0, 0, 0].tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    x, size = check_pool_args(x, size)
    out = _window_sums(x, size)
    out *= 1.0 / (size * size)
    n, c, h, w = x.shape
    return out, AvgPool2dCache(x_shape=(n, c, h, w), size=size, dtype=x.dtype)


def avg_pool2d_backward(d_out: FloatArray, cache: AvgPool2dCache) -> FloatArray:
    """Gradient of ``avg_pool2d_forward``.

    Args:
        d_out: upstream gradient, shape (N, C, H // size, W // size).
        cache: from ``avg_pool2d_forward``.

    Returns:
        ``d_x`` of shape (N, C, H, W).
    """
    cache = check_cache(cache, AvgPool2dCache, "avg_pool2d_forward")
    n, c, h, w = cache.x_shape
    size = cache.size
    d_out = _check_d_out(d_out, (n, c, h // size, w // size), cache.dtype)
    return _spread_windows(d_out * (1.0 / (size * size)), cache.x_shape, size)


@attrs.frozen
class MaxPool2dCache:
    """Saved by ``max_pool2d_forward``.

    Attributes:
        argmax: position of the first maximum inside each window (row-major), shape (N, C, Ho, Wo).
        x_shape: the input's shape (N, C, H, W).
        size: the window side.
        dtype: the input's dtype.
    """

    argmax: npt.NDArray[np.integer[Any]]
    x_shape: tuple[int, int, int, int]
    size: int
    dtype: FloatDType


def max_pool2d_forward(x: FloatArray, *, size: int = 2) -> tuple[FloatArray, MaxPool2dCache]:
    """Maximum over non-overlapping size x size windows (stride = size; a remainder is dropped).

    On ties the gradient goes to the first maximum in row-major order, as in PyTorch.

    Args:
        x: inputs, shape (N, C, H, W).
        size: window side, at most min(H, W).

    Returns:
        ``out`` of shape (N, C, H // size, W // size), and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = max_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4))
        >>> out[0, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> max_pool2d_backward(np.ones_like(out), cache)[0, 0, 1].tolist()   # the gradient goes to the maxima
        [0.0, 1.0, 0.0, 1.0]
    """
    x, size = check_pool_args(x, size)
    taps = _window_taps(x, size)
    out = taps[0].copy()
    argmax = np.zeros(out.shape, dtype=np.min_scalar_type(size * size - 1))
    for position, tap in enumerate(taps[1:], start=1):
        larger = tap > out
        np.copyto(out, tap, where=larger)
        np.copyto(argmax, position, where=larger)
    n, c, h, w = x.shape
    return out, MaxPool2dCache(argmax=readonly_view(argmax), x_shape=(n, c, h, w), size=size, dtype=x.dtype)


def max_pool2d_backward(d_out: FloatArray, cache: MaxPool2dCache) -> FloatArray:
    """Gradient of ``max_pool2d_forward``: each window's gradient goes to its maximum.

    Args:
        d_out: upstream gradient, shape (N, C, H // size, W // size).
        cache: from ``max_pool2d_forward``.

    Returns:
        ``d_x`` of shape (N, C, H, W).
    """
    cache = check_cache(cache, MaxPool2dCache, "max_pool2d_forward")
    d_out = _check_d_out(d_out, cache.argmax.shape, cache.dtype)
    d_x = _like(d_out, cache.x_shape)
    for position, tap in enumerate(_window_taps(d_x, cache.size)):
        np.multiply(d_out, cache.argmax == position, out=tap)
    _zero_remainder(d_x, cache.size)
    return d_x


@attrs.frozen
class SubsampleCache:
    """Saved by ``subsample_forward``.

    Attributes:
        window_sums: the sum of each window, shape (N, C, Ho, Wo).
        coeff: the per-map coefficients, shape (C,).
        x_shape: the input's shape (N, C, H, W).
        size: the window side.
    """

    window_sums: FloatArray
    coeff: FloatArray
    x_shape: tuple[int, int, int, int]
    size: int


def subsample_forward(
    x: FloatArray, coeff: FloatArray, bias: FloatArray, *, size: int = 2
) -> tuple[FloatArray, SubsampleCache]:
    """LeNet-5's trainable subsampling: ``out[n, c] = coeff[c] * sum(window) + bias[c]``.

    Windows are size x size and do not overlap (stride = size; a remainder is dropped).

    Args:
        x: inputs, shape (N, C, H, W).
        coeff: one coefficient per map, shape (C,).
        bias: one bias per map, shape (C,).
        size: window side, at most min(H, W).

    Returns:
        ``out`` of shape (N, C, H // size, W // size), and the cache.

    Example:
        >>> import numpy as np
        >>> x = np.ones((1, 2, 4, 4))
        >>> out, cache = subsample_forward(x, np.array([0.5, 2.0]), np.array([0.0, 1.0]))
        >>> out[0, :, 0, 0].tolist()                       # coeff * (sum of 4 ones) + bias
        [2.0, 9.0]
        >>> d_x, d_coeff, d_bias = subsample_backward(np.ones_like(out), cache)
        >>> d_coeff.tolist(), d_bias.tolist()
        ([16.0, 16.0], [4.0, 4.0])
    """
    x, size = check_pool_args(x, size)
    coeff = check_float_array("coeff", coeff, layout="(C,)")
    bias = check_float_array("bias", bias, layout="(C,)")
    check_same_dtype("coeff", coeff, "x", x.dtype)
    check_same_dtype("bias", bias, "x", x.dtype)
    check_shape("coeff", coeff, (x.shape[1],), "(one coefficient per channel of x)")
    check_shape("bias", bias, (x.shape[1],), "(one bias per channel of x)")
    window_sums = _window_sums(x, size)
    out = window_sums * coeff[:, None, None]
    out += bias[:, None, None]
    n, c, h, w = x.shape
    cache = SubsampleCache(
        window_sums=readonly_view(window_sums), coeff=readonly_view(coeff), x_shape=(n, c, h, w), size=size
    )
    return out, cache


def subsample_backward(d_out: FloatArray, cache: SubsampleCache) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients of ``subsample_forward``.

    Args:
        d_out: upstream gradient, shape (N, C, H // size, W // size).
        cache: from ``subsample_forward``.

    Returns:
        ``(d_x, d_coeff, d_bias)`` of shapes (N, C, H, W), (C,), (C,).
    """
    cache = check_cache(cache, SubsampleCache, "subsample_forward")
    d_out = _check_d_out(d_out, cache.window_sums.shape, cache.coeff.dtype)
    d_coeff = np.einsum("nchw,nchw->c", d_out, cache.window_sums)
    d_bias = d_out.sum(axis=(0, 2, 3))
    d_x = _spread_windows(d_out * cache.coeff[:, None, None], cache.x_shape, cache.size)
    return d_x, d_coeff, d_bias


# --------------------------------------------------------------------------------------------
# activations


@attrs.frozen
class ReluCache:
    """Saved by ``relu_forward``: its output, any shape."""

    out: FloatArray


def relu_forward(x: FloatArray) -> tuple[FloatArray, ReluCache]:
    """``max(x, 0)`` elementwise.

    Args:
        x: inputs, any shape.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
        >>> out.tolist(), relu_backward(np.ones(3), cache).tolist()
        ([0.0, 0.0, 2.0], [0.0, 0.0, 1.0])
    """
    x = check_float_array("x", x)
    out = np.maximum(x, 0)
    return out, ReluCache(out=readonly_view(out))


def relu_backward(d_out: FloatArray, cache: ReluCache) -> FloatArray:
    """Gradient of ``relu_forward`` (zero at ``x = 0``, as in PyTorch).

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``relu_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, ReluCache, "relu_forward")
    d_out = _check_d_out(d_out, cache.out.shape, cache.out.dtype)
    return np.where(cache.out > 0, d_out, 0)


@attrs.frozen
class LeakyReluCache:
    """Saved by ``leaky_relu_forward``: its input (any shape) and the negative slope."""

    x: FloatArray
    slope: float


def leaky_relu_forward(x: FloatArray, *, slope: float = 0.01) -> tuple[FloatArray, LeakyReluCache]:
    """``x`` where ``x > 0``, else ``slope * x``.

    Args:
        x: inputs, any shape.
        slope: the slope for negative inputs, a finite number > 0.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = leaky_relu_forward(np.array([-1.0, 2.0]), slope=0.1)
        >>> out.tolist(), leaky_relu_backward(np.ones(2), cache).tolist()
        ([-0.1, 2.0], [0.1, 1.0])
    """
    x = check_float_array("x", x)
    slope = check_positive_float("slope", slope)
    out = np.where(x > 0, x, x * slope)
    return out, LeakyReluCache(x=readonly_view(x), slope=slope)


def leaky_relu_backward(d_out: FloatArray, cache: LeakyReluCache) -> FloatArray:
    """Gradient of ``leaky_relu_forward``.

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``leaky_relu_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, LeakyReluCache, "leaky_relu_forward")
    d_out = _check_d_out(d_out, cache.x.shape, cache.x.dtype)
    return np.where(cache.x > 0, d_out, d_out * cache.slope)


@attrs.frozen
class SigmoidCache:
    """Saved by ``sigmoid_forward``: its output, any shape."""

    out: FloatArray


def sigmoid_forward(x: FloatArray) -> tuple[FloatArray, SigmoidCache]:
    """Logistic function ``1 / (1 + exp(-x))``, computed without overflow for any ``x``.

    Args:
        x: inputs, any shape.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = sigmoid_forward(np.array([0.0]))
        >>> out.tolist(), sigmoid_backward(np.ones(1), cache).tolist()
        ([0.5], [0.25])
    """
    x = check_float_array("x", x)
    decay = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1.0, decay)
    out /= 1.0 + decay
    return out, SigmoidCache(out=readonly_view(out))


def sigmoid_backward(d_out: FloatArray, cache: SigmoidCache) -> FloatArray:
    """Gradient of ``sigmoid_forward``: ``d_out * out * (1 - out)``.

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``sigmoid_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, SigmoidCache, "sigmoid_forward")
    out = cache.out
    d_out = _check_d_out(d_out, out.shape, out.dtype)
    return d_out * out * (1.0 - out)


@attrs.frozen
class TanhCache:
    """Saved by ``tanh_forward``: its output, any shape."""

    out: FloatArray


def tanh_forward(x: FloatArray) -> tuple[FloatArray, TanhCache]:
    """Hyperbolic tangent.

    Args:
        x: inputs, any shape.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = tanh_forward(np.array([0.0]))
        >>> out.tolist(), tanh_backward(np.ones(1), cache).tolist()
        ([0.0], [1.0])
    """
    x = check_float_array("x", x)
    out = np.tanh(x)
    return out, TanhCache(out=readonly_view(out))


def tanh_backward(d_out: FloatArray, cache: TanhCache) -> FloatArray:
    """Gradient of ``tanh_forward``: ``d_out * (1 - out**2)``.

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``tanh_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, TanhCache, "tanh_forward")
    out = cache.out
    d_out = _check_d_out(d_out, out.shape, out.dtype)
    return d_out * (1.0 - out * out)


@attrs.frozen
class SquashCache:
    """Saved by ``squash_forward``: its output, any shape."""

    out: FloatArray


_SQUASH_CHUNK = 262144
"""Elements per in-cache pass of ``_in_chunks`` (squash forward and backward; 1 MiB of float32).
Smaller chunks mean more NumPy calls, each a release and re-acquisition of the GIL (the docs'
speed page has the measurement)."""


def _in_chunks(kernel: Callable[..., None], layout: FloatArray, *inputs: FloatArray) -> FloatArray:
    """A new array like ``layout`` (shape, dtype and memory order), filled by
    ``kernel(out_chunk, *input_chunks)`` on flat chunks of ``_SQUASH_CHUNK`` elements.

    The arrays are walked in the memory order of ``layout`` (outermost axis first), so a transpose
    of a contiguous array, such as a channel-major conv output, is read without a copy; an input
    laid out differently is copied into that order first.
    """
    order = sorted(range(layout.ndim), key=lambda axis: -abs(layout.strides[axis]))
    out = np.empty(layout.transpose(order).shape, layout.dtype)
    flat_out = out.reshape(-1)
    flat_inputs = [array.transpose(order).reshape(-1) for array in inputs]
    for start in range(0, flat_out.size, _SQUASH_CHUNK):
        stop = start + _SQUASH_CHUNK
        kernel(flat_out[start:stop], *(flat[start:stop] for flat in flat_inputs))
    result: FloatArray = out.transpose(np.argsort(order))
    return result


def squash_forward(x: FloatArray) -> tuple[FloatArray, SquashCache]:
    """LeCun's squashing function ``1.7159 * tanh(2/3 * x)`` (LeCun et al. 1998, App. A).

    Args:
        x: inputs, any shape.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = squash_forward(np.array([-1.0, 0.0, 1.0]))
        >>> np.round(out, 4).tolist()                      # squash(+-1) = +-1, by design
        [-1.0, 0.0, 1.0]
        >>> round(float(squash_backward(np.ones(3), cache)[1]), 4)   # A * S at 0
        1.1439
    """
    x = check_float_array("x", x)
    # A tanh(S x) = 2A / (1 + exp(-2 S x)) - A: NumPy's float32 exp is faster than its tanh (the
    # docs' speed page), and the five passes run on a chunk that stays in the cache.
    # exp overflows to inf for very negative x, which gives -A, and underflows to 0 for very
    # positive x, which gives A: the right limits.
    scale = x.dtype.type(-2.0 * SQUASH_SLOPE)
    twice_amplitude = x.dtype.type(2.0 * SQUASH_AMPLITUDE)
    amplitude = x.dtype.type(SQUASH_AMPLITUDE)

    def squash(out: FloatArray, x: FloatArray) -> None:
        np.multiply(x, scale, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.divide(twice_amplitude, out, out=out)
        out -= amplitude

    with np.errstate(over="ignore", under="ignore"):
        out = _in_chunks(squash, x, x)
    return out, SquashCache(out=readonly_view(out))


def squash_backward(d_out: FloatArray, cache: SquashCache) -> FloatArray:
    """Gradient of ``squash_forward``: ``d_out * (S / A) * (A**2 - out**2)``.

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``squash_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, SquashCache, "squash_forward")
    out = cache.out
    d_out = _check_d_out(d_out, out.shape, out.dtype)
    squared_amplitude = out.dtype.type(SQUASH_AMPLITUDE**2)
    slope_over_amplitude = out.dtype.type(SQUASH_SLOPE / SQUASH_AMPLITUDE)

    def derivative_times_d_out(d_x: FloatArray, out: FloatArray, d_out: FloatArray) -> None:
        np.square(out, out=d_x)
        np.subtract(squared_amplitude, d_x, out=d_x)
        d_x *= slope_over_amplitude
        d_x *= d_out

    return _in_chunks(derivative_times_d_out, out, out, d_out)


@attrs.frozen
class EluCache:
    """Saved by ``elu_forward``: its output (any shape) and ``alpha``."""

    out: FloatArray
    alpha: float


def elu_forward(x: FloatArray, *, alpha: float = 1.0) -> tuple[FloatArray, EluCache]:
    """Exponential linear unit: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        x: inputs, any shape.
        alpha: the negative saturation value, a finite number > 0.

    Returns:
        ``out`` of the shape of ``x``, and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = elu_forward(np.array([0.0, 2.0]))
        >>> out.tolist(), elu_backward(np.ones(2), cache).tolist()
        ([0.0, 2.0], [1.0, 1.0])
    """
    x = check_float_array("x", x)
    alpha = check_positive_float("alpha", alpha)
    out = np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * alpha)
    return out, EluCache(out=readonly_view(out), alpha=alpha)


def elu_backward(d_out: FloatArray, cache: EluCache) -> FloatArray:
    """Gradient of ``elu_forward``: ``d_out`` where ``x > 0``, else ``d_out * (out + alpha)``.

    Args:
        d_out: upstream gradient, the shape of the input.
        cache: from ``elu_forward``.

    Returns:
        ``d_x``, the shape of the input.
    """
    cache = check_cache(cache, EluCache, "elu_forward")
    out = cache.out
    d_out = _check_d_out(d_out, out.shape, out.dtype)
    return np.where(out > 0, d_out, d_out * (out + cache.alpha))


# --------------------------------------------------------------------------------------------
# RBF output layer and flatten


@attrs.frozen
class RbfCache:
    """Saved by ``rbf_forward``: the inputs ``x`` (N, D) and the centers (K, D)."""

    x: FloatArray
    centers: FloatArray


def rbf_forward(x: FloatArray, centers: FloatArray) -> tuple[FloatArray, RbfCache]:
    """Euclidean RBF units: ``out[n, i] = sum_j (x[n, j] - centers[i, j])**2``.

    Args:
        x: inputs, shape (N, D).
        centers: one prototype per output unit, shape (K, D).

    Returns:
        ``out`` of shape (N, K) (squared distances), and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = rbf_forward(np.array([[1.0, 1.0]]), np.array([[1.0, 1.0], [-1.0, 1.0]]))
        >>> out.tolist()                                   # squared distances to the two centers
        [[0.0, 4.0]]
        >>> rbf_backward(np.ones_like(out), cache)[0].tolist()
        [[4.0, 0.0]]
    """
    x = check_float_array("x", x, layout="(N, D)")
    centers = check_float_array("centers", centers, layout="(K, D)")
    check_same_dtype("centers", centers, "x", x.dtype)
    if centers.shape[1] != x.shape[1]:
        raise ValueError(
            f"centers: expected {x.shape[1]} columns (x has shape {x.shape}), got centers of shape {centers.shape}"
        )
    difference = x[:, None, :] - centers[None, :, :]
    out = np.einsum("nkd,nkd->nk", difference, difference)
    return out, RbfCache(x=readonly_view(x), centers=readonly_view(centers))


def rbf_backward(d_out: FloatArray, cache: RbfCache) -> tuple[FloatArray, FloatArray]:
    """Gradients of ``rbf_forward``.

    Args:
        d_out: upstream gradient, shape (N, K).
        cache: from ``rbf_forward``.

    Returns:
        ``(d_x, d_centers)`` of shapes (N, D) and (K, D).
    """
    cache = check_cache(cache, RbfCache, "rbf_forward")
    x, centers = cache.x, cache.centers
    d_out = _check_d_out(d_out, (x.shape[0], centers.shape[0]), x.dtype)
    d_x = d_out.sum(axis=1, keepdims=True) * x
    d_x -= d_out @ centers
    d_x *= 2.0
    d_centers = d_out.sum(axis=0)[:, None] * centers
    d_centers -= d_out.T @ x
    d_centers *= 2.0
    return d_x, d_centers


@attrs.frozen
class FlattenCache:
    """Saved by ``flatten_forward``: the input's shape and dtype."""

    x_shape: tuple[int, ...]
    dtype: FloatDType


def flatten_forward(x: FloatArray) -> tuple[FloatArray, FlattenCache]:
    """Flattens all axes but the first, e.g. (N, C, H, W) -> (N, C * H * W).

    Args:
        x: inputs, shape (N, ...) with at least one axis.

    Returns:
        ``out`` of shape (N, prod(rest)), and the cache.

    Example:
        >>> import numpy as np
        >>> out, cache = flatten_forward(np.zeros((2, 3, 4, 5)))
        >>> out.shape, flatten_backward(out, cache).shape
        ((2, 60), (2, 3, 4, 5))
    """
    x = check_float_array("x", x)
    if x.ndim < 1:
        raise ValueError(f"x: expected an array of shape (N, ...) with at least one axis, got shape {x.shape}")
    out = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    return out, FlattenCache(x_shape=x.shape, dtype=x.dtype)


def flatten_backward(d_out: FloatArray, cache: FlattenCache) -> FloatArray:
    """Gradient of ``flatten_forward``: ``d_out`` reshaped to the input's shape.

    Args:
        d_out: upstream gradient, shape (N, prod(rest)).
        cache: from ``flatten_forward``.

    Returns:
        ``d_x`` of the input's shape.
    """
    cache = check_cache(cache, FlattenCache, "flatten_forward")
    n = cache.x_shape[0]
    d_out = _check_d_out(d_out, (n, int(np.prod(cache.x_shape[1:]))), cache.dtype)
    return d_out.reshape(cache.x_shape)
