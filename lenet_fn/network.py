"""Networks from layer objects: ``sequential(*layers, ...)``, a ``Model`` that trains like the
built-in ones (``fit``, ``Net``, ``python -m lenet_fn.train --model module:NAME``, SDLM included).

The model's forward runs the layers in order and keeps every cache; its backward walks them in
reverse with each layer's backward (the first layer skips its input gradient), and its curvature
pass walks them with each layer's curvature rule. The parameters are a dict with one entry per
layer, keyed by the layer's ``name`` or else its index (``"3"``), so checkpoint paths say which
layer a leaf belongs to (``3.w``, ``conv1.w``); a layer without parameters has an empty entry.
The shapes are checked once, when the model is made, from ``input_shape``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn import curvature, losses
from lenet_fn.arrays import ByteArray, FloatArray, FloatDType, IntArray, check_float_array, check_float_dtype, check_int, check_rng
from lenet_fn.data import standard_prepare
from lenet_fn.params import check_tree_key
from lenet_fn.protocol import Model, predict_largest, predict_smallest

Shape = tuple[int, ...]


@runtime_checkable
class Layer(Protocol):
    """What ``sequential`` needs of a layer (every class of ``lenet_fn.layers`` is one; so can be
    a class of your own)."""

    @property
    def name(self) -> str | None: ...

    def init(self, rng: np.random.Generator, dtype: FloatDType) -> Any: ...
    def output_shape(self, shape: Shape) -> Shape: ...
    def forward(self, params: Any, x: FloatArray) -> tuple[FloatArray, Any]: ...
    def backward(self, d_out: FloatArray, cache: Any, *, input_grad: bool = True) -> tuple[FloatArray | None, Any]: ...
    def curvature(
        self, h_out: FloatArray, cache: Any, *, input_grad: bool = True, d_out: FloatArray | None = None
    ) -> tuple[FloatArray | None, Any]: ...


@attrs.frozen
class Loss:
    """A loss pair and, for SDLM, its curvature in the outputs.

    Attributes:
        forward: ``forward(outputs, labels)`` -> ``(loss, cache)``.
        backward: ``backward(cache)`` -> the gradient in the outputs.
        curvature: ``curvature(cache)`` -> the loss Hessian's diagonal in the outputs, or ``None``.
    """

    forward: Callable[[FloatArray, IntArray], tuple[float, Any]]
    backward: Callable[[Any], FloatArray]
    curvature: Callable[[Any], FloatArray] | None = None


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(losses.softmax_cross_entropy_forward, losses.softmax_cross_entropy_backward, curvature.softmax_cross_entropy_curvature),
    "mse": Loss(losses.mse_forward, losses.mse_backward, curvature.mse_curvature),
    "map": Loss(losses.map_loss_forward, losses.map_loss_backward, curvature.map_loss_curvature),
}
"""The losses ``sequential`` takes by name: softmax cross-entropy on logits, mean squared error,
and LeNet-5's MAP loss on RBF distances (``j`` = ``losses.MAP_LOSS_J``)."""

PREDICTIONS: dict[str, Callable[[FloatArray], IntArray]] = {"largest": predict_largest, "smallest": predict_smallest}
"""The prediction rules by name: the class of the largest output (logits) or the smallest (distances)."""


@attrs.frozen
class SequentialCache:
    """Every layer's cache from ``Sequential.forward``, input side first."""

    layers: tuple[Any, ...]


@attrs.frozen(eq=False)
class Sequential:
    """Layers run in order, with their parameters in a dict keyed by ``labels``.

    Attributes:
        layers: the layers, input side first.
        labels: each layer's key in the parameter dict (its name, or its index).
        input_shape: the shape of one input, without the batch axis.
    """

    layers: tuple[Layer, ...]
    labels: tuple[str, ...]
    input_shape: Shape

    def init(self, rng: np.random.Generator, *, dtype: npt.DTypeLike = np.float32) -> dict[str, Any]:
        """The parameters, drawn from ``rng`` layer by layer in order: ``{label: layer params}``."""
        rng = check_rng(rng)
        float_dtype = check_float_dtype("dtype", dtype)
        return {label: layer.init(rng, float_dtype) for label, layer in zip(self.labels, self.layers)}

    def _entries(self, params: object) -> list[Any]:
        """The layers' entries of ``params``, in layer order (a tree's dicts may come in any order)."""
        if not isinstance(params, dict) or set(params) != set(self.labels):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"params: expected a dict with the keys {sorted(self.labels)} (one per layer), got {got}")
        return [params[label] for label in self.labels]

    def forward(self, params: dict[str, Any], x: FloatArray) -> tuple[FloatArray, SequentialCache]:
        """The network's outputs (N, K) on inputs ``x`` (N, *input_shape), and every layer's cache."""
        x = check_float_array("x", x)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        caches = []
        for index, (layer, entry) in enumerate(zip(self.layers, self._entries(params))):
            try:
                x, cache = layer.forward(entry, x)
            except (TypeError, ValueError) as error:  # a dtype or a params entry that does not fit
                raise type(error)(f"layer {index} {layer!r}: {error}") from None
            caches.append(cache)
        return x, SequentialCache(tuple(caches))

    def backward(self, d_outputs: FloatArray, cache: SequentialCache) -> dict[str, Any]:
        """The gradient of every parameter, a dict like the parameters, from ``d_outputs`` (N, K)."""
        d: FloatArray | None = d_outputs
        grads: dict[str, Any] = {}
        for index in reversed(range(len(self.layers))):
            d, grads[self.labels[index]] = self.layers[index].backward(_required(d), cache.layers[index], input_grad=index > 0)
        return {label: grads[label] for label in self.labels}

    def curvature(self, h_outputs: FloatArray, d_outputs: FloatArray, cache: SequentialCache) -> dict[str, Any]:
        """The Gauss-Newton diagonal of every parameter, from the loss's curvature ``h_outputs`` and
        gradient ``d_outputs`` (N, K); the gradient reaches the last layer only (an RBF output
        layer's own curvature, as in LeNet-5)."""
        h: FloatArray | None = h_outputs
        curvatures: dict[str, Any] = {}
        last = len(self.layers) - 1
        for index in reversed(range(len(self.layers))):
            layer, layer_cache = self.layers[index], cache.layers[index]
            h, curvatures[self.labels[index]] = layer.curvature(
                _required(h), layer_cache, input_grad=index > 0, d_out=d_outputs if index == last else None
            )
        return {label: curvatures[label] for label in self.labels}


def _required(value: FloatArray | None) -> FloatArray:
    if value is None:  # only the first layer skips its input gradient, and nothing comes before it
        raise RuntimeError("a layer returned no input gradient although one was asked for")
    return value


_METHODS = ("init", "output_shape", "forward", "backward", "curvature")


def _check_layer(index: int, layer: object) -> Layer:
    """``layer`` if it is a layer object (not a class), with the methods ``sequential`` calls."""
    if isinstance(layer, type):
        raise TypeError(f"layer {index}: expected a layer, got the class {layer.__name__} (make one: {layer.__name__}(...))")
    if not isinstance(layer, Layer) or not all(callable(getattr(layer, method)) for method in _METHODS):
        raise TypeError(f"layer {index}: expected a layer (lenet_fn.layers, or an object with a name and the methods "
                        f"{', '.join(_METHODS)}), got {type(layer).__name__}")  # fmt: skip
    return layer


def _labels(layers: Sequence[object]) -> tuple[str, ...]:
    """Each layer's key: its name, else its index; names are unique tree keys (no '.' or '/')."""
    labels: list[str] = []
    for index, layer in enumerate(layers):
        name = _check_layer(index, layer).name
        if name is not None:
            try:
                check_tree_key("name", name)
            except (TypeError, ValueError):
                raise ValueError(f"layer {index} {layer!r}: name: expected a non-empty string without '.' or '/', got {name!r}") from None
        label = str(index) if name is None else name
        if label in labels:
            raise ValueError(f"layer {index} {layer!r}: name: {label!r} is already the key of layer {labels.index(label)}")
        labels.append(label)
    return tuple(labels)


def _walk_shapes(layers: Sequence[Layer], input_shape: Shape) -> Shape:
    """The output shape of the layers on inputs of ``input_shape``; a mismatch names the layer."""
    shape = input_shape
    for index, layer in enumerate(layers):
        try:
            shape = tuple(layer.output_shape(shape))
        except (TypeError, ValueError) as error:
            raise ValueError(f"layer {index} {layer!r}: {error}") from None
    if len(shape) != 1:
        raise ValueError(f"the last layer {layers[-1]!r}: expected one output per class, shape (K,), got {shape} (end with a Linear or an RBF)")
    return shape


def _check_input_shape(input_shape: object) -> Shape:
    """The shape of one input as a tuple of ints >= 1 (a list is taken too)."""
    message = f"input_shape: expected a tuple of positive integers, the shape of one input (C, H, W) or (D,), got {input_shape!r}"
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise ValueError(message)
    try:
        return tuple(check_int("input_shape", n, minimum=1) for n in input_shape)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def _choose(loss: object, predict: object, prepare: object, name: object) -> tuple[Loss, Callable[[FloatArray], IntArray]]:
    """The loss and the prediction rule; a one-line error for anything ``sequential`` cannot use."""
    if isinstance(loss, str) and loss in LOSSES:
        chosen = LOSSES[loss]
    elif isinstance(loss, Loss):
        chosen = loss
    else:
        raise ValueError(f"loss: expected one of {', '.join(LOSSES)} or a Loss, got {loss!r}")
    rule = predict if predict is not None else ("smallest" if chosen == LOSSES["map"] else "largest")
    if isinstance(rule, str) and rule in PREDICTIONS:
        rule = PREDICTIONS[rule]
    if not callable(rule):
        raise ValueError(f"predict: expected one of {', '.join(PREDICTIONS)} or a function, got {predict!r}")
    if prepare is not None and not callable(prepare):
        raise TypeError(f"prepare: expected a function (images, dtype) -> inputs, got {type(prepare).__name__}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty string, got {name!r}")
    return chosen, rule


def sequential(
    *layers: Layer,
    loss: str | Loss = "cross_entropy",
    predict: str | Callable[[FloatArray], IntArray] | None = None,
    prepare: Callable[[ByteArray, npt.DTypeLike], FloatArray] | None = None,
    input_shape: Shape = (1, 28, 28),
    name: str = "sequential",
) -> Model[dict[str, Any]]:
    """A ``Model`` running ``layers`` in order.

    Args:
        *layers: the layers, input side first (``lenet_fn.layers``).
        loss: ``"cross_entropy"``, ``"mse"``, ``"map"`` (see ``LOSSES``), or a ``Loss``.
        predict: ``"largest"`` or ``"smallest"`` output wins, or a function of the outputs (N, K);
            default ``"smallest"`` for the MAP loss (distances), else ``"largest"``.
        prepare: turns uint8 digits (N, 28, 28) into inputs (N, *input_shape); default
            ``standard_prepare(input_shape)``.
        input_shape: the shape of one input, without the batch axis (MNIST's (1, 28, 28) by default).
        name: the model's name in messages (an import path replaces it when the commands load it).

    Returns:
        The model; its curvature functions are set when the loss has a curvature.

    Raises:
        ValueError, TypeError: a layer that is not one, a duplicate or bad name, shapes that do
            not chain (naming the layer, its index, what it expected and what it got), an unknown
            loss or prediction rule.
    """
    if not layers:
        raise ValueError("layers: expected at least one layer, got none")
    network = Sequential(layers=tuple(layers), labels=_labels(layers), input_shape=_check_input_shape(input_shape))
    _walk_shapes(network.layers, network.input_shape)
    chosen, rule = _choose(loss, predict, prepare, name)
    return Model(
        init=network.init,
        forward=network.forward,
        backward=network.backward,
        loss_forward=chosen.forward,
        loss_backward=chosen.backward,
        predict=rule,
        prepare=prepare if prepare is not None else standard_prepare(network.input_shape),
        name=name,
        summary=" - ".join(map(repr, network.layers)),
        curvature=network.curvature if chosen.curvature is not None else None,
        loss_curvature=chosen.curvature,
    )
