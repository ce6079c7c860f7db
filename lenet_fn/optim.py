"""Stateless SGD with momentum: ``velocity = momentum_init(params)``, then ``momentum_step`` per batch."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from lenet_fn.arrays import FloatArray
from lenet_fn.params import frozen, tree_flatten_with_paths, tree_map, tree_zeros_like

Tree = TypeVar("Tree")


def momentum_init(params: Tree) -> Tree:
    """The initial velocity: a tree of zeros shaped like ``params``."""
    return tree_zeros_like(params)


def _check_number(name: str, value: object, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < low or (high is not None and number >= high):
        bounds = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name}: expected a finite number {bounds}, got {number}")
    return number


def _check_like(name: str, params: object, other: object, *, broadcast: bool = False) -> None:
    """Checks that ``other`` has the leaves of ``params``: same paths, shapes (or broadcastable) and dtypes."""
    expected = tree_flatten_with_paths(params)
    received = tree_flatten_with_paths(other)
    if list(expected) != list(received):
        raise ValueError(f"{name}: expected the leaves {list(expected)}, got {list(received)}")
    for path, leaf in expected.items():
        array = received[path]
        if broadcast:
            try:
                fits = np.broadcast_shapes(array.shape, leaf.shape) == leaf.shape
            except ValueError:
                fits = False
        else:
            fits = array.shape == leaf.shape
            if fits and array.dtype != leaf.dtype:
                raise TypeError(f"{name}.{path}: expected dtype {leaf.dtype} (as params), got {array.dtype}")
        if not fits:
            raise ValueError(f"{name}.{path}: expected shape {leaf.shape}, got {array.shape}")


def momentum_step(
    params: Tree,
    grads: Tree,
    velocity: Tree,
    *,
    lr: float | Tree,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> tuple[Tree, Tree]:
    """One step of SGD with (heavy-ball) momentum and L2 weight decay, as a pure function.

    ``v <- momentum * v - lr * (g + weight_decay * w)``, then ``w <- w + v``.

    Args:
        params: the parameter tree.
        grads: gradients, a tree like ``params`` (same shapes and dtypes).
        velocity: from ``momentum_init`` or the previous step, a tree like ``params``.
        lr: the learning rate: a number > 0, or a tree like ``params`` whose leaves broadcast to
            the parameter shapes (per-parameter rates, as SDLM gives).
        momentum: in [0, 1).
        weight_decay: >= 0.

    Returns:
        ``(new_params, new_velocity)``; the arguments are untouched.
    """
    momentum = _check_number("momentum", momentum, low=0.0, high=1.0)
    weight_decay = _check_number("weight_decay", weight_decay, low=0.0)
    _check_like("grads", params, grads)
    _check_like("velocity", params, velocity)

    def new_velocity(w: FloatArray, g: FloatArray, v: FloatArray, rate: FloatArray | float) -> FloatArray:
        step = g + weight_decay * w if weight_decay else g
        updated = v * momentum
        updated -= rate * step
        return frozen(updated)

    if isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool):
        rate = _check_number("lr", lr, low=0.0)
        velocity = tree_map(lambda w, g, v: new_velocity(w, g, v, rate), params, grads, velocity)
    else:
        _check_like("lr", params, lr, broadcast=True)
        velocity = tree_map(new_velocity, params, grads, velocity, lr)
    params = tree_map(lambda w, v: frozen(w + v), params, velocity)
    return params, velocity
