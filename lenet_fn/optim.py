"""Stateless SGD with momentum (``velocity = momentum_init(params)``, then ``momentum_step`` per batch),
SDLM's per-parameter rates, and the learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from lenet_fn.arrays import FloatArray, check_positive_float
from lenet_fn.params import TreeDef, frozen, tree_flatten, tree_flatten_like, tree_paths, tree_unflatten, tree_zeros_like

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


def _leaves_like(name: str, other: object, treedef: TreeDef, leaves: list[FloatArray], *, broadcast: bool = False) -> list[FloatArray]:
    """The leaves of ``other``, checked against ``leaves``: same structure, same shapes (or
    broadcastable to them) and, unless ``broadcast``, same dtypes."""
    others = tree_flatten_like(other, treedef, name=name)
    for index, (leaf, array) in enumerate(zip(leaves, others)):
        if broadcast:
            try:
                fits = np.broadcast_shapes(array.shape, leaf.shape) == leaf.shape
            except ValueError:
                fits = False
        else:
            fits = array.shape == leaf.shape
        if not fits:
            raise ValueError(f"{name}.{tree_paths(treedef)[index]}: expected shape {leaf.shape}, got {array.shape}")
        if not broadcast and array.dtype != leaf.dtype:
            raise TypeError(f"{name}.{tree_paths(treedef)[index]}: expected dtype {leaf.dtype} (as params), got {array.dtype}")
    return others


def _check_rates(rates: list[FloatArray], treedef: TreeDef) -> None:
    """Per-parameter learning rates are finite and >= 0 (NaN fails both comparisons)."""
    for index, rate in enumerate(rates):
        if rate.size and not (rate.min() >= 0 and np.isfinite(rate.max())):
            bad = int(np.count_nonzero(~(np.isfinite(rate) & (rate >= 0))))
            raise ValueError(f"lr.{tree_paths(treedef)[index]}: expected finite rates >= 0, got {bad:,} of {rate.size:,} NaN, infinite or negative")


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
        lr: the learning rate: a number >= 0, or a tree like ``params`` whose leaves broadcast to
            the parameter shapes (per-parameter rates, as SDLM gives).
        momentum: in [0, 1).
        weight_decay: >= 0.

    Returns:
        ``(new_params, new_velocity)``; the arguments are untouched.
    """
    momentum = _check_number("momentum", momentum, low=0.0, high=1.0)
    weight_decay = _check_number("weight_decay", weight_decay, low=0.0)
    weights, treedef = tree_flatten(params)
    gradients = _leaves_like("grads", grads, treedef, weights)
    velocities = _leaves_like("velocity", velocity, treedef, weights)
    if isinstance(lr, (int, float, np.integer, np.floating)) and not isinstance(lr, bool):
        rates: list[FloatArray | float] = [_check_number("lr", lr, low=0.0)] * len(weights)
    else:
        per_parameter = _leaves_like("lr", lr, treedef, weights, broadcast=True)
        _check_rates(per_parameter, treedef)
        rates = list(per_parameter)
    new_weights, new_velocities = [], []
    for w, g, v, rate in zip(weights, gradients, velocities, rates):
        step = g + weight_decay * w if weight_decay else g
        updated = v * momentum
        updated -= rate * step
        new_velocities.append(frozen(updated))
        new_weights.append(frozen(w + updated))
    params_out: Tree = tree_unflatten(treedef, new_weights)
    velocity_out: Tree = tree_unflatten(treedef, new_velocities)
    return params_out, velocity_out


SDLM_MU = 0.02
"""The damping ``mu`` of SDLM's learning rates (LeCun et al. 1998, App. C)."""


def sdlm_learning_rates(curvature: Tree, *, eta: float, mu: float = SDLM_MU) -> Tree:
    """Per-parameter learning rates of the stochastic diagonal Levenberg-Marquardt method.

    ``lr_k = eta / (mu + h_kk)`` with ``h_kk`` the Gauss-Newton curvature of parameter ``k``
    averaged over samples (``lenet_fn.curvature``), as in LeCun et al. 1998, App. C.

    For mini-batches each step takes one of the paper's per-sample steps along the batch's mean
    gradient (not ``batch_size`` of them: a step that large overshoots while the network is far
    from any minimum: the docs' results page).

    Args:
        curvature: a tree of non-negative curvatures, shaped like the parameters.
        eta: the global rate of the epoch.
        mu: the damping, > 0; it caps every rate at ``eta / mu``.

    Returns:
        A tree of learning rates for ``momentum_step(..., lr=...)``.
    """
    eta = _check_number("eta", eta, low=0.0)
    mu = check_positive_float("mu", mu)
    leaves, treedef = tree_flatten(curvature)
    for path, leaf in zip(tree_paths(treedef), leaves):
        if leaf.size and leaf.min() < 0:
            raise ValueError(f"curvature.{path}: expected non-negative values, got a minimum of {leaf.min()}")
    rates: Tree = tree_unflatten(treedef, [frozen(eta / (mu + leaf)) for leaf in leaves])
    return rates


SCHEDULES: dict[str, Callable[[int, int], float]] = {
    # LeCun et al. 1998's global rate for SDLM, as multiples of its first value:
    # 5e-4 for 2 passes, 2e-4 for 3, 1e-4 for 3, 5e-5 for 4, then 1e-5.
    "paper": lambda epoch, epochs: 1.0 if epoch < 2 else 0.4 if epoch < 5 else 0.2 if epoch < 8 else 0.1 if epoch < 12 else 0.02,
    "constant": lambda epoch, epochs: 1.0,
    "cosine": lambda epoch, epochs: 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)),
}
"""Learning-rate multipliers by epoch (0-based) of a run of ``epochs``: ``lr * SCHEDULES[name](epoch, epochs)``."""
