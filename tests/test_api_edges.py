"""The Python API at its edges: empty kernels, a backward handed another op's cache or its
arguments in the other order, bad per-parameter rates, no images. A one-line error each."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_fn import curvature, losses, ops
from lenet_fn.batch import predict_outputs
from lenet_fn.models import LENET5
from lenet_fn.optim import momentum_init, momentum_step


@pytest.mark.parametrize("shape", [(3, 1, 0, 0), (3, 1, 0, 2), (0, 1, 3, 3)])
def test_an_empty_kernel_is_refused(shape: tuple[int, ...]) -> None:
    x = np.ones((2, 1, 6, 6))
    with pytest.raises(ValueError, match=rf"^w: expected at least one filter of at least 1x1 on at least one channel, got w of shape \({shape[0]}, 1, {shape[2]}, {shape[3]}\)$"):
        ops.conv2d_forward(x, np.ones(shape), np.zeros(shape[0]))


def test_a_backward_handed_another_ops_cache_names_the_one_it_needs() -> None:
    x = np.ones((2, 3))
    _, relu_cache = ops.relu_forward(x)
    with pytest.raises(TypeError, match=r"^cache: expected the LinearCache that linear_forward returns, got ReluCache$"):
        ops.linear_backward(np.ones((2, 4)), relu_cache)  # type: ignore[call-overload]
    _, linear_cache = ops.linear_forward(x, np.ones((4, 3)), np.zeros(4))
    with pytest.raises(TypeError, match=r"^cache: expected the ReluCache that relu_forward returns, got LinearCache$"):
        ops.relu_backward(np.ones((2, 3)), linear_cache)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^cache: expected the LinearCache that linear_forward returns, got ReluCache$"):
        curvature.linear_curvature(np.ones((2, 4)), relu_cache)  # type: ignore[call-overload]


def test_a_loss_backward_with_its_arguments_swapped_says_which_order_is_which() -> None:
    _, cache = losses.softmax_cross_entropy_forward(np.zeros((2, 10)), np.array([1, 2]))
    with pytest.raises(TypeError, match=(
        r"^cache: expected the SoftmaxCrossEntropyCache that softmax_cross_entropy_forward returns, got float "
        r"\(an op's backward takes \(d_out, cache\), a loss's takes \(cache, d_loss\)\)$"
    )):  # fmt: skip
        losses.softmax_cross_entropy_backward(1.0, cache)  # type: ignore[arg-type]
    assert losses.softmax_cross_entropy_backward(cache, 1.0).shape == (2, 10)


@pytest.mark.parametrize(("bad", "described"), [(np.nan, "NaN"), (-0.1, "negative"), (np.inf, "infinite")])
def test_per_parameter_rates_must_be_finite_and_not_negative(bad: float, described: str) -> None:
    params = {"w": np.ones((3, 2)), "b": np.zeros(2)}
    rates = {"w": np.full((3, 2), 0.1), "b": np.array([0.1, bad])}
    with pytest.raises(ValueError, match=r"^lr\.b: expected finite rates >= 0, got 1 of 2 NaN, infinite or negative$"):
        momentum_step(params, params, momentum_init(params), lr=rates)
    good = {"w": np.full((3, 2), 0.1), "b": np.array([0.1, 0.0])}
    momentum_step(params, params, momentum_init(params), lr=good)


def test_predict_outputs_on_no_images_is_one_line() -> None:
    params = LENET5.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^x: expected a batch of at least one prepared input, shape \(N, \.\.\.\) with N >= 1, got shape \(0, 1, 32, 32\)$"):
        predict_outputs(LENET5, params, np.zeros((0, 1, 32, 32), np.float32))
