"""Layer objects for ``sequential``: one small frozen class per layer kind, holding only its
hyperparameters (no arrays but RBF's fixed centers, no state).

Each layer names its op pair in ``lenet_fn.ops``, its curvature rule in ``lenet_fn.curvature`` and
its initialiser in ``lenet_fn.params``, and knows five things:

- ``init(rng, dtype)``: its parameters (a ``LinearParams``, ``Conv2dParams``, ... or ``()``);
- ``output_shape(shape)``: the shape of one output from the shape of one input (no batch axis),
  or a one-line ``ValueError`` saying what it expected;
- ``forward(params, x)`` -> ``(out, cache)``: the op's forward;
- ``backward(d_out, cache, input_grad=...)`` -> ``(d_x or None, grads)``: the op's backward;
- ``curvature(h_out, cache, input_grad=..., d_out=...)`` -> ``(h_x or None, curvatures)``.

Hyperparameters are checked when a layer is made: a bad one is a one-line ``ValueError`` or
``TypeError`` naming the layer (``Conv2D: kernel_size: expected an integer >= 1, got 0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn import curvature, ops
from lenet_fn.arrays import FloatArray, FloatDType, check_float_array, check_int, check_int_pair, check_positive_float
from lenet_fn.params import (
    Conv2dParams,
    InitScheme,
    LinearParams,
    PartialConv2dParams,
    SubsampleParams,
    init_conv2d,
    init_linear,
    init_partial_conv2d,
    init_subsample,
)

Shape = tuple[int, ...]
NO_PARAMS: tuple[()] = ()
"""The parameters of a layer that has none (an empty entry of the tree, with no leaves)."""


def _checked(layer: str, check: Callable[[], Any]) -> Any:
    """``check()``, with its error message prefixed by the layer's kind."""
    try:
        return check()
    except (TypeError, ValueError) as error:
        raise type(error)(f"{layer}: {error}") from None


def _check_scheme(layer: str, scheme: object) -> None:
    if scheme not in ("lecun98", "he"):
        raise ValueError(f"{layer}: scheme: expected 'lecun98' or 'he', got {scheme!r}")


def _image_shape(shape: Shape, channels: int | None, meaning: str) -> tuple[int, int, int]:
    """``shape`` as (C, H, W), with ``channels`` maps if given; else a ValueError."""
    if len(shape) != 3:
        raise ValueError(f"expected an input of shape (C, H, W), got {shape}")
    if channels is not None and shape[0] != channels:
        raise ValueError(f"expected {channels} input {meaning}, got {shape[0]} (input shape {shape})")
    return shape[0], shape[1], shape[2]


def _describe(layer: Any, shown: dict[str, object]) -> str:
    """``Kind(a, b, key=value)``: the positional hyperparameters, then the keywords that differ
    from their defaults (and the name)."""
    parts = []
    for field in attrs.fields(type(layer)):
        value = shown.get(field.name, getattr(layer, field.name))
        if field.default is attrs.NOTHING:
            parts.append(str(value))
        elif getattr(layer, field.name) != field.default:
            parts.append(f"{field.name}={value!r}")
    return f"{type(layer).__name__}({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# layers without parameters


@attrs.frozen(repr=False)
class _Elementwise:
    """An activation: the output has the input's shape; the rules come from the class."""

    name: str | None = attrs.field(default=None, kw_only=True)

    forward_op: ClassVar[Callable[..., tuple[FloatArray, Any]]]
    backward_op: ClassVar[Callable[[FloatArray, Any], FloatArray]]
    curvature_op: ClassVar[Callable[[FloatArray, Any], FloatArray]]

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the forward op."""
        return {}

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> tuple[()]:
        return NO_PARAMS

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def forward(self, params: object, x: FloatArray) -> tuple[FloatArray, Any]:
        return type(self).forward_op(x, **self.options())

    def backward(self, d_out: FloatArray, cache: Any, *, input_grad: bool = True) -> tuple[FloatArray | None, tuple[()]]:
        return type(self).backward_op(d_out, cache), NO_PARAMS

    def curvature(
        self, h_out: FloatArray, cache: Any, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, tuple[()]]:
        return type(self).curvature_op(h_out, cache), NO_PARAMS


@attrs.frozen(repr=False)
class ReLU(_Elementwise):
    """``max(x, 0)``: ``ops.relu_forward``/``relu_backward``, ``curvature.relu_curvature``."""

    forward_op = ops.relu_forward
    backward_op = ops.relu_backward
    curvature_op = curvature.relu_curvature


@attrs.frozen(repr=False)
class LeakyReLU(_Elementwise):
    """``x`` or ``slope * x``: ``ops.leaky_relu_forward``/``leaky_relu_backward``, ``curvature.leaky_relu_curvature``."""

    slope: float = 0.01

    forward_op = ops.leaky_relu_forward
    backward_op = ops.leaky_relu_backward
    curvature_op = curvature.leaky_relu_curvature

    def __attrs_post_init__(self) -> None:
        _checked("LeakyReLU", lambda: check_positive_float("slope", self.slope))

    def options(self) -> dict[str, Any]:
        return {"slope": self.slope}


@attrs.frozen(repr=False)
class Sigmoid(_Elementwise):
    """The logistic function: ``ops.sigmoid_forward``/``sigmoid_backward``, ``curvature.sigmoid_curvature``."""

    forward_op = ops.sigmoid_forward
    backward_op = ops.sigmoid_backward
    curvature_op = curvature.sigmoid_curvature


@attrs.frozen(repr=False)
class Tanh(_Elementwise):
    """The hyperbolic tangent: ``ops.tanh_forward``/``tanh_backward``, ``curvature.tanh_curvature``."""

    forward_op = ops.tanh_forward
    backward_op = ops.tanh_backward
    curvature_op = curvature.tanh_curvature


@attrs.frozen(repr=False)
class Squash(_Elementwise):
    """LeCun's ``1.7159 tanh(2x/3)``: ``ops.squash_forward``/``squash_backward``, ``curvature.squash_curvature``."""

    forward_op = ops.squash_forward
    backward_op = ops.squash_backward
    curvature_op = curvature.squash_curvature


@attrs.frozen(repr=False)
class ELU(_Elementwise):
    """``x`` or ``alpha (exp(x) - 1)``: ``ops.elu_forward``/``elu_backward``, ``curvature.elu_curvature``."""

    alpha: float = 1.0

    forward_op = ops.elu_forward
    backward_op = ops.elu_backward
    curvature_op = curvature.elu_curvature

    def __attrs_post_init__(self) -> None:
        _checked("ELU", lambda: check_positive_float("alpha", self.alpha))

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@attrs.frozen(repr=False)
class Flatten(_Elementwise):
    """All axes but the batch axis into one: ``ops.flatten_forward``/``flatten_backward``, ``curvature.flatten_curvature``."""

    forward_op = ops.flatten_forward
    backward_op = ops.flatten_backward
    curvature_op = curvature.flatten_curvature

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@attrs.frozen(repr=False)
class _Pool(_Elementwise):
    """Non-overlapping ``size`` x ``size`` windows (stride = size; a remainder is dropped)."""

    size: int = 2

    def __attrs_post_init__(self) -> None:
        _checked(type(self).__name__, lambda: check_int("size", self.size, minimum=1))

    def options(self) -> dict[str, Any]:
        return {"size": self.size}

    def output_shape(self, shape: Shape) -> Shape:
        channels, height, width = _image_shape(shape, None, "maps")
        if self.size > min(height, width):
            raise ValueError(f"expected an input of at least {self.size}x{self.size}, got {height}x{width}")
        return (channels, height // self.size, width // self.size)


@attrs.frozen(repr=False)
class AvgPool2D(_Pool):
    """Window means: ``ops.avg_pool2d_forward``/``avg_pool2d_backward``, ``curvature.avg_pool2d_curvature``."""

    forward_op = ops.avg_pool2d_forward
    backward_op = ops.avg_pool2d_backward
    curvature_op = curvature.avg_pool2d_curvature


@attrs.frozen(repr=False)
class MaxPool2D(_Pool):
    """Window maxima: ``ops.max_pool2d_forward``/``max_pool2d_backward``, ``curvature.max_pool2d_curvature``."""

    forward_op = ops.max_pool2d_forward
    backward_op = ops.max_pool2d_backward
    curvature_op = curvature.max_pool2d_curvature


# --------------------------------------------------------------------------------------------
# layers with parameters


@attrs.frozen(repr=False)
class Linear:
    """A dense layer ``x @ w.T + b``: ``ops.linear_forward``/``linear_backward``,
    ``curvature.linear_curvature``, ``params.init_linear`` (``scheme``)."""

    in_features: int
    out_features: int
    scheme: InitScheme = attrs.field(default="he", kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _checked("Linear", lambda: check_int("in_features", self.in_features, minimum=1))
        _checked("Linear", lambda: check_int("out_features", self.out_features, minimum=1))
        _check_scheme("Linear", self.scheme)

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_linear(rng, self.in_features, self.out_features, scheme=self.scheme, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(f"expected a flat input of {self.in_features} features, got shape {shape} (put a Flatten before it)")
        if shape[0] != self.in_features:
            raise ValueError(f"expected {self.in_features} input features, got {shape[0]}")
        return (self.out_features,)

    def forward(self, params: Any, x: FloatArray) -> tuple[FloatArray, ops.LinearCache]:
        return ops.linear_forward(x, params.w, params.b)

    def backward(self, d_out: FloatArray, cache: ops.LinearCache, *, input_grad: bool = True) -> tuple[FloatArray | None, Any]:
        d_x, d_w, d_b = ops.linear_backward(d_out, cache, input_grad=input_grad)
        return d_x, LinearParams(w=d_w, b=d_b)

    def curvature(
        self, h_out: FloatArray, cache: ops.LinearCache, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, Any]:
        h_x, h_w, h_b = curvature.linear_curvature(h_out, cache, input_grad=input_grad)
        return h_x, LinearParams(w=h_w, b=h_b)


def _conv_output(shape: Shape, channels: int, kernel: int, stride: tuple[int, int], padding: tuple[int, int]) -> tuple[int, int]:
    """The output size of a convolution of ``kernel`` over inputs of ``shape`` (C, H, W)."""
    _, height, width = _image_shape(shape, channels, "channels")
    padded = (height + 2 * padding[0], width + 2 * padding[1])
    if kernel > min(padded):
        raise ValueError(f"expected an input of at least {kernel}x{kernel} (padded), got {padded[0]}x{padded[1]}")
    return ops.conv2d_output_size((height, width), (kernel, kernel), stride, padding)


def _check_conv_hyperparameters(layer: str, kernel_size: object, stride: object, padding: object, scheme: object) -> None:
    _checked(layer, lambda: check_int("kernel_size", kernel_size, minimum=1))
    _checked(layer, lambda: check_int_pair("stride", stride, minimum=1))
    _checked(layer, lambda: check_int_pair("padding", padding, minimum=0))
    _check_scheme(layer, scheme)


@attrs.frozen(repr=False)
class Conv2D:
    """A 2-D convolution (cross-correlation) with square kernels: ``ops.conv2d_forward``/
    ``conv2d_backward``, ``curvature.conv2d_curvature``, ``params.init_conv2d`` (``scheme``)."""

    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    scheme: InitScheme = attrs.field(default="he", kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _checked("Conv2D", lambda: check_int("in_channels", self.in_channels, minimum=1))
        _checked("Conv2D", lambda: check_int("out_channels", self.out_channels, minimum=1))
        _check_conv_hyperparameters("Conv2D", self.kernel_size, self.stride, self.padding, self.scheme)

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_conv2d(rng, self.in_channels, self.out_channels, self.kernel_size, scheme=self.scheme, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        stride, padding = check_int_pair("stride", self.stride, minimum=1), check_int_pair("padding", self.padding, minimum=0)
        return (self.out_channels, *_conv_output(shape, self.in_channels, self.kernel_size, stride, padding))

    def forward(self, params: Any, x: FloatArray) -> tuple[FloatArray, ops.Conv2dCache]:
        return ops.conv2d_forward(x, params.w, params.b, stride=self.stride, padding=self.padding)

    def backward(self, d_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: bool = True) -> tuple[FloatArray | None, Any]:
        d_x, d_w, d_b = ops.conv2d_backward(d_out, cache, input_grad=input_grad)
        return d_x, Conv2dParams(w=d_w, b=d_b)

    def curvature(
        self, h_out: FloatArray, cache: ops.Conv2dCache, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, Any]:
        h_x, h_w, h_b = curvature.conv2d_curvature(h_out, cache, input_grad=input_grad)
        return h_x, Conv2dParams(w=h_w, b=h_b)


def _read_only_copy(value: object) -> Any:
    """attrs converter: a read-only copy of an array hyperparameter (checked by the layer); the
    caller's array is neither frozen nor shared."""
    if not isinstance(value, np.ndarray):
        return value
    array = value.copy()
    array.flags.writeable = False
    return array


@attrs.frozen(repr=False, eq=False)
class PartialConv2D:
    """A convolution in which output map ``k`` sees only the input maps ``table[k]`` (LeNet-5's
    C3): ``ops.partial_conv2d_forward``/``partial_conv2d_backward``,
    ``curvature.partial_conv2d_curvature``, ``params.init_partial_conv2d`` (``scheme``)."""

    table: npt.NDArray[np.bool_] = attrs.field(converter=_read_only_copy)
    kernel_size: int = 5
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    scheme: InitScheme = attrs.field(default="lecun98", kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        inputs = self.table.shape[-1] if isinstance(self.table, np.ndarray) and self.table.ndim == 2 else -1
        _checked("PartialConv2D", lambda: ops.check_connection_table(self.table, out_channels=None, in_channels=inputs))
        _check_conv_hyperparameters("PartialConv2D", self.kernel_size, self.stride, self.padding, self.scheme)

    def __repr__(self) -> str:
        return _describe(self, {"table": f"table {self.table.shape[0]}x{self.table.shape[1]}"})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_partial_conv2d(rng, self.table, self.kernel_size, scheme=self.scheme, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        stride, padding = check_int_pair("stride", self.stride, minimum=1), check_int_pair("padding", self.padding, minimum=0)
        return (self.table.shape[0], *_conv_output(shape, self.table.shape[1], self.kernel_size, stride, padding))

    def forward(self, params: Any, x: FloatArray) -> tuple[FloatArray, ops.PartialConv2dCache]:
        return ops.partial_conv2d_forward(x, params.w, params.b, table=self.table, stride=self.stride, padding=self.padding)

    def backward(self, d_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: bool = True) -> tuple[FloatArray | None, Any]:
        d_x, d_w, d_b = ops.partial_conv2d_backward(d_out, cache, input_grad=input_grad)
        return d_x, PartialConv2dParams(w=d_w, b=d_b)

    def curvature(
        self, h_out: FloatArray, cache: ops.PartialConv2dCache, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, Any]:
        h_x, h_w, h_b = curvature.partial_conv2d_curvature(h_out, cache, input_grad=input_grad)
        return h_x, PartialConv2dParams(w=h_w, b=h_b)


@attrs.frozen(repr=False)
class Subsampling:
    """LeNet's trainable subsampling, ``coeff[c] * sum(window) + bias[c]`` over ``size`` x ``size``
    windows: ``ops.subsample_forward``/``subsample_backward``, ``curvature.subsample_curvature``,
    ``params.init_subsample`` (the paper's +-2.4 / fan-in)."""

    channels: int
    size: int = 2
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _checked("Subsampling", lambda: check_int("channels", self.channels, minimum=1))
        _checked("Subsampling", lambda: check_int("size", self.size, minimum=1))

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_subsample(rng, self.channels, size=self.size, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        channels, height, width = _image_shape(shape, self.channels, "maps")
        if self.size > min(height, width):
            raise ValueError(f"expected an input of at least {self.size}x{self.size}, got {height}x{width}")
        return (channels, height // self.size, width // self.size)

    def forward(self, params: Any, x: FloatArray) -> tuple[FloatArray, ops.SubsampleCache]:
        return ops.subsample_forward(x, params.coeff, params.bias, size=self.size)

    def backward(self, d_out: FloatArray, cache: ops.SubsampleCache, *, input_grad: bool = True) -> tuple[FloatArray | None, Any]:
        d_x, d_coeff, d_bias = ops.subsample_backward(d_out, cache)
        return d_x, SubsampleParams(coeff=d_coeff, bias=d_bias)

    def curvature(
        self, h_out: FloatArray, cache: ops.SubsampleCache, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, Any]:
        h_x, h_coeff, h_bias = curvature.subsample_curvature(h_out, cache)
        return h_x, SubsampleParams(coeff=h_coeff, bias=h_bias)


@attrs.frozen(repr=False, eq=False)
class RBF:
    """Euclidean RBF units against fixed ``centers`` (K, D), ``sum_j (x_j - c_ij)**2``: LeNet-5's
    output layer against its digit bitmaps. ``ops.rbf_forward``/``rbf_backward``,
    ``curvature.rbf_curvature``; the centers are not trained (the layer has no parameters)."""

    centers: FloatArray = attrs.field(converter=_read_only_copy)
    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _checked("RBF", lambda: check_float_array("centers", self.centers, layout="(K, D)"))

    def __repr__(self) -> str:
        return f"RBF({self.centers.shape[0]}x{self.centers.shape[1]} centers)"

    def centers_as(self, dtype: FloatDType) -> FloatArray:
        """The centers in ``dtype`` (the input's)."""
        return self.centers if dtype == self.centers.dtype else self.centers.astype(dtype)

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> tuple[()]:
        return NO_PARAMS

    def output_shape(self, shape: Shape) -> Shape:
        if shape != (self.centers.shape[1],):
            raise ValueError(f"expected a flat input of {self.centers.shape[1]} features (the centers' width), got shape {shape}")
        return (self.centers.shape[0],)

    def forward(self, params: object, x: FloatArray) -> tuple[FloatArray, ops.RbfCache]:
        return ops.rbf_forward(x, self.centers_as(x.dtype))

    def backward(self, d_out: FloatArray, cache: ops.RbfCache, *, input_grad: bool = True) -> tuple[FloatArray | None, tuple[()]]:
        return ops.rbf_backward(d_out, cache)[0], NO_PARAMS

    def curvature(
        self, h_out: FloatArray, cache: ops.RbfCache, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, tuple[()]]:
        return curvature.rbf_curvature(h_out, cache, d_out=d_out)[0], NO_PARAMS


Layer = ReLU | LeakyReLU | Sigmoid | Tanh | Squash | ELU | Flatten | AvgPool2D | MaxPool2D | Linear | Conv2D | PartialConv2D | Subsampling | RBF
"""Every layer kind ``sequential`` takes."""
