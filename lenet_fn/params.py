"""Immutable parameter trees, the utilities that walk them, and fan-in initialisers.

A parameter tree is made of float arrays (the leaves) held in frozen attrs classes, tuples,
lists, dicts (string keys) and NamedTuples, nested in any way. A leaf's path, the key a
checkpoint stores it under, joins the names on the way with dots: an attrs field or a NamedTuple
field by its name (``c1.w``), a tuple or list element by its index (``layers.0.b``), a dict entry
by its key (``conv.w``). Dict entries are visited in sorted key order, so two dicts with the same
keys have the same structure. The library's own classes make their leaves read-only: a writable
array given to a constructor is copied first, so later writes to it never reach the parameters;
an array that is already read-only is kept as it is. Every tree the library builds (an update
step, a checkpoint's parameters) has read-only leaves, whatever its containers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
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
class _WeightsAndBiases:
    """Two leaves, ``w`` and ``b``; the subclasses say what shapes they have."""

    w: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)
    b: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)


@attrs.frozen(eq=False)
class LinearParams(_WeightsAndBiases):
    """A fully connected layer: weights ``w`` (out, in) and biases ``b`` (out,)."""


@attrs.frozen(eq=False)
class Conv2dParams(_WeightsAndBiases):
    """A convolution: weights ``w`` (C_out, C_in, kh, kw) and biases ``b`` (C_out,)."""


@attrs.frozen(eq=False)
class PartialConv2dParams(_WeightsAndBiases):
    """A partially connected convolution: one kernel per connection of a fixed table, ``w``
    (connections, kh, kw) in row-major order of the table, and biases ``b`` (C_out,)."""


@attrs.frozen(eq=False)
class SubsampleParams:
    """LeNet subsampling: one coefficient ``coeff`` (C,) and one bias ``bias`` (C,) per map."""

    coeff: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)
    bias: FloatArray = attrs.field(converter=_readonly_leaf, validator=_check_leaf)


@attrs.frozen(eq=False)
class LeNet5Params:
    """The paper's LeNet-5: C1 conv, S2 subsampling, C3 partial conv, S4 subsampling, C5 conv, F6 dense.

    The RBF output centers are fixed, so they are not part of this (trainable) tree.
    """

    c1: Conv2dParams
    s2: SubsampleParams
    c3: PartialConv2dParams
    s4: SubsampleParams
    c5: Conv2dParams
    f6: LinearParams


@attrs.frozen(eq=False)
class LeNet5ReluParams:
    """The common modern LeNet-5: three convolutions, two dense layers (F6 and the 10-way output)."""

    c1: Conv2dParams
    c3: Conv2dParams
    c5: Conv2dParams
    f6: LinearParams
    output: LinearParams


@attrs.frozen(eq=False)
class MLPParams:
    """A multilayer perceptron: its dense layers, input side first."""

    layers: tuple[LinearParams, ...]


# --------------------------------------------------------------------------------------------
# tree utilities


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_FIELD_NAMES: dict[type[Any], tuple[str, ...] | None] = {}


def _field_names(node_class: type[Any]) -> tuple[str, ...] | None:
    """The field names of an attrs class, or ``None`` for any other class (memoised per class)."""
    if node_class not in _FIELD_NAMES:
        names = tuple(field.name for field in attrs.fields(node_class)) if attrs.has(node_class) else None
        _FIELD_NAMES[node_class] = names
    return _FIELD_NAMES[node_class]


# A structure node is None for a leaf, or (class, labels, child structures): the labels are the
# field names of an attrs class or a NamedTuple, the sorted keys of a dict, or the length of a
# tuple or a list.
_Structure = tuple[Any, Any, tuple[Any, ...]] | None


@attrs.frozen
class TreeDef:
    """The structure of a tree without its leaves: equal TreeDefs mean trees of the same shape."""

    structure: _Structure

    @property
    def num_leaves(self) -> int:
        def count(node: _Structure) -> int:
            return 1 if node is None else sum(count(child) for child in node[2])

        return count(self.structure)


def _is_namedtuple(node: object) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def check_tree_key(path: str, key: object) -> str:
    """A dict key of a parameter tree: a non-empty string without '.' or '/' (the path separators)."""
    if not isinstance(key, str):
        raise TypeError(f"{path or 'tree'}: expected dict keys that are strings, got {type(key).__name__} {key!r}")
    if not key or "." in key or "/" in key:
        raise ValueError(f"{path or 'tree'}: expected dict keys that are non-empty strings without '.' or '/', got {key!r}")
    return key


def _children(node: object, path: str) -> tuple[Any, Any, list[object]] | None:
    """``(class, labels, children)`` of a container node, or ``None`` for anything else."""
    node_class: type[Any] = type(node)
    names = _field_names(node_class)
    if names is not None:
        return node_class, names, [getattr(node, name) for name in names]
    if _is_namedtuple(node):
        fields = tuple(node_class._fields)
        return node_class, fields, list(node)  # type: ignore[call-overload]
    if isinstance(node, (tuple, list)) and node_class in (tuple, list):  # a subclass would come back as the plain class
        return node_class, len(node), list(node)
    if isinstance(node, dict) and node_class is dict:
        keys = tuple(sorted(check_tree_key(path, key) for key in node))
        return dict, keys, [node[key] for key in keys]
    return None


def _labels(kind: type[Any], labels: Any) -> list[str]:
    """The path component of each child of a node of ``kind`` (its field names or keys, or the
    indices up to a tuple's or list's length)."""
    return [str(index) for index in range(labels)] if kind in (tuple, list) else list(labels)


def _flatten(node: object, path: str, leaves: list[FloatArray]) -> _Structure:
    if isinstance(node, np.ndarray):
        leaves.append(node)
        return None
    container = _children(node, path)
    if container is None:
        raise TypeError(
            f"{path or 'tree'}: expected an array, an attrs parameter class, a tuple, a list, a dict or a NamedTuple, "
            f"got {type(node).__name__}"
        )
    kind, labels, children = container
    names = _labels(kind, labels)
    return (kind, labels, tuple(_flatten(child, _join(path, name), leaves) for name, child in zip(names, children)))


def _unflatten(node: _Structure, leaves: Iterator[FloatArray]) -> object:
    if node is None:
        return next(leaves)
    kind, labels, children = node
    values = [_unflatten(child, leaves) for child in children]
    if kind in (tuple, list):
        return kind(values)
    if kind is dict:
        return dict(zip(labels, values))
    if issubclass(kind, tuple):  # a NamedTuple
        return kind(*values)
    return kind(**dict(zip(labels, values)))


def _class_name(kind: type[Any], other: type[Any]) -> str:
    """``kind``'s name, qualified by its module where ``other`` has the same short name."""
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__name__ == other.__name__ else kind.__name__


def _describe_difference(expected: _Structure, received: _Structure, path: str) -> Exception:
    """The error for the first place where two structures differ; ``path`` names the place."""
    where = path or "tree"
    if expected is None or received is None:
        kinds = ("an array" if node is None else node[0].__name__ for node in (expected, received))
        return TypeError(f"{where}: expected {next(kinds)}, got {next(kinds)}")
    if expected[0] is not received[0]:
        return TypeError(f"{where}: expected {_class_name(expected[0], received[0])}, got {_class_name(received[0], expected[0])}")
    if expected[1] != received[1]:
        what = f"a {expected[0].__name__} of" if expected[0] in (tuple, list) else "the keys" if expected[0] is dict else "the fields"
        return ValueError(f"{where}: expected {what} {expected[1]}, got {received[1]}")
    for name, child, other in zip(_labels(expected[0], expected[1]), expected[2], received[2]):
        if child != other:
            return _describe_difference(child, other, _join(path, name))
    return ValueError(f"{where}: the structures differ")  # pragma: no cover - equal structures never get here


def tree_flatten(tree: object) -> tuple[list[FloatArray], TreeDef]:
    """The leaves of ``tree`` (depth first, in field order) and its structure.

    Args:
        tree: a parameter tree.

    Returns:
        ``(leaves, treedef)``; ``tree_unflatten(treedef, leaves)`` rebuilds the tree.
    """
    leaves: list[FloatArray] = []
    structure = _flatten(tree, "", leaves)
    return leaves, TreeDef(structure)


def tree_flatten_like(tree: object, treedef: TreeDef, *, name: str = "tree") -> list[FloatArray]:
    """The leaves of ``tree``, which must have the structure ``treedef``; else a one-line error.

    Args:
        tree: a parameter tree.
        treedef: the structure it must have.
        name: what the tree is called in the error message (``grads``, ``velocity``).

    Returns:
        The leaves, in ``tree_flatten`` order.
    """
    leaves, received = tree_flatten(tree)
    if received != treedef:
        raise _describe_difference(treedef.structure, received.structure, name)
    return leaves


def tree_unflatten(treedef: TreeDef, leaves: Iterable[FloatArray]) -> Any:
    """The tree of structure ``treedef`` holding ``leaves`` (in ``tree_flatten`` order)."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"leaves: expected {treedef.num_leaves} leaves for this structure, got {len(leaves)}")
    return _unflatten(treedef.structure, iter(leaves))


def tree_map(fn: Callable[..., FloatArray], tree: Tree, *rest: object) -> Tree:
    """Applies ``fn`` leaf by leaf: ``fn(leaf, *matching leaves of rest)``; returns a tree like ``tree``.

    Args:
        fn: maps one leaf of ``tree`` and the matching leaves of ``rest`` to a new leaf.
        tree: a parameter tree.
        *rest: trees of the same structure (same classes, same tuple lengths).

    Returns:
        A new tree of the same classes; ``tree`` and ``rest`` are untouched.
    """
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten_like(other, treedef, name=f"rest[{index}]") for index, other in enumerate(rest)]
    new_leaves = [fn(*arrays) for arrays in zip(leaves, *others)]
    result: Tree = _unflatten(treedef.structure, iter(new_leaves))  # type: ignore[assignment]
    return result


def tree_flatten_with_paths(tree: object) -> dict[str, FloatArray]:
    """The leaves of ``tree`` keyed by their dotted paths (``"c1.w"``, ``"layers.0.b"``), in field order.

    Args:
        tree: a parameter tree.

    Returns:
        An insertion-ordered mapping from path to leaf (the leaves themselves, not copies).
    """
    leaves, treedef = tree_flatten(tree)
    return dict(zip(tree_paths(treedef), leaves))


def tree_paths(treedef: TreeDef) -> list[str]:
    """The dotted path of every leaf of a structure, in ``tree_flatten`` order."""
    paths: list[str] = []

    def visit(node: _Structure, path: str) -> None:
        if node is None:
            paths.append(path)
            return
        for label, child in zip(_labels(node[0], node[1]), node[2]):
            visit(child, _join(path, label))

    visit(treedef.structure, "")
    return paths


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
    treedef = tree_flatten(template)[1]
    result: Tree = tree_unflatten(treedef, [frozen(np.array(flat[path])) for path in expected])
    return result


def tree_leaves(tree: object) -> list[FloatArray]:
    """The leaves of ``tree`` in field order (depth first)."""
    return tree_flatten(tree)[0]


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


def init_partial_conv2d(
    rng: np.random.Generator,
    table: npt.NDArray[np.bool_],
    kernel_size: int,
    *,
    scheme: InitScheme = "lecun98",
    dtype: npt.DTypeLike = np.float32,
) -> PartialConv2dParams:
    """A new partially connected convolution: one kernel per connection of ``table``.

    The fan-in of an output map counts only its connected input maps (for LeNet-5's C3: 75, 100
    or 150 inputs), so each map has its own bound.

    Args:
        rng: the random generator.
        table: which input maps feed each output map, boolean, shape (C_out, C_in).
        kernel_size: the kernels' side.
        scheme: ``"lecun98"`` (weights and biases in +-2.4 / fan-in) or ``"he"`` (weights in
            +-sqrt(6 / fan-in), biases zero).
        dtype: float32 or float64.

    Returns:
        ``PartialConv2dParams`` with ``w`` (connections, k, k) and ``b`` (C_out,).
    """
    rng = check_rng(rng)
    float_dtype = check_float_dtype("dtype", dtype)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    if not isinstance(table, np.ndarray) or table.dtype != np.bool_ or table.ndim != 2 or not table.any(axis=1).all():
        got = f"{table.dtype} array of shape {table.shape}" if isinstance(table, np.ndarray) else type(table).__name__
        raise ValueError(f"table: expected a boolean array (C_out, C_in) with an input for every output map, got {got}")
    inputs_per_map = table.sum(axis=1)
    fan_in = inputs_per_map * kernel_size * kernel_size
    if scheme not in ("lecun98", "he"):
        raise ValueError(f"scheme: expected 'lecun98' or 'he', got {scheme!r}")
    bound = 2.4 / fan_in if scheme == "lecun98" else np.sqrt(6.0 / fan_in)
    shape = (int(inputs_per_map.sum()), kernel_size, kernel_size)
    w = (rng.uniform(-1.0, 1.0, size=shape) * np.repeat(bound, inputs_per_map)[:, None, None]).astype(float_dtype)
    b = (rng.uniform(-1.0, 1.0, size=table.shape[0]) * bound).astype(float_dtype) if scheme == "lecun98" else np.zeros(table.shape[0], float_dtype)
    return PartialConv2dParams(w=w, b=b)
