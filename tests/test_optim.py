"""momentum_init / momentum_step: the formula on hand-computed numbers, purity, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lenet_fn.optim import momentum_init, momentum_step, sdlm_learning_rates
from lenet_fn.params import LinearParams, MLPParams, tree_leaves


def _params() -> LinearParams:
    return LinearParams(w=np.array([[1.0, 2.0]]), b=np.array([-1.0]))


def _grads() -> LinearParams:
    return LinearParams(w=np.array([[0.5, -1.0]]), b=np.array([2.0]))


def test_momentum_init_is_zeros() -> None:
    velocity = momentum_init(_params())
    assert isinstance(velocity, LinearParams)
    assert all(not leaf.any() for leaf in tree_leaves(velocity))


def test_momentum_step_on_hand_computed_numbers() -> None:
    velocity = LinearParams(w=np.array([[0.1, 0.2]]), b=np.array([0.0]))
    params, velocity = momentum_step(_params(), _grads(), velocity, lr=0.1, momentum=0.9, weight_decay=0.01)
    # v = 0.9 v - 0.1 (g + 0.01 w):  w: 0.09 - 0.1 * 0.51 = 0.039,  0.18 - 0.1 * (-0.98) = 0.278
    #                                b: 0 - 0.1 * (2 - 0.01) = -0.199
    np.testing.assert_allclose(velocity.w, [[0.039, 0.278]], rtol=1e-14)
    np.testing.assert_allclose(velocity.b, [-0.199], rtol=1e-14)
    np.testing.assert_allclose(params.w, [[1.039, 2.278]], rtol=1e-14)
    np.testing.assert_allclose(params.b, [-1.199], rtol=1e-14)
    # a second step carries the velocity: v = 0.9 * 0.039 - 0.1 * (0.5 + 0.01 * 1.039)
    params, velocity = momentum_step(params, _grads(), velocity, lr=0.1, momentum=0.9, weight_decay=0.01)
    np.testing.assert_allclose(velocity.w[0, 0], 0.9 * 0.039 - 0.1 * (0.5 + 0.01 * 1.039), rtol=1e-14)
    np.testing.assert_allclose(params.w[0, 0], 1.039 + 0.9 * 0.039 - 0.1 * (0.5 + 0.01 * 1.039), rtol=1e-14)


def test_momentum_step_with_a_tree_of_learning_rates() -> None:
    rates = LinearParams(w=np.array([[0.1, 0.01]]), b=np.array([1.0]))
    params, velocity = momentum_step(_params(), _grads(), momentum_init(_params()), lr=rates, momentum=0.5)
    np.testing.assert_allclose(velocity.w, [[-0.05, 0.01]], rtol=1e-15)
    np.testing.assert_allclose(velocity.b, [-2.0], rtol=1e-15)
    np.testing.assert_allclose(params.w, [[0.95, 2.01]], rtol=1e-15)
    np.testing.assert_allclose(params.b, [-3.0], rtol=1e-15)
    # leaves that broadcast (one rate per output row) are accepted too
    row_rates = LinearParams(w=np.array([[0.1]]), b=np.array([1.0]))
    params, _ = momentum_step(_params(), _grads(), momentum_init(_params()), lr=row_rates, momentum=0.0)
    np.testing.assert_allclose(params.w, [[0.95, 2.1]], rtol=1e-15)


def test_momentum_step_keeps_float32_and_leaves_arguments_untouched() -> None:
    params = LinearParams(w=np.ones((2, 3), np.float32), b=np.zeros(2, np.float32))
    grads = LinearParams(w=np.full((2, 3), 0.5, np.float32), b=np.ones(2, np.float32))
    velocity = momentum_init(params)
    rates = LinearParams(w=np.full((2, 3), 0.1), b=np.full(2, 0.1))  # float64 rates for float32 params
    before = [leaf.copy() for tree in (params, grads, velocity, rates) for leaf in tree_leaves(tree)]
    new_params, new_velocity = momentum_step(params, grads, velocity, lr=rates, weight_decay=0.1)
    after = [leaf for tree in (params, grads, velocity, rates) for leaf in tree_leaves(tree)]
    for old, current in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, current)
    for leaf in tree_leaves(new_params) + tree_leaves(new_velocity):
        assert leaf.dtype == np.float32 and not leaf.flags.writeable


def test_momentum_step_walks_tuples_of_layers() -> None:
    mlp = MLPParams(layers=(_params(), _params()))
    grads = MLPParams(layers=(_grads(), _grads()))
    params, _ = momentum_step(mlp, grads, momentum_init(mlp), lr=1.0, momentum=0.0)
    for layer in params.layers:
        np.testing.assert_allclose(layer.w, [[0.5, 3.0]])


def test_momentum_step_rejects_bad_arguments() -> None:
    params, grads, velocity = _params(), _grads(), momentum_init(_params())
    wrong_shape = LinearParams(w=np.zeros((2, 2)), b=np.zeros(1))
    with pytest.raises(ValueError, match=re.escape("grads.w: expected shape (1, 2), got (2, 2)")):
        momentum_step(params, wrong_shape, velocity, lr=0.1)
    wrong_dtype = LinearParams(w=np.zeros((1, 2), np.float32), b=np.zeros(1))
    with pytest.raises(TypeError, match=re.escape("velocity.w: expected dtype float64 (as params), got float32")):
        momentum_step(params, grads, wrong_dtype, lr=0.1)
    with pytest.raises(ValueError, match=re.escape("lr.w: expected shape (1, 2), got (3,)")):
        momentum_step(params, grads, velocity, lr=LinearParams(w=np.zeros(3), b=np.zeros(1)))
    with pytest.raises(ValueError, match=re.escape("momentum: expected a finite number in [0.0, 1.0), got 1.0")):
        momentum_step(params, grads, velocity, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match=re.escape("lr: expected a finite number >= 0.0, got -0.1")):
        momentum_step(params, grads, velocity, lr=-0.1)
    with pytest.raises(ValueError, match=re.escape("weight_decay: expected a finite number >= 0.0, got nan")):
        momentum_step(params, grads, velocity, lr=0.1, weight_decay=float("nan"))
    with pytest.raises(TypeError, match=re.escape("grads: expected LinearParams, got MLPParams")):
        momentum_step(params, MLPParams(layers=(grads,)), velocity, lr=0.1)


def test_sdlm_learning_rates_on_hand_computed_numbers() -> None:
    curvature = LinearParams(w=np.array([[0.0, 0.08]]), b=np.array([0.98]))
    rates = sdlm_learning_rates(curvature, eta=5e-4, mu=0.02)
    np.testing.assert_allclose(rates.w, [[5e-4 / 0.02, 5e-4 / 0.1]], rtol=1e-15)
    np.testing.assert_allclose(rates.b, [5e-4 / 1.0], rtol=1e-15)
    assert isinstance(rates, LinearParams) and not rates.w.flags.writeable
    params, _ = momentum_step(_params(), _grads(), momentum_init(_params()), lr=rates, momentum=0.0)
    np.testing.assert_allclose(params.w, [[1.0 - 0.025 * 0.5, 2.0 + 0.005 * 1.0]], rtol=1e-15)
    with pytest.raises(ValueError, match=re.escape("curvature.b: expected non-negative values, got a minimum of -1.0")):
        sdlm_learning_rates(LinearParams(w=np.zeros((1, 2)), b=np.array([-1.0])), eta=1e-3)
    with pytest.raises(ValueError, match="mu: expected a finite number > 0, got 0.0"):
        sdlm_learning_rates(curvature, eta=1e-3, mu=0.0)
