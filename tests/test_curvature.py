"""Curvature passes against the Gauss-Newton diagonal computed by brute force from explicit Jacobians."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lenet_fn import curvature, losses, ops
from lenet_fn.arrays import FloatArray
from tests.op_cases import OP_CASES, OpCase

CURVATURE_OF: dict[str, Callable[..., Any]] = {
    "linear": curvature.linear_curvature,
    "conv2d": curvature.conv2d_curvature,
    "partial_conv2d": curvature.partial_conv2d_curvature,
    "avg_pool2d": curvature.avg_pool2d_curvature,
    "max_pool2d": curvature.max_pool2d_curvature,
    "subsample": curvature.subsample_curvature,
    "relu": curvature.relu_curvature,
    "leaky_relu": curvature.leaky_relu_curvature,
    "sigmoid": curvature.sigmoid_curvature,
    "tanh": curvature.tanh_curvature,
    "squash": curvature.squash_curvature,
    "elu": curvature.elu_curvature,
    "rbf": curvature.rbf_curvature,
    "flatten": curvature.flatten_curvature,
}


def assert_curvature_close(computed: FloatArray, expected: FloatArray, name: str) -> None:
    """Agreement to 1e-8 relative; entries below 1e-14 of the array's scale count as zero (the brute
    force leaves ~1e-26 of round-off where the true curvature is exactly zero)."""
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(computed, expected, rtol=1e-8, atol=1e-14 * scale, err_msg=name)


def jacobian(f: Callable[[FloatArray], FloatArray], x: FloatArray, eps: float = 1e-3) -> FloatArray:
    """The explicit Jacobian (outputs, inputs) of ``f`` at ``x``, by 5-point central differences.

    ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h`` is exact for polynomials up to degree 4,
    so every linear op is differentiated exactly and the activations to ~1e-12.
    """
    point = np.array(x, dtype=np.float64, order="C", copy=True)
    flat = point.reshape(-1)
    columns = []
    for index in range(flat.size):
        original = flat[index]
        values = []
        for step in (2 * eps, eps, -eps, -2 * eps):
            flat[index] = original + step
            values.append(np.array(f(point), copy=True).reshape(-1))
        flat[index] = original
        columns.append((-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * eps))
    return np.stack(columns, axis=1)


def gauss_newton_diagonal(f: Callable[[FloatArray], FloatArray], x: FloatArray, h_out: FloatArray) -> FloatArray:
    """``diag(J^T diag(h_out) J)``, shaped like ``x``."""
    matrix = jacobian(f, x)
    diagonal: FloatArray = (matrix * matrix * h_out.reshape(-1, 1)).sum(axis=0).reshape(x.shape)
    return diagonal


@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_each_op_pass_is_the_exact_gauss_newton_diagonal(case: OpCase, rng: np.random.Generator) -> None:
    inputs = case.make_inputs(rng, np.float64)
    out, cache = case.forward(*inputs)
    h_out = rng.uniform(0.1, 2.0, size=out.shape)
    passes = CURVATURE_OF[case.op](h_out, cache)
    passes = passes if isinstance(passes, tuple) else (passes,)
    assert len(passes) == len(inputs)
    for index, (value, computed) in enumerate(zip(inputs, passes, strict=True)):
        forward = case.output_of(inputs, index)
        expected = gauss_newton_diagonal(forward, value, h_out)
        assert computed.shape == value.shape and (computed >= 0).all()
        assert_curvature_close(computed, expected, f"input {index}")


LOSS_CURVATURES = [
    ("softmax_cross_entropy", losses.softmax_cross_entropy_forward, losses.softmax_cross_entropy_backward, curvature.softmax_cross_entropy_curvature),
    ("map_loss", losses.map_loss_forward, losses.map_loss_backward, curvature.map_loss_curvature),
    ("mse", losses.mse_forward, losses.mse_backward, curvature.mse_curvature),
]  # fmt: skip


@pytest.mark.parametrize(("name", "forward", "backward", "diagonal"), LOSS_CURVATURES, ids=[entry[0] for entry in LOSS_CURVATURES])
def test_loss_passes_are_the_hessian_diagonal(
    name: str, forward: Any, backward: Any, diagonal: Any, rng: np.random.Generator
) -> None:
    scores = np.abs(rng.standard_normal((4, 6))) * 2
    labels = rng.integers(0, 6, size=4)
    _, cache = forward(scores, labels)
    hessian = jacobian(lambda point: backward(forward(point, labels)[1]), scores)  # d(gradient)/d(scores)
    expected = np.diag(hessian).reshape(scores.shape)
    assert_curvature_close(diagonal(cache), expected, name)


def test_a_tiny_network_pass_equals_layer_by_layer_brute_force(rng: np.random.Generator) -> None:
    """conv -> squash -> subsample -> squash -> flatten -> linear -> squash -> rbf -> MAP loss.

    Brute force: explicit Jacobians of every layer, keeping the Hessian diagonal between layers
    (the approximation the passes implement, LeCun et al. 1998, App. C).
    """
    x = rng.standard_normal((2, 1, 8, 8))
    w1, b1 = rng.standard_normal((2, 1, 3, 3)) * 0.5, rng.standard_normal(2) * 0.1
    coeff, bias = rng.standard_normal(2), rng.standard_normal(2) * 0.1
    w2, b2 = rng.standard_normal((5, 18)) * 0.3, rng.standard_normal(5) * 0.1
    centers = np.sign(rng.standard_normal((4, 5)))
    labels = np.array([1, 3])

    a1, conv_cache = ops.conv2d_forward(x, w1, b1)
    s1, squash1 = ops.squash_forward(a1)
    a2, sub_cache = ops.subsample_forward(s1, coeff, bias)
    s2, squash2 = ops.squash_forward(a2)
    f2, flat_cache = ops.flatten_forward(s2)
    a3, linear_cache = ops.linear_forward(f2, w2, b2)
    s3, squash3 = ops.squash_forward(a3)
    y, rbf_cache = ops.rbf_forward(s3, centers)
    _, loss_cache = losses.map_loss_forward(y, labels)

    # the pass
    h = curvature.map_loss_curvature(loss_cache)
    h, _ = curvature.rbf_curvature(h, rbf_cache)
    h = curvature.squash_curvature(h, squash3)
    h, h_w2, h_b2 = curvature.linear_curvature(h, linear_cache)
    h = curvature.flatten_curvature(h, flat_cache)
    h = curvature.squash_curvature(h, squash2)
    h, h_coeff, h_bias = curvature.subsample_curvature(h, sub_cache)
    h = curvature.squash_curvature(h, squash1)
    _, h_w1, h_b1 = curvature.conv2d_curvature(h, conv_cache, input_grad=False)

    # brute force, layer by layer
    hessian = jacobian(lambda point: losses.map_loss_backward(losses.map_loss_forward(point, labels)[1]), y)
    g = np.diag(hessian).reshape(y.shape)
    g = gauss_newton_diagonal(lambda point: ops.rbf_forward(point, centers)[0], s3, g)
    g = gauss_newton_diagonal(lambda point: ops.squash_forward(point)[0], a3, g)
    expected_w2 = gauss_newton_diagonal(lambda point: ops.linear_forward(f2, point, b2)[0], w2, g)
    expected_b2 = gauss_newton_diagonal(lambda point: ops.linear_forward(f2, w2, point)[0], b2, g)
    g = gauss_newton_diagonal(lambda point: ops.linear_forward(point, w2, b2)[0], f2, g)
    g = g.reshape(s2.shape)
    g = gauss_newton_diagonal(lambda point: ops.squash_forward(point)[0], a2, g)
    expected_coeff = gauss_newton_diagonal(lambda point: ops.subsample_forward(s1, point, bias)[0], coeff, g)
    expected_bias = gauss_newton_diagonal(lambda point: ops.subsample_forward(s1, coeff, point)[0], bias, g)
    g = gauss_newton_diagonal(lambda point: ops.subsample_forward(point, coeff, bias)[0], s1, g)
    g = gauss_newton_diagonal(lambda point: ops.squash_forward(point)[0], a1, g)
    expected_w1 = gauss_newton_diagonal(lambda point: ops.conv2d_forward(x, point, b1)[0], w1, g)
    expected_b1 = gauss_newton_diagonal(lambda point: ops.conv2d_forward(x, w1, point)[0], b1, g)

    for name, computed, expected in [
        ("w2", h_w2, expected_w2), ("b2", h_b2, expected_b2), ("coeff", h_coeff, expected_coeff),
        ("bias", h_bias, expected_bias), ("w1", h_w1, expected_w1), ("b1", h_b1, expected_b1),
    ]:  # fmt: skip
        assert_curvature_close(computed, expected, name)


def test_the_rbf_units_own_curvature(rng: np.random.Generator) -> None:
    """With the upstream gradient, the pass adds the exact Hessian diagonal of ``sum(d_out * y(x))``."""
    x = rng.standard_normal((3, 5))
    centers = np.sign(rng.standard_normal((4, 5)))
    _, cache = ops.rbf_forward(x, centers)
    h_out = rng.uniform(0.1, 1.0, size=(3, 4))
    d_out = rng.uniform(0.0, 1.0, size=(3, 4))
    plain, _ = curvature.rbf_curvature(h_out, cache)
    with_units, h_centers = curvature.rbf_curvature(h_out, cache, d_out=d_out)
    linear_term = jacobian(lambda point: (ops.rbf_backward(d_out, ops.rbf_forward(point, centers)[1])[0]), x)
    assert_curvature_close(with_units - plain, np.diag(linear_term).reshape(x.shape), "d2 sum(d_out * y) / dx2")
    assert_curvature_close(with_units, plain + 2 * d_out.sum(axis=1, keepdims=True), "h_x")
    negative, _ = curvature.rbf_curvature(h_out, cache, d_out=-d_out)
    np.testing.assert_array_equal(negative, plain)  # a negative own curvature is clipped, never subtracted


def test_curvature_keeps_the_dtype_and_the_arguments(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out, cache = ops.conv2d_forward(x, w, np.zeros(4, np.float32))
    h_out = np.ones_like(out)
    before = (x.copy(), w.copy(), cache.columns.copy())
    h_x, h_w, h_b = curvature.conv2d_curvature(h_out, cache)
    assert h_x.dtype == h_w.dtype == h_b.dtype == np.float32
    for old, new in zip(before, (x, w, cache.columns), strict=True):
        np.testing.assert_array_equal(old, new)
