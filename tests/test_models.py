"""The three models: structure and parameter counts, initialisation, whole-model gradients."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from lenet_fn.gradcheck import numerical_gradient, numerical_vjp, relative_error
from lenet_fn.models import C3_TABLE, LENET5, MODELS, get_model, init_lenet5
from lenet_fn.protocol import Model
from lenet_fn.params import tree_flatten, tree_flatten_with_paths, tree_paths, tree_unflatten
from tests.conftest import GradientRecorder

PAPER_C3 = [
    {0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5, 0}, {5, 0, 1},
    {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5}, {3, 4, 5, 0}, {4, 5, 0, 1}, {5, 0, 1, 2},
    {0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5},
    {0, 1, 2, 3, 4, 5},
]  # fmt: skip


def test_lenet5_has_the_papers_parameter_counts() -> None:
    params = init_lenet5(np.random.default_rng(0))
    counts: dict[str, int] = {}
    for path, leaf in tree_flatten_with_paths(params).items():
        layer = path.split(".")[0]
        counts[layer] = counts.get(layer, 0) + leaf.size
    assert counts == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert [set(np.flatnonzero(row)) for row in C3_TABLE] == PAPER_C3
    assert not C3_TABLE.flags.writeable


def test_lenet5_initialisation_is_uniform_in_2_4_over_fan_in() -> None:
    params = init_lenet5(np.random.default_rng(0), dtype=np.float64)
    for name, leaf, fan_in in [("c1", params.c1.w, 25), ("c5", params.c5.w, 400), ("f6", params.f6.w, 120)]:
        assert np.abs(leaf).max() <= 2.4 / fan_in, name
        assert np.abs(leaf).max() > 0.9 * 2.4 / fan_in, name  # and spans the interval
    for subsampling in (params.s2, params.s4):
        assert np.abs(subsampling.coeff).max() <= 2.4 / 4 and np.abs(subsampling.bias).max() <= 2.4 / 4
    inputs_per_map = C3_TABLE.sum(axis=1)
    bounds = np.repeat(2.4 / (25 * inputs_per_map), inputs_per_map)
    assert (np.abs(params.c3.w).max(axis=(1, 2)) <= bounds).all()
    assert (np.abs(params.c3.b) <= 2.4 / (25 * inputs_per_map)).all()


def _batch(model: Model[Any], rng: np.random.Generator, count: int, dtype: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return model.prepare(images, dtype), rng.integers(0, 10, size=count)


@pytest.mark.parametrize(("name", "eps"), [("lenet5", 1e-4), ("lenet5-relu", 1e-5), ("mlp", 1e-5)])
def test_whole_model_gradients_match_central_differences(
    name: str, eps: float, rng: np.random.Generator, gradients: GradientRecorder
) -> None:
    """d loss / d params from the model's backward, against central differences of the model.

    The loss's own gradient (checked in test_losses) is the upstream gradient; the differences are
    taken output by output (``numerical_vjp``), at 12 random elements of every parameter leaf.
    The step: LeNet-5's outputs are distances near 84, whose round-off calls for a larger step;
    the ReLU networks take a small one so that no difference straddles a kink.
    """
    model = get_model(name)
    params = model.init(rng, dtype=np.float64)
    x, labels = _batch(model, rng, 3, np.float64)
    outputs, cache = model.forward(params, x)
    _, loss_cache = model.loss_forward(outputs, labels)
    d_outputs = model.loss_backward(loss_cache)
    grads = model.backward(d_outputs, cache)
    leaves, treedef = tree_flatten(params)
    grad_leaves, grad_treedef = tree_flatten(grads)
    assert grad_treedef == treedef  # the gradients are a tree of the params' class
    for index, (path, leaf, gradient) in enumerate(zip(tree_paths(treedef), leaves, grad_leaves, strict=True)):

        def forward(point: np.ndarray, index: int = index) -> np.ndarray[Any, Any]:
            replaced = list(leaves)
            replaced[index] = point
            return model.forward(tree_unflatten(treedef, replaced), x)[0]

        # entries below 1% of the leaf's largest carry only round-off in a relative comparison
        # (every element of every op is checked exactly in test_ops)
        candidates = np.flatnonzero(np.abs(gradient) >= 0.01 * np.abs(gradient).max())
        spots = rng.choice(candidates, size=min(candidates.size, 12), replace=False)
        numeric = numerical_vjp(forward, leaf, d_outputs, eps=eps, indices=spots)
        error = gradients.record(f"model:{name}", relative_error(gradient.reshape(-1)[spots], numeric))
        assert error < 1e-6, f"{name} {path}: relative error {error:.2e}"


def test_lenet5_gradient_of_the_loss_end_to_end(rng: np.random.Generator) -> None:
    """The same check through the scalar MAP loss itself (coarser: the loss is ~84, so round-off is larger)."""
    params = init_lenet5(rng, dtype=np.float64)
    x, labels = _batch(LENET5, rng, 2, np.float64)
    outputs, cache = LENET5.forward(params, x)
    grads = LENET5.backward(LENET5.loss_backward(LENET5.loss_forward(outputs, labels)[1]), cache)
    leaves, treedef = tree_flatten(params)
    for index, gradient in enumerate(tree_flatten(grads)[0]):

        def loss(point: np.ndarray[Any, Any], index: int = index) -> float:
            replaced = list(leaves)
            replaced[index] = point
            return LENET5.loss_forward(LENET5.forward(tree_unflatten(treedef, replaced), x)[0], labels)[0]

        spots = np.argsort(-np.abs(gradient.reshape(-1)))[:4]  # the largest entries: a relative check is meaningful
        numeric = numerical_gradient(loss, leaves[index], eps=1e-4, indices=spots)
        assert relative_error(gradient.reshape(-1)[spots], numeric) < 1e-5


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_models_keep_the_dtype_and_predict_one_class_each(name: str, dtype: Any, rng: np.random.Generator) -> None:
    model = get_model(name)
    params = model.init(rng, dtype=dtype)
    x, labels = _batch(model, rng, 5, dtype)
    outputs, cache = model.forward(params, x)
    assert outputs.shape == (5, 10) and outputs.dtype == dtype
    grads = model.backward(model.loss_backward(model.loss_forward(outputs, labels)[1]), cache)
    assert all(leaf.dtype == dtype for leaf in tree_flatten(grads)[0])
    predictions = model.predict(outputs)
    assert predictions.shape == (5,) and ((predictions >= 0) & (predictions < 10)).all()


def test_lenet5_predicts_the_nearest_bitmap() -> None:
    distances = np.array([[3.0, 0.5, 9.0], [0.1, 2.0, 0.2]])
    np.testing.assert_array_equal(LENET5.predict(distances), [1, 0])
    np.testing.assert_array_equal(get_model("mlp").predict(distances), [2, 1])


def test_models_reject_inputs_of_the_wrong_shape(rng: np.random.Generator) -> None:
    params = init_lenet5(rng)
    with pytest.raises(ValueError, match=re.escape("x: expected shape (N, 1, 32, 32), got (2, 1, 28, 28)")):
        LENET5.forward(params, np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="model: expected one of lenet5, lenet5-relu, mlp or an import path module:NAME, got 'lenet6'"):
        get_model("lenet6")
