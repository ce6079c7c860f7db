"""The op configurations that the gradient, dtype and purity tests share.

Each case builds its inputs in a given dtype (some deliberately non-contiguous), runs one forward
and returns the gradients of every input in order from one backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn import ops
from lenet_fn.arrays import FloatArray

Inputs = tuple[FloatArray, ...]


@attrs.frozen
class OpCase:
    """One op under one configuration.

    Attributes:
        op: the op's name (``conv2d``), for reports.
        label: the configuration, for test ids.
        make_inputs: builds the forward's array arguments from a generator and a dtype.
        forward: runs the forward on those inputs.
        backward: returns the gradients of all inputs, in order.
    """

    op: str
    label: str
    make_inputs: Callable[[np.random.Generator, npt.DTypeLike], Inputs]
    forward: Callable[..., tuple[FloatArray, Any]]
    backward: Callable[[FloatArray, Any], tuple[FloatArray, ...]]

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}"

    def output_of(self, inputs: Inputs, index: int) -> Callable[[FloatArray], FloatArray]:
        """The forward's output as a function of input ``index`` alone, the others held at ``inputs``."""

        def forward(point: FloatArray) -> FloatArray:
            arguments = list(inputs)
            arguments[index] = point
            return self.forward(*arguments)[0]

        return forward


def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: npt.DTypeLike) -> FloatArray:
    return rng.standard_normal(shape).astype(dtype)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], dtype: npt.DTypeLike) -> FloatArray:
    """Normal values pushed at least 0.05 away from 0, so differences never straddle a kink."""
    values = rng.standard_normal(shape)
    return (np.sign(values) * (np.abs(values) + 0.05)).astype(dtype)


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dtype: npt.DTypeLike) -> FloatArray:
    """Values at least 4 / size apart in a random order: max pooling never sees a near-tie."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) / size - 0.5) * 4.0).reshape(shape).astype(dtype)


def strided(array: FloatArray) -> FloatArray:
    """The same values in a non-contiguous array (every other element of a larger buffer)."""
    buffer = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
    buffer[..., ::2] = array
    view = buffer[..., ::2]
    assert not view.flags.c_contiguous
    return view


def transposed(array: FloatArray) -> FloatArray:
    """The same values in a Fortran-ordered (non-C-contiguous) array."""
    view = np.asfortranarray(array)
    assert array.ndim < 2 or not view.flags.c_contiguous
    return view


def _conv_case(label: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Any, padding: Any,
               layout: Callable[[FloatArray], FloatArray] = lambda a: a) -> OpCase:
    return OpCase(
        "conv2d",
        label,
        lambda rng, dtype: (
            layout(normal(rng, x_shape, dtype)),
            normal(rng, w_shape, dtype),
            normal(rng, w_shape[:1], dtype),
        ),
        lambda x, w, b: ops.conv2d_forward(x, w, b, stride=stride, padding=padding),
        lambda d, cache: ops.conv2d_backward(d, cache),
    )


def _partial_conv_case(label: str, x_shape: tuple[int, ...], table: npt.NDArray[np.bool_], kernel: int,
                       stride: Any, padding: Any, layout: Callable[[FloatArray], FloatArray] = lambda a: a) -> OpCase:
    return OpCase(
        "partial_conv2d",
        label,
        lambda rng, dtype: (
            layout(normal(rng, x_shape, dtype)),
            normal(rng, (int(table.sum()), kernel, kernel), dtype),
            normal(rng, table.shape[:1], dtype),
        ),
        lambda x, w, b: ops.partial_conv2d_forward(x, w, b, table=table, stride=stride, padding=padding),
        lambda d, cache: ops.partial_conv2d_backward(d, cache),
    )


SMALL_TABLE = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
"""Four output maps over three inputs, every pattern of LeNet's table in miniature."""


def _pool_case(op: str, label: str, shape: tuple[int, ...], size: int,
               layout: Callable[[FloatArray], FloatArray] = lambda a: a) -> OpCase:
    forward = ops.avg_pool2d_forward if op == "avg_pool2d" else ops.max_pool2d_forward
    backward = ops.avg_pool2d_backward if op == "avg_pool2d" else ops.max_pool2d_backward
    return OpCase(
        op,
        label,
        lambda rng, dtype: (layout(distinct(rng, shape, dtype)),),
        lambda x: forward(x, size=size),
        lambda d, cache: (backward(d, cache),),
    )


def _subsample_case(label: str, shape: tuple[int, ...], size: int,
                    layout: Callable[[FloatArray], FloatArray] = lambda a: a) -> OpCase:
    return OpCase(
        "subsample",
        label,
        lambda rng, dtype: (
            layout(normal(rng, shape, dtype)),
            normal(rng, shape[1:2], dtype),
            normal(rng, shape[1:2], dtype),
        ),
        lambda x, coeff, bias: ops.subsample_forward(x, coeff, bias, size=size),
        ops.subsample_backward,
    )


def _activation_cases(
    op: str,
    forward: Callable[[FloatArray], tuple[FloatArray, Any]],
    backward: Callable[[FloatArray, Any], FloatArray],
) -> list[OpCase]:
    shapes: list[tuple[str, tuple[int, ...], Callable[[FloatArray], FloatArray]]] = [
        ("2d", (4, 5), lambda a: a),
        ("4d", (2, 3, 4, 5), lambda a: a),
        ("batch1", (1, 7), lambda a: a),
        ("strided", (3, 6), strided),
    ]

    def inputs(
        shape: tuple[int, ...], layout: Callable[[FloatArray], FloatArray]
    ) -> Callable[[np.random.Generator, npt.DTypeLike], Inputs]:
        return lambda rng, dtype: (layout(away_from_zero(rng, shape, dtype) * 2),)

    return [
        OpCase(op, label, inputs(shape, layout), forward, lambda d, cache: (backward(d, cache),))
        for label, shape, layout in shapes
    ]


OP_CASES: list[OpCase] = [
    OpCase(
        "linear",
        "3x5->4",
        lambda rng, dtype: (normal(rng, (3, 5), dtype), normal(rng, (4, 5), dtype), normal(rng, (4,), dtype)),
        ops.linear_forward,
        lambda d, cache: ops.linear_backward(d, cache),
    ),
    OpCase(
        "linear",
        "batch1",
        lambda rng, dtype: (normal(rng, (1, 7), dtype), normal(rng, (2, 7), dtype), normal(rng, (2,), dtype)),
        ops.linear_forward,
        lambda d, cache: ops.linear_backward(d, cache),
    ),
    OpCase(
        "linear",
        "noncontiguous",
        lambda rng, dtype: (
            transposed(normal(rng, (6, 4), dtype)),
            strided(normal(rng, (3, 4), dtype)),
            normal(rng, (3,), dtype),
        ),
        ops.linear_forward,
        lambda d, cache: ops.linear_backward(d, cache),
    ),
    _conv_case("batch1-3x3", (1, 1, 5, 5), (2, 1, 3, 3), 1, 0),
    _conv_case("stride2-pad1", (2, 3, 7, 6), (4, 3, 3, 3), 2, 1),
    _conv_case("stride2x3-pad2-odd", (2, 2, 9, 11), (3, 2, 5, 4), (2, 3), 2),
    _conv_case("pad1x2-even-kernel", (3, 2, 6, 6), (2, 2, 2, 2), 1, (1, 2)),
    _conv_case("lenet-c1", (2, 1, 32, 32), (6, 1, 5, 5), 1, 0),
    _conv_case("noncontiguous", (2, 3, 6, 7), (2, 3, 3, 3), 1, 1, layout=strided),
    _partial_conv_case("small-table", (2, 3, 7, 7), SMALL_TABLE, 3, 1, 0),
    _partial_conv_case("stride2-pad1", (1, 3, 8, 9), SMALL_TABLE, 3, 2, 1, layout=strided),
    _pool_case("avg_pool2d", "size2", (2, 3, 6, 6), 2),
    _pool_case("avg_pool2d", "odd-remainder", (1, 2, 7, 5), 2),
    _pool_case("avg_pool2d", "size3", (2, 1, 9, 7), 3),
    _pool_case("avg_pool2d", "noncontiguous", (2, 2, 4, 6), 2, layout=strided),
    _pool_case("max_pool2d", "size2", (2, 3, 6, 6), 2),
    _pool_case("max_pool2d", "odd-remainder", (1, 2, 7, 5), 2),
    _pool_case("max_pool2d", "size3", (2, 1, 9, 7), 3),
    _pool_case("max_pool2d", "noncontiguous", (2, 2, 4, 6), 2, layout=strided),
    _subsample_case("size2", (2, 3, 6, 6), 2),
    _subsample_case("odd-remainder", (1, 4, 5, 7), 2),
    _subsample_case("size3", (2, 2, 9, 9), 3),
    _subsample_case("noncontiguous", (2, 2, 4, 6), 2, layout=strided),
    *_activation_cases("relu", ops.relu_forward, ops.relu_backward),
    *_activation_cases("leaky_relu", ops.leaky_relu_forward, ops.leaky_relu_backward),
    *_activation_cases("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward),
    *_activation_cases("tanh", ops.tanh_forward, ops.tanh_backward),
    *_activation_cases("squash", ops.squash_forward, ops.squash_backward),
    *_activation_cases("elu", ops.elu_forward, ops.elu_backward),
    OpCase(
        "leaky_relu",
        "slope0.2",
        lambda rng, dtype: (away_from_zero(rng, (3, 4), dtype),),
        lambda x: ops.leaky_relu_forward(x, slope=0.2),
        lambda d, cache: (ops.leaky_relu_backward(d, cache),),
    ),
    OpCase(
        "elu",
        "alpha0.5",
        lambda rng, dtype: (away_from_zero(rng, (3, 4), dtype),),
        lambda x: ops.elu_forward(x, alpha=0.5),
        lambda d, cache: (ops.elu_backward(d, cache),),
    ),
    OpCase(
        "rbf",
        "3x5-4centers",
        lambda rng, dtype: (normal(rng, (3, 5), dtype), normal(rng, (4, 5), dtype)),
        ops.rbf_forward,
        ops.rbf_backward,
    ),
    OpCase(
        "rbf",
        "lenet-f6",
        lambda rng, dtype: (normal(rng, (1, 84), dtype), np.sign(normal(rng, (10, 84), dtype))),
        ops.rbf_forward,
        ops.rbf_backward,
    ),
    OpCase(
        "rbf",
        "noncontiguous",
        lambda rng, dtype: (strided(normal(rng, (2, 6), dtype)), transposed(normal(rng, (3, 6), dtype))),
        ops.rbf_forward,
        ops.rbf_backward,
    ),
    OpCase(
        "flatten",
        "4d",
        lambda rng, dtype: (normal(rng, (2, 3, 4, 5), dtype),),
        ops.flatten_forward,
        lambda d, cache: (ops.flatten_backward(d, cache),),
    ),
    OpCase(
        "flatten",
        "noncontiguous",
        lambda rng, dtype: (strided(normal(rng, (1, 2, 3, 3), dtype)),),
        ops.flatten_forward,
        lambda d, cache: (ops.flatten_backward(d, cache),),
    ),
]
