"""Losses: values against direct formulas, gradients against central differences, dtypes, purity, bad input."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lenet_fn import losses
from lenet_fn.arrays import FloatArray
from lenet_fn.gradcheck import check_backward
from tests.conftest import GradientRecorder

LossForward = Callable[[FloatArray, Any], tuple[float, Any]]
LossBackward = Callable[[Any, float], FloatArray]

LOSSES: list[tuple[str, LossForward, LossBackward]] = [
    ("softmax_cross_entropy", losses.softmax_cross_entropy_forward, losses.softmax_cross_entropy_backward),
    ("mse", losses.mse_forward, losses.mse_backward),
    ("map_loss", losses.map_loss_forward, losses.map_loss_backward),
    ("map_loss(j=2)", lambda y, labels: losses.map_loss_forward(y, labels, j=2.0), losses.map_loss_backward),
]


def _scores(name: str, rng: np.random.Generator, shape: tuple[int, int], dtype: npt.DTypeLike = np.float64) -> FloatArray:
    """Logits for cross-entropy and MSE; non-negative RBF distances for the MAP loss."""
    values = rng.standard_normal(shape)
    return (np.abs(values) * 3.0 if name.startswith("map_loss") else values).astype(dtype)


@pytest.mark.parametrize("shape", [(4, 10), (1, 3), (7, 2)])
@pytest.mark.parametrize(("name", "forward", "backward"), LOSSES, ids=[entry[0] for entry in LOSSES])
def test_loss_gradients_match_central_differences(
    name: str,
    forward: LossForward,
    backward: LossBackward,
    shape: tuple[int, int],
    rng: np.random.Generator,
    gradients: GradientRecorder,
) -> None:
    """At check_backward's defaults (d_loss drawn at random); the labels, which have no gradient, are
    held fixed by a closure (or ``options=`` where the forward names them)."""
    scores = _scores(name, rng, shape)
    labels = rng.integers(0, shape[1], size=shape[0])
    report = check_backward(lambda scores: forward(scores, labels), lambda d, cache: backward(cache, d), scores, rng=rng)
    gradients.record(name.split("(")[0], report.worst_ratio)


def test_mse_gradient_with_real_targets(rng: np.random.Generator, gradients: GradientRecorder) -> None:
    targets = rng.standard_normal((3, 5))
    report = check_backward(losses.mse_forward, lambda d, cache: losses.mse_backward(cache, d), rng.standard_normal((3, 5)),
                            options={"targets": targets}, rng=rng)  # fmt: skip
    gradients.record("mse", report.worst_ratio)


def test_softmax_cross_entropy_value_and_stability() -> None:
    scores = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    loss, cache = losses.softmax_cross_entropy_forward(scores, np.array([2, 0]))
    expected_first = -np.log(np.exp(3.0) / (np.exp(1.0) + np.exp(2.0) + np.exp(3.0)))
    assert loss == pytest.approx((expected_first + 0.0) / 2, rel=1e-14)
    np.testing.assert_allclose(cache.probabilities.sum(axis=1), 1.0, rtol=1e-15)
    assert np.isfinite(losses.softmax_cross_entropy_backward(cache)).all()


def test_mse_is_the_mean_over_all_entries_and_labels_mean_one_hot() -> None:
    scores = np.array([[0.5, 0.0], [1.0, 2.0]])
    loss, _ = losses.mse_forward(scores, np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert loss == pytest.approx((0.25 + 0 + 1 + 4) / 4, rel=1e-15)
    from_labels, cache = losses.mse_forward(scores, np.array([0, 1]))  # one-hot [[1, 0], [0, 1]]
    assert from_labels == pytest.approx((0.25 + 0 + 1 + 1) / 4, rel=1e-15)
    np.testing.assert_allclose(losses.mse_backward(cache), [[-0.25, 0.0], [0.5, 0.5]], rtol=1e-15)


def test_map_loss_is_equation_9() -> None:
    distances = np.array([[0.5, 3.0, 2.0], [10.0, 0.1, 700.0]])
    labels = np.array([0, 1])
    j = 0.7
    loss, _ = losses.map_loss_forward(distances, labels, j=j)
    per_sample = [
        row[label] + np.log(np.exp(-j) + np.exp(-row).sum()) for row, label in zip(distances, labels, strict=True)
    ]
    assert loss == pytest.approx(np.mean(per_sample), rel=1e-14)
    huge, cache = losses.map_loss_forward(np.full((2, 10), 5000.0), np.array([3, 4]))
    assert huge == pytest.approx(5000.0 - 0.1, rel=1e-12)  # exp(-j) dominates the sum: no underflow
    assert np.isfinite(losses.map_loss_backward(cache)).all()


def test_map_loss_default_j_is_documented() -> None:
    distances = np.array([[1.0, 2.0]])
    default, _ = losses.map_loss_forward(distances, np.array([0]))
    explicit, _ = losses.map_loss_forward(distances, np.array([0]), j=losses.MAP_LOSS_J)
    assert default == explicit and losses.MAP_LOSS_J == 0.1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "forward", "backward"), LOSSES, ids=[entry[0] for entry in LOSSES])
def test_losses_keep_the_dtype_and_leave_arguments_untouched(
    name: str, forward: LossForward, backward: LossBackward, dtype: type[np.floating[Any]], rng: np.random.Generator
) -> None:
    scores = _scores(name, rng, (5, 10), dtype)
    labels = rng.integers(0, 10, size=5)
    scores_before, labels_before = scores.copy(), labels.copy()
    loss, cache = forward(scores, labels)
    assert isinstance(loss, float)
    gradient = backward(cache, 1.0)
    assert gradient.dtype == dtype and gradient.shape == scores.shape
    np.testing.assert_array_equal(backward(cache, 1.0), gradient)
    np.testing.assert_array_equal(scores, scores_before)
    np.testing.assert_array_equal(labels, labels_before)


@pytest.mark.parametrize(("name", "forward", "backward"), LOSSES, ids=[entry[0] for entry in LOSSES])
def test_losses_reject_bad_labels(name: str, forward: LossForward, backward: LossBackward) -> None:
    scores = np.zeros((3, 10))
    label_name = "targets" if name == "mse" else "labels"
    with pytest.raises(ValueError, match=re.escape(f"{label_name}: expected values in [0, 10), got values from 0 to 10")):
        forward(scores, np.array([0, 10, 3]))
    with pytest.raises(ValueError, match=re.escape(f"{label_name}: expected values in [0, 10), got values from -1 to 3")):
        forward(scores, np.array([-1, 2, 3]))
    with pytest.raises(ValueError, match=re.escape(f"{label_name}: expected shape (3,), one label per row, got (2,)")):
        forward(scores, np.array([0, 1]))
    if name != "mse":  # for MSE a float array is a real-valued target
        with pytest.raises(TypeError, match=f"{label_name}: expected an integer array of class labels, got dtype float64"):
            forward(scores, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=re.escape("expected a 2-D array of shape (N, K), got shape (3,)")):
        forward(np.zeros(3), np.array([0, 1, 2]))


def test_mse_rejects_targets_of_the_wrong_shape_or_dtype() -> None:
    with pytest.raises(ValueError, match=re.escape("targets: expected shape (2, 3) (the shape of scores) or integer labels of shape (2,), got (2, 4)")):
        losses.mse_forward(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="targets: expected dtype float32 .the dtype of scores., got float64"):
        losses.mse_forward(np.zeros((2, 3), np.float32), np.zeros((2, 3)))


def test_map_loss_rejects_a_non_positive_j() -> None:
    with pytest.raises(ValueError, match="j: expected a finite number > 0, got 0.0"):
        losses.map_loss_forward(np.zeros((1, 2)), np.array([0]), j=0.0)
