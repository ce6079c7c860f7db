"""Immutable parameter trees, the utilities that walk them, and fan-in initialisers.

A parameter tree is a frozen attrs class whose fields are float arrays (the leaves), other
parameter classes, or tuples of them. Leaves are read-only: a writable array given to a
constructor is copied first, so later writes to it never reach the parameters; an array that is
already read-only is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FLOAT_DTYPES, FloatArray, check_float_dtype, check_int, check_rng

Tree = TypeVar("Tree")


def _is_frozen(array: npt.NDArray[Any]) -> bool:
    """True when neither ``array`` nor any array it views can be written."""
    node: object = array
    while isinstance(node, np.ndarray):
        if node.flags.writeable:
            return False
        node = node.base
    return node is None


def _readonly_leaf(value: FloatArray) -> FloatArray:
    """attrs converter: a frozen float array (others are copied; the caller's array is never frozen)."""
    if not isinstance(value, np.ndarray) or _is_frozen(value):
        return value
    return frozen(value.copy())


def _check_leaf(instance: object, attribute: attrs.Attribute[FloatArray], value: object) -> None:
    """attrs validator: leaves are float32 or float64 ndarrays."""
    where = f"{type(instance).__name__}.{attribute.name}"
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: expected a numpy.ndarray of float32 or float64, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: expected dtype float32 or float64, got {value.dtype}")


def frozen(array: FloatArray) -> FloatArray:
    """A read-only view of an array the caller has just created and shares with no one; no copy.

    The array itself is made read-only too, so the flag of the view cannot be turned back on.
    Used where a new leaf is computed (an update step): building the new tree does not copy it.
    """
    array.flags.writeable = False
    view = array.view()
    view.flags.writeable = False
    return view


@attrs.frozen(eq=False)
class LinearParams:
    """A fully connected layer: weights ``w`` (out, in) and biases ``b`` (out,)."""

    w: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)
    b: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)


@attrs.frozen(eq=False)
class Conv2dParams:
    """A convolution: weights ``w`` (C_out, C_in, kh, kw) and biases ``b`` (C_out,)."""

    w: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)
    b: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)


@attrs.frozen(eq=False)
class SubsampleParams:
    """LeNet subsampling: one coefficient ``coeff`` (C,) and one bias ``bias`` (C,) per map."""

    coeff: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)
    bias: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)


@attrs.frozen(eq=False)
class MLPParams:
    """A multilayer perceptron: its dense layers, input side first."""

    layers: tuple[LinearParams, ...]


# --------------------------------------------------------------------------------------------
# tree utilities


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _children(node: object, path: str) -> list[tuple[str, object]]:
    """The named children of an inner node (attrs instance or tuple)."""
    node_class = type(node)
    if attrs.has(node_class):
        return [(field.name, getattr(node, field.name)) for field in attrs.fields(node_class)]
    if isinstance(node, tuple):
        return [(str(index), child) for index, child in enumerate(node)]
    raise TypeError(
        f"{path or 'tree'}: expected an array, an attrs parameter class or a tuple, got {type(node).__name__}"
    )


def _check_same_structure(path: str, node: object, others: tuple[object, ...]) -> None:
    for other in others:
        if isinstance(node, np.ndarray):
            if not isinstance(other, np.ndarray):
                raise TypeError(f"{path}: expected an array, got {type(other).__name__}")
        elif type(other) is not type(node):
            raise TypeError(f"{path or 'tree'}: expected {type(node).__name__}, got {type(other).__name__}")
        elif isinstance(node, tuple) and len(node) != len(other):  # type: ignore[arg-type]
            raise ValueError(f"{path or 'tree'}: expected a tuple of {len(node)}, got {len(other)}")  # type: ignore[arg-type]


def _rebuild(node: Any, values: dict[str, object]) -> object:
    """A copy of the attrs instance ``node`` with its fields replaced by ``values``."""
    return attrs.evolve(node, **values)


def tree_map(fn: Callable[..., FloatArray], tree: Tree, *rest: object) -> Tree:
    """Applies ``fn`` leaf by leaf: ``fn(leaf, *matching leaves of rest)``; returns a tree like ``tree``.

    Args:
        fn: maps one leaf of ``tree`` and the matching leaves of ``rest`` to a new leaf.
        tree: a parameter tree.
        *rest: trees of the same structure (same classes, same tuple lengths).

    Returns:
        A new tree of the same classes; ``tree`` and ``rest`` are untouched.
    """

    def visit(path: str, node: object, others: tuple[object, ...]) -> object:
        _check_same_structure(path, node, others)
        if isinstance(node, np.ndarray):
            return fn(node, *others)
        children = _children(node, path)
        other_children = [[child for _, child in _children(other, path)] for other in others]
        values = {
            name: visit(_join(path, name), child, tuple(siblings[index] for siblings in other_children))
            for index, (name, child) in enumerate(children)
        }
        if isinstance(node, tuple):
            return tuple(values.values())
        return _rebuild(node, values)

    return visit("", tree, tuple(rest))  # type: ignore[return-value]


def tree_flatten_with_paths(tree: object) -> dict[str, FloatArray]:
    """The leaves of ``tree`` keyed by their dotted paths (``"c1.w"``, ``"layers.0.b"``), in field order.

    Args:
        tree: a parameter tree.

    Returns:
        An insertion-ordered mapping from path to leaf (the leaves themselves, not copies).
    """
    flat: dict[str, FloatArray] = {}

    def visit(path: str, node: object) -> None:
        if isinstance(node, np.ndarray):
            flat[path] = node
            return
        for name, child in _children(node, path):
            visit(_join(path, name), child)

    visit("", tree)
    return flat


def tree_unflatten_with_paths(template: Tree, flat: Mapping[str, npt.NDArray[Any]]) -> Tree:
    """Inverse of ``tree_flatten_with_paths``: a tree shaped like ``template`` with the leaves of ``flat``.

    Every path of ``template`` must be present with the same shape, and no other path.

    Args:
        template: a tree giving the structure and the expected leaf shapes.
        flat: leaves keyed by dotted path, float32 or float64.

    Returns:
        A new tree holding (read-only copies of) the arrays in ``flat``.
    """
    expected = tree_flatten_with_paths(template)
    missing = [path for path in expected if path not in flat]
    unexpected = [path for path in flat if path not in expected]
    if missing or unexpected:
        raise ValueError(
            f"parameters: expected the keys {sorted(expected)}, missing {missing}, unexpected {unexpected}"
        )
    for path, array in flat.items():
        if array.shape != expected[path].shape:
            raise ValueError(f"{path}: expected shape {expected[path].shape}, got {array.shape}")
        if array.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{path}: expected dtype float32 or float64, got {array.dtype}")
    paths = iter(expected)
    return tree_map(lambda _: flat[next(paths)], template)


def tree_leaves(tree: object) -> list[FloatArray]:
    """The leaves of ``tree`` in field order (depth first)."""
    return list(tree_flatten_with_paths(tree).values())


def tree_zeros_like(tree: Tree) -> Tree:
    """A tree of the same structure with zero leaves of the same shapes and dtypes."""
    return tree_map(lambda array: frozen(np.zeros_like(array)), tree)


def tree_size(tree: object) -> int:
    """The number of scalars in all leaves of ``tree`` (the trainable parameter count)."""
    return sum(int(array.size) for array in tree_leaves(tree))


# --------------------------------------------------------------------------------------------
# initialisers

InitScheme = Literal["lecun98", "he"]
"""``"lecun98"``: every weight and bias uniform in +-2.4 / fan_in (LeCun et al. 1998, App. A).
``"he"``: weights uniform in +-sqrt(6 / fan_in) (He et al. 2015, for ReLU networks), biases zero."""


def uniform_fan_in(
    rng: np.random.Generator, shape: tuple[int, ...], *, fan_in: int, scale: float = 2.4, dtype: npt.DTypeLike = np.float32
) -> FloatArray:
    """Uniform in ``[-scale / fan_in, scale / fan_in]`` (the 1998 paper's rule with ``scale = 2.4``).

    Args:
        rng: the random generator.
        shape: the array's shape.
        fan_in: the number of inputs of each unit.
        scale: the numerator of the bound.
        dtype: float32 or float64.

    Returns:
        A new array of ``shape``.
    """
    rng = check_rng(rng)
    fan_in = check_int("fan_in", fan_in, minimum=1)
    bound = scale / fan_in
    return rng.uniform(-bound, bound, size=shape).astype(check_float_dtype("dtype", dtype))


def _init_weights_and_biases(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, scheme: InitScheme, dtype: npt.DTypeLike
) -> tuple[FloatArray, FloatArray]:
    rng = check_rng(rng)
    float_dtype = check_float_dtype("dtype", dtype)
    if scheme == "lecun98":
        return (
            uniform_fan_in(rng, shape, fan_in=fan_in, dtype=float_dtype),
            uniform_fan_in(rng, shape[:1], fan_in=fan_in, dtype=float_dtype),
        )
    if scheme == "he":
        bound = np.sqrt(6.0 / fan_in)
        weights = rng.uniform(-bound, bound, size=shape).astype(float_dtype)
        return weights, np.zeros(shape[0], dtype=float_dtype)
    raise ValueError(f"scheme: expected 'lecun98' or 'he', got {scheme!r}")


def init_linear(
    rng: np.random.Generator,
    in_features: int,
    out_features: int,
    *,
    scheme: InitScheme = "he",
    dtype: npt.DTypeLike = np.float32,
) -> LinearParams:
    """A new dense layer, fan-in = ``in_features``.

    Args:
        rng: the random generator.
        in_features: inputs per unit.
        out_features: units.
        scheme: ``"lecun98"`` or ``"he"`` (see ``InitScheme``).
        dtype: float32 or float64.

    Returns:
        ``LinearParams`` with ``w`` (out_features, in_features) and ``b`` (out_features,).
    """
    in_features = check_int("in_features", in_features, minimum=1)
    out_features = check_int("out_features", out_features, minimum=1)
    w, b = _init_weights_and_biases(rng, (out_features, in_features), in_features, scheme, dtype)
    return LinearParams(w=w, b=b)


def init_conv2d(
    rng: np.random.Generator,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    scheme: InitScheme = "he",
    dtype: npt.DTypeLike = np.float32,
) -> Conv2dParams:
    """A new convolution with square kernels, fan-in = ``in_channels * kernel_size**2``.

    Args:
        rng: the random generator.
        in_channels: input maps.
        out_channels: output maps.
        kernel_size: the kernel's side.
        scheme: ``"lecun98"`` or ``"he"`` (see ``InitScheme``).
        dtype: float32 or float64.

    Returns:
        ``Conv2dParams`` with ``w`` (out_channels, in_channels, k, k) and ``b`` (out_channels,).
    """
    in_channels = check_int("in_channels", in_channels, minimum=1)
    out_channels = check_int("out_channels", out_channels, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    shape = (out_channels, in_channels, kernel_size, kernel_size)
    w, b = _init_weights_and_biases(rng, shape, in_channels * kernel_size**2, scheme, dtype)
    return Conv2dParams(w=w, b=b)


def init_subsample(
    rng: np.random.Generator, channels: int, *, size: int = 2, dtype: npt.DTypeLike = np.float32
) -> SubsampleParams:
    """New LeNet subsampling parameters, uniform in +-2.4 / (size * size) (each unit sums size**2 inputs).

    Args:
        rng: the random generator.
        channels: maps.
        size: the window's side.
        dtype: float32 or float64.

    Returns:
        ``SubsampleParams`` with ``coeff`` (channels,) and ``bias`` (channels,).
    """
    channels = check_int("channels", channels, minimum=1)
    size = check_int("size", size, minimum=1)
    coeff = uniform_fan_in(rng, (channels,), fan_in=size * size, dtype=dtype)
    bias = uniform_fan_in(rng, (channels,), fan_in=size * size, dtype=dtype)
    return SubsampleParams(coeff=coeff, bias=bias)
