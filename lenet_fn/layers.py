"""Layer objects for ``sequential``: one small frozen class per layer kind, holding only its
hyperparameters (no parameters and no state; the only arrays are the fixed ones that define a
layer, PartialConv2D's connection table and RBF's centers, kept as read-only copies).

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
    check_tree_key,
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
    """The initialiser's scheme (``params.InitScheme``), or a ValueError naming the layer."""
    if scheme not in ("lecun98", "he"):
        raise ValueError(f"{layer}: scheme: expected 'lecun98' or 'he', got {scheme!r}")


def _check_name(layer: object) -> None:
    """A layer's name keys its parameters: a tree key (no '.' or '/'), and not all digits, which
    are the keys of unnamed layers (their indices)."""
    name, kind = getattr(layer, "name"), type(layer).__name__
    if name is None:
        return
    try:
        check_tree_key("name", name)
    except TypeError:
        raise TypeError(f"{kind}: name: expected a string, got {type(name).__name__} {name!r}") from None
    except ValueError:
        raise ValueError(f"{kind}: name: expected a non-empty string without '.' or '/', got {name!r}") from None
    if name.isdigit():
        raise ValueError(f"{type(layer).__name__}: name: expected a name that is not a number (numbers key unnamed layers), got {name!r}")


def _keep(layer: object, field: str, check: Callable[..., Any], **limits: int) -> None:
    """Sets a hyperparameter of a frozen layer to its value checked and normalised by
    ``check(field, value, **limits)`` (once, when the layer is made); a bad value is a one-line
    error naming the layer's kind."""
    value = _checked(type(layer).__name__, lambda: check(field, getattr(layer, field), **limits))
    object.__setattr__(layer, field, value)


def _image_shape(shape: Shape, channels: int | None, meaning: str) -> tuple[int, int, int]:
    """``shape`` as (C, H, W), with ``channels`` maps if given; else a ValueError."""
    if len(shape) != 3:
        raise ValueError(f"expected an input of shape (C, H, W), got {shape}")
    if channels is not None and shape[0] != channels:
        raise ValueError(f"expected {channels} input {meaning}, got {shape[0]} (input shape {shape})")
    return shape[0], shape[1], shape[2]


def _plain(value: object) -> object:
    """A hyperparameter as written: ``(2, 2)`` as ``2``."""
    return value[0] if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1] else value


def _describe(layer: Any, shown: dict[str, object]) -> str:
    """``Kind(a, b, key=value, name=...)``: the positional hyperparameters, then the keywords that
    differ from their defaults, then the name."""
    parts = []
    for field in sorted(attrs.fields(type(layer)), key=lambda field: field.name == "name"):
        value = shown.get(field.name, _plain(getattr(layer, field.name)))
        if field.default is attrs.NOTHING:
            parts.append(str(value))
        elif _plain(getattr(layer, field.name)) != field.default:
            parts.append(f"{field.name}={value!r}")
    return f"{type(layer).__name__}({', '.join(parts)})"


def _windows_output(shape: Shape, channels: int | None, size: int) -> Shape:
    """The output shape of non-overlapping ``size`` x ``size`` windows over inputs of ``shape``."""
    maps, height, width = _image_shape(shape, channels, "maps")
    if size > min(height, width):
        raise ValueError(f"expected an input of at least {size}x{size}, got {height}x{width}")
    return (maps, height // size, width // size)


# --------------------------------------------------------------------------------------------
# layers without parameters


@attrs.frozen(repr=False)
class _Parameterless:
    """A layer without parameters (an activation, a pool, Flatten): the op and its rules come
    from the class, the hyperparameters from ``options``; the output has the input's shape
    unless ``output_shape`` says otherwise."""

    name: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _check_name(self)
        self.check_hyperparameters()

    def check_hyperparameters(self) -> None:
        """Checks the layer's own hyperparameters (none here)."""

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
class ReLU(_Parameterless):
    """``max(x, 0)``: ``ops.relu_forward``/``relu_backward``, ``curvature.relu_curvature``."""

    forward_op = ops.relu_forward
    backward_op = ops.relu_backward
    curvature_op = curvature.relu_curvature


@attrs.frozen(repr=False)
class LeakyReLU(_Parameterless):
    """``x`` or ``slope * x``: ``ops.leaky_relu_forward``/``leaky_relu_backward``, ``curvature.leaky_relu_curvature``."""

    slope: float = 0.01

    forward_op = ops.leaky_relu_forward
    backward_op = ops.leaky_relu_backward
    curvature_op = curvature.leaky_relu_curvature

    def check_hyperparameters(self) -> None:
        _keep(self, "slope", check_positive_float)

    def options(self) -> dict[str, Any]:
        return {"slope": self.slope}


@attrs.frozen(repr=False)
class Sigmoid(_Parameterless):
    """The logistic function: ``ops.sigmoid_forward``/``sigmoid_backward``, ``curvature.sigmoid_curvature``."""

    forward_op = ops.sigmoid_forward
    backward_op = ops.sigmoid_backward
    curvature_op = curvature.sigmoid_curvature


@attrs.frozen(repr=False)
class Tanh(_Parameterless):
    """The hyperbolic tangent: ``ops.tanh_forward``/``tanh_backward``, ``curvature.tanh_curvature``."""

    forward_op = ops.tanh_forward
    backward_op = ops.tanh_backward
    curvature_op = curvature.tanh_curvature


@attrs.frozen(repr=False)
class Squash(_Parameterless):
    """LeCun's ``1.7159 tanh(2x/3)``: ``ops.squash_forward``/``squash_backward``, ``curvature.squash_curvature``."""

    forward_op = ops.squash_forward
    backward_op = ops.squash_backward
    curvature_op = curvature.squash_curvature


@attrs.frozen(repr=False)
class ELU(_Parameterless):
    """``x`` or ``alpha (exp(x) - 1)``: ``ops.elu_forward``/``elu_backward``, ``curvature.elu_curvature``."""

    alpha: float = 1.0

    forward_op = ops.elu_forward
    backward_op = ops.elu_backward
    curvature_op = curvature.elu_curvature

    def check_hyperparameters(self) -> None:
        _keep(self, "alpha", check_positive_float)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@attrs.frozen(repr=False)
class Flatten(_Parameterless):
    """All axes but the batch axis into one: ``ops.flatten_forward``/``flatten_backward``, ``curvature.flatten_curvature``."""

    forward_op = ops.flatten_forward
    backward_op = ops.flatten_backward
    curvature_op = curvature.flatten_curvature

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@attrs.frozen(repr=False)
class _Pool(_Parameterless):
    """Non-overlapping ``size`` x ``size`` windows (stride = size; a remainder is dropped)."""

    size: int = 2

    def check_hyperparameters(self) -> None:
        _keep(self, "size", check_int, minimum=1)

    def options(self) -> dict[str, Any]:
        return {"size": self.size}

    def output_shape(self, shape: Shape) -> Shape:
        return _windows_output(shape, None, self.size)


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
        _keep(self, "in_features", check_int, minimum=1)
        _keep(self, "out_features", check_int, minimum=1)
        _check_scheme("Linear", self.scheme)
        _check_name(self)

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


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """A normalised stride or padding (stored as a pair once the layer is made)."""
    return value if isinstance(value, tuple) else (value, value)


def _conv_output(shape: Shape, channels: int, kernel: int, stride: tuple[int, int], padding: tuple[int, int]) -> tuple[int, int]:
    """The output size of a convolution of ``kernel`` over inputs of ``shape`` (C, H, W)."""
    _, height, width = _image_shape(shape, channels, "channels")
    padded = (height + 2 * padding[0], width + 2 * padding[1])
    if kernel > min(padded):
        raise ValueError(f"expected an input of at least {kernel}x{kernel} (padded), got {padded[0]}x{padded[1]}")
    return ops.conv2d_output_size((height, width), (kernel, kernel), stride, padding)


def _check_conv_hyperparameters(layer: Any) -> None:
    """Checks and normalises a convolution's kernel size (an int), stride and padding (pairs)."""
    kind = type(layer).__name__
    _keep(layer, "kernel_size", check_int, minimum=1)
    _keep(layer, "stride", check_int_pair, minimum=1)
    _keep(layer, "padding", check_int_pair, minimum=0)
    _check_scheme(kind, layer.scheme)
    _check_name(layer)


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
        _keep(self, "in_channels", check_int, minimum=1)
        _keep(self, "out_channels", check_int, minimum=1)
        _check_conv_hyperparameters(self)

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_conv2d(rng, self.in_channels, self.out_channels, self.kernel_size, scheme=self.scheme, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        return (self.out_channels, *_conv_output(shape, self.in_channels, self.kernel_size, _pair(self.stride), _pair(self.padding)))

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
        if isinstance(self.table, np.ndarray) and (self.table.ndim != 2 or 0 in self.table.shape):
            raise ValueError(f"PartialConv2D: table: expected a 2-D array (output maps, input maps), got shape {self.table.shape}")
        inputs = self.table.shape[1] if isinstance(self.table, np.ndarray) else 0
        _checked("PartialConv2D", lambda: ops.check_connection_table(self.table, out_channels=None, in_channels=inputs))
        _check_conv_hyperparameters(self)

    def __repr__(self) -> str:
        return _describe(self, {"table": f"table {self.table.shape[0]}x{self.table.shape[1]}"})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_partial_conv2d(rng, self.table, self.kernel_size, scheme=self.scheme, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        return (self.table.shape[0], *_conv_output(shape, self.table.shape[1], self.kernel_size, _pair(self.stride), _pair(self.padding)))

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
        _keep(self, "channels", check_int, minimum=1)
        _keep(self, "size", check_int, minimum=1)
        _check_name(self)

    def __repr__(self) -> str:
        return _describe(self, {})

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any:
        return init_subsample(rng, self.channels, size=self.size, dtype=dtype)

    def output_shape(self, shape: Shape) -> Shape:
        return _windows_output(shape, self.channels, self.size)

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
        centers = _checked("RBF", lambda: check_float_array("centers", self.centers, layout="(K, D)"))
        if 0 in centers.shape or not np.isfinite(centers).all():
            raise ValueError(f"RBF: centers: expected finite values in a (K, D) array with K, D >= 1, got shape {centers.shape}")
        _check_name(self)

    def __repr__(self) -> str:
        return _describe(self, {"centers": f"{self.centers.shape[0]}x{self.centers.shape[1]} centers"})

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
