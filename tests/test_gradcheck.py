"""The gradient checker itself: it finds known gradients, and it catches wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_fn import ops
from lenet_fn.gradcheck import numerical_gradient, numerical_vjp, relative_error


def test_numerical_gradient_of_a_known_function(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4))
    numeric = numerical_gradient(lambda point: float(np.sum(np.sin(point))), x)
    assert relative_error(np.cos(x), numeric) < 1e-8


def test_numerical_vjp_of_a_known_function(rng: np.random.Generator) -> None:
    x = rng.standard_normal(5)
    d_out = rng.standard_normal(5)
    numeric = numerical_vjp(lambda point: point**3, x, d_out, eps=1e-5)
    assert relative_error(3 * x**2 * d_out, numeric) < 1e-8


def test_the_point_is_never_modified_and_may_be_non_contiguous(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 6))[:, ::2]
    before = x.copy()
    numeric = numerical_gradient(lambda point: float(np.sum(point**2)), x)
    np.testing.assert_array_equal(x, before)
    assert relative_error(2 * x, numeric) < 1e-8


def test_gradients_at_chosen_elements(rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4))
    spots = np.array([0, 5, 11])
    at = numerical_gradient(lambda point: float(np.sum(np.sin(point))), x, indices=spots)
    assert at.shape == (3,) and relative_error(np.cos(x).reshape(-1)[spots], at) < 1e-8
    d_out = rng.standard_normal((3, 4))
    vjp = numerical_vjp(lambda point: point**2, x, d_out, indices=spots)
    assert relative_error((2 * x * d_out).reshape(-1)[spots], vjp) < 1e-8
    with pytest.raises(ValueError, match=r"indices: expected flat indices in \[0, 12\), got values from 0 to 12"):
        numerical_gradient(lambda point: float(point.sum()), x, indices=np.array([0, 12]))


def test_relative_error_definition() -> None:
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert relative_error(np.array([2.0, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1 / 3)
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0


def test_a_subtly_wrong_backward_is_caught(rng: np.random.Generator) -> None:
    """A gradient with one entry off by one part in a million fails the 1e-7 bar of the op tests."""
    x = rng.standard_normal((2, 3, 7, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out, cache = ops.conv2d_forward(x, w, b, stride=2, padding=1)
    d_out = rng.standard_normal(out.shape)
    _, d_w, _ = ops.conv2d_backward(d_out, cache)
    numeric = numerical_vjp(lambda point: ops.conv2d_forward(x, point, b, stride=2, padding=1)[0], w, d_out, eps=1e-3)
    assert relative_error(d_w, numeric) < 1e-9
    wrong = d_w.copy()
    wrong[1, 2, 0, 1] *= 1 + 1e-6
    assert relative_error(wrong, numeric) > 1e-7
    flipped = np.flip(d_w, axis=(2, 3))  # the classic convolution-vs-correlation mistake
    assert relative_error(flipped, numeric) > 1e-2


def test_float32_is_refused() -> None:
    with pytest.raises(TypeError, match="x: gradient checks run in float64, got float32"):
        numerical_gradient(lambda point: float(point.sum()), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="analytic: gradient checks run in float64, got float32"):
        relative_error(np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="eps: expected a step > 0, got 0.0"):
        numerical_gradient(lambda point: float(point.sum()), np.zeros(3), eps=0.0)
