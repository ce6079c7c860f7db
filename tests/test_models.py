"""The three models: structure and parameter counts, initialisation, whole-model gradients."""

from __future__ import annotations

import re
from typing import Any

import attrs
import numpy as np
import pytest

from lenet_fn.gradcheck import GradientCheckError, check_model_gradients
from lenet_fn.models import C3_TABLE, LENET5, MODELS, get_model, init_lenet5
from lenet_fn.protocol import Model
from lenet_fn.params import tree_flatten, tree_flatten_with_paths, tree_paths
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


@pytest.mark.parametrize("name", list(MODELS))
def test_whole_model_gradients_match_central_differences(name: str, rng: np.random.Generator, gradients: GradientRecorder) -> None:
    """d loss / d params from the model's backward, at check_model_gradients' defaults: the loss's
    gradient in the outputs, then 16 random elements of every parameter leaf."""
    model = get_model(name)
    params = model.init(rng, dtype=np.float64)
    x, labels = _batch(model, rng, 3, np.float64)
    report = check_model_gradients(model, params, x, labels, rng=rng)
    assert [entry.name for entry in report.inputs[1:]] == tree_paths(tree_flatten(params)[1])
    gradients.record(f"model:{name}", report.worst_ratio)


def test_a_wrong_model_backward_is_named_by_its_leaf(rng: np.random.Generator) -> None:
    """A model whose C3 weight gradient is doubled fails, naming the leaf and the element."""

    def doubled_c3(d_distances: np.ndarray[Any, Any], cache: Any) -> Any:
        grads = LENET5.backward(d_distances, cache)
        return attrs.evolve(grads, c3=attrs.evolve(grads.c3, w=grads.c3.w * 2))

    params = LENET5.init(rng, dtype=np.float64)
    x, labels = _batch(LENET5, rng, 2, np.float64)
    with pytest.raises(GradientCheckError, match=r"^gradient of c3\.w \(shape \(60, 5, 5\)\) does not match central differences: worst element c3\.w\[\d+, \d, \d\]"):
        check_model_gradients(attrs.evolve(LENET5, backward=doubled_c3), params, x, labels, rng=rng)


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
