"""Numerical gradients by central differences, and the relative error against an analytic gradient.

Float64 only: in float32 the round-off of a difference quotient swamps the comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from lenet_fn.arrays import FloatArray, IntArray, check_float_array

T = TypeVar("T")


def _check_float64(name: str, value: object) -> FloatArray:
    array = check_float_array(name, value)
    if array.dtype != np.float64:
        raise TypeError(f"{name}: gradient checks run in float64, got {array.dtype}")
    return array


def _central_differences(
    f: Callable[[FloatArray], T],
    x: FloatArray,
    eps: float,
    quotient: Callable[[T, T], float],
    indices: IntArray | None = None,
) -> FloatArray:
    """``quotient(f(x + eps e_i), f(x - eps e_i))`` for the flat ``indices`` of ``x`` (all by default).

    ``f`` is called on a private contiguous copy of ``x`` perturbed one element at a time.
    """
    x = _check_float64("x", x)
    if not eps > 0:
        raise ValueError(f"eps: expected a step > 0, got {eps}")
    point = np.array(x, dtype=np.float64, order="C", copy=True)
    flat_point = point.reshape(-1)
    positions = np.arange(point.size) if indices is None else np.asarray(indices).reshape(-1)
    if positions.size and (positions.min() < 0 or positions.max() >= point.size):
        raise ValueError(f"indices: expected flat indices in [0, {point.size}), got values from {positions.min()} to {positions.max()}")
    gradient = np.empty(positions.size, dtype=np.float64)
    for slot, index in enumerate(positions):
        original = flat_point[index]
        flat_point[index] = original + eps
        above = f(point)
        flat_point[index] = original - eps
        below = f(point)
        flat_point[index] = original
        gradient[slot] = quotient(above, below)
    return gradient.reshape(x.shape) if indices is None else gradient


def numerical_gradient(
    f: Callable[[FloatArray], float], x: FloatArray, *, eps: float = 1e-6, indices: IntArray | None = None
) -> FloatArray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` of a scalar ``f``.

    ``x`` itself is never modified.

    Args:
        f: a scalar function of one array (a loss).
        x: the point, float64, any shape.
        eps: the step.
        indices: flat indices of the elements to differentiate, shape (K,); ``None`` for all.

    Returns:
        The gradient, float64: the shape of ``x``, or (K,) at ``indices``.
    """
    return _central_differences(f, x, eps, lambda above, below: (above - below) / (2.0 * eps), indices)


def numerical_vjp(
    f: Callable[[FloatArray], FloatArray],
    x: FloatArray,
    d_out: FloatArray,
    *,
    eps: float = 1e-6,
    indices: IntArray | None = None,
) -> FloatArray:
    """Central differences of ``sum(f(x) * d_out)``: what ``<op>_backward(d_out, cache)`` returns.

    The outputs are subtracted elementwise before they are weighted and summed, so outputs that
    do not move contribute exactly nothing: the round-off is that of the changed outputs, not of
    the whole sum (far more precise than differencing the scalar ``sum(f(x) * d_out)``).

    Args:
        f: an array function of one array (an op's or a model's forward).
        x: the point, float64, any shape.
        d_out: the upstream gradient, float64, the shape of ``f(x)``.
        eps: the step.
        indices: flat indices of the elements to differentiate, shape (K,); ``None`` for all.

    Returns:
        The vector-Jacobian product, float64: the shape of ``x``, or (K,) at ``indices``.
    """
    d_out = _check_float64("d_out", d_out)

    def quotient(above: FloatArray, below: FloatArray) -> float:
        return float(np.sum((above - below) * d_out)) / (2.0 * eps)

    # copy each output: a forward may return a view of its input (flatten), which the next step moves
    return _central_differences(lambda point: np.array(f(point), copy=True), x, eps, quotient, indices)


def relative_error(analytic: FloatArray, numeric: FloatArray) -> float:
    """The largest elementwise relative error ``|a - n| / (|a| + |n|)`` (0 where both are 0).

    Args:
        analytic: the gradient a backward returned, float64, any shape.
        numeric: the central-difference gradient, float64, the same shape.

    Returns:
        The maximum over elements; 0.0 for empty arrays.
    """
    analytic = _check_float64("analytic", analytic)
    numeric = _check_float64("numeric", numeric)
    if analytic.shape != numeric.shape:
        raise ValueError(f"numeric: expected shape {analytic.shape} (the shape of analytic), got {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    scale = np.abs(analytic) + np.abs(numeric)
    difference = np.abs(analytic - numeric)
    ratios = np.divide(difference, scale, out=np.zeros_like(scale), where=scale > 0)
    return float(ratios.max())


