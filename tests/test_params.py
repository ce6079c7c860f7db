"""Parameter classes (frozen, read-only leaves), tree utilities and initialisers."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import numpy as np
import pytest

from lenet_fn.checkpoint import load_checkpoint, save_checkpoint
from lenet_fn.optim import momentum_init, momentum_step
from lenet_fn.params import (
    Conv2dParams,
    LinearParams,
    MLPParams,
    SubsampleParams,
    init_conv2d,
    init_linear,
    init_subsample,
    tree_flatten,
    tree_flatten_with_paths,
    tree_leaves,
    tree_map,
    tree_paths,
    tree_size,
    tree_unflatten,
    tree_unflatten_with_paths,
    tree_zeros_like,
    uniform_fan_in,
)


def _mlp(rng: np.random.Generator) -> MLPParams:
    return MLPParams(layers=(init_linear(rng, 4, 3), init_linear(rng, 3, 2)))


@attrs.frozen(eq=False)
class _Nested:
    """A tree mixing every node kind: a params class, a tuple of params and a bare tuple."""

    conv: Conv2dParams
    pool: SubsampleParams
    mlp: MLPParams


@attrs.frozen(eq=False)
class _Pair:
    """A tree whose fields take anything, to build malformed trees."""

    first: Any
    second: Any


def _nested(rng: np.random.Generator) -> _Nested:
    return _Nested(conv=init_conv2d(rng, 2, 3, 3), pool=init_subsample(rng, 3), mlp=_mlp(rng))


def test_fields_cannot_be_reassigned_and_leaves_cannot_be_written(rng: np.random.Generator) -> None:
    params = init_linear(rng, 4, 3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        params.w = np.zeros((3, 4), np.float32)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        params.w[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        params.b += 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
        params.w.flags.writeable = True  # nor can the flag be turned back on


def test_a_writable_array_is_copied_and_a_read_only_one_is_kept() -> None:
    weights = np.ones((2, 3))
    params = LinearParams(w=weights, b=np.zeros(2))
    weights[0, 0] = 5.0
    assert params.w[0, 0] == 1.0  # later writes to the caller's array do not reach the params
    assert weights.flags.writeable  # and the caller's array was not frozen
    again = LinearParams(w=params.w, b=params.b)
    assert again.w is params.w  # no copy of a leaf that is already read-only


def test_leaves_must_be_float_arrays() -> None:
    with pytest.raises(TypeError, match="LinearParams.w: expected a numpy.ndarray of float32 or float64, got list"):
        LinearParams(w=[[1.0]], b=np.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Conv2dParams.b: expected dtype float32 or float64, got int64"):
        Conv2dParams(w=np.zeros((1, 1, 1, 1)), b=np.zeros(1, dtype=np.int64))


def test_tree_map_builds_a_new_tree_of_the_same_classes(rng: np.random.Generator) -> None:
    tree = _nested(rng)
    doubled = tree_map(lambda leaf: leaf * 2, tree)
    assert type(doubled) is _Nested and type(doubled.mlp.layers) is tuple
    for old, new in zip(tree_leaves(tree), tree_leaves(doubled), strict=True):
        np.testing.assert_array_equal(new, old * 2)
        assert not new.flags.writeable
    summed = tree_map(lambda a, b, c: a + b + c, tree, doubled, doubled)
    for old, new in zip(tree_leaves(tree), tree_leaves(summed), strict=True):
        np.testing.assert_array_equal(new, old + old * 2 + old * 2)


def test_tree_map_rejects_trees_of_another_structure(rng: np.random.Generator) -> None:
    mlp = _mlp(rng)
    shorter = MLPParams(layers=mlp.layers[:1])
    with pytest.raises(ValueError, match=re.escape("rest[0].layers: expected a tuple of 2, got 1")):
        tree_map(lambda a, b: a + b, mlp, shorter)
    with pytest.raises(TypeError, match=re.escape("rest[1]: expected MLPParams, got LinearParams")):
        tree_map(lambda a, b, c: a + b + c, mlp, mlp, mlp.layers[0])
    with pytest.raises(TypeError, match=re.escape("rest[0].second: expected an array, got LinearParams")):
        tree_map(lambda a, b: a + b, _Pair(np.zeros(1), np.zeros(2)), _Pair(np.zeros(1), mlp.layers[0]))
    as_list = MLPParams(layers=list(mlp.layers))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("rest[0].layers: expected tuple, got list")):
        tree_map(lambda a, b: a + b, mlp, as_list)
    as_set = MLPParams(layers=set())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="layers: expected an array, an attrs parameter class, a tuple, a list, a dict or a NamedTuple, got set"):
        tree_map(lambda a: a, as_set)


class DenseLayer(NamedTuple):
    w: np.ndarray[Any, Any]
    b: np.ndarray[Any, Any]


def _user_trees(rng: np.random.Generator) -> dict[str, Any]:
    """A user's own trees: a dict of NamedTuples and a list, and a NamedTuple of dicts."""
    return {
        "dict": {"conv": DenseLayer(rng.standard_normal((2, 3)), rng.standard_normal(2)), "head": [rng.standard_normal(4)]},
        "namedtuple": DenseLayer(w={"a": rng.standard_normal(3)}, b={"a": rng.standard_normal(1)}),  # type: ignore[arg-type]
    }


def test_dict_list_and_namedtuple_trees_have_dotted_paths(rng: np.random.Generator) -> None:
    trees = _user_trees(rng)
    assert list(tree_flatten_with_paths(trees["dict"])) == ["conv.w", "conv.b", "head.0"]
    assert list(tree_flatten_with_paths(trees["namedtuple"])) == ["w.a", "b.a"]
    reordered = {"head": trees["dict"]["head"], "conv": trees["dict"]["conv"]}  # keys are visited sorted
    assert tree_flatten(reordered)[1] == tree_flatten(trees["dict"])[1]
    doubled = tree_map(lambda a: a * 2, trees["dict"])
    assert isinstance(doubled["conv"], DenseLayer) and isinstance(doubled["head"], list)
    np.testing.assert_array_equal(doubled["conv"].w, 2 * trees["dict"]["conv"].w)
    with pytest.raises(ValueError, match=re.escape("conv: expected dict keys that are non-empty strings without '.' or '/', got 'a.b'")):
        tree_flatten({"conv": {"a.b": np.zeros(1)}})
    with pytest.raises(TypeError, match=re.escape("tree: expected dict keys that are strings, got int 3")):
        tree_flatten({3: np.zeros(1)})
    with pytest.raises(TypeError, match="tree: expected an array, an attrs parameter class, a tuple, a list, a dict or a NamedTuple, got OrderedDict"):
        tree_flatten(collections.OrderedDict(a=np.zeros(1)))  # a dict subclass would come back as a plain dict
    with pytest.raises(ValueError, match=re.escape("rest[0]: expected the keys ('conv', 'head'), got ('conv',)")):
        tree_map(lambda a, b: a, trees["dict"], {"conv": trees["dict"]["conv"]})


def test_user_trees_save_load_and_step(rng: np.random.Generator, tmp_path: Path) -> None:
    for name, tree in _user_trees(rng).items():
        velocity = momentum_init(tree)
        stepped, velocity = momentum_step(tree, tree_map(np.ones_like, tree), velocity, lr=0.1)
        assert all(not leaf.flags.writeable for leaf in tree_leaves(stepped) + tree_leaves(velocity))
        path = save_checkpoint(tmp_path / f"{name}.npz", stepped, model="mine")
        loaded = load_checkpoint(path).params(tree)
        assert tree_flatten(loaded)[1] == tree_flatten(tree)[1]
        for one, other in zip(tree_leaves(loaded), tree_leaves(stepped), strict=True):
            np.testing.assert_array_equal(one, other)
            assert not one.flags.writeable


def test_leaves_paths_and_sizes(rng: np.random.Generator) -> None:
    tree = _nested(rng)
    flat = tree_flatten_with_paths(tree)
    assert list(flat) == [
        "conv.w", "conv.b", "pool.coeff", "pool.bias",
        "mlp.layers.0.w", "mlp.layers.0.b", "mlp.layers.1.w", "mlp.layers.1.b",
    ]  # fmt: skip
    assert tree_leaves(tree) == list(flat.values())
    assert tree_size(tree) == 3 * 2 * 9 + 3 + 3 + 3 + 12 + 3 + 6 + 2


def test_unflatten_is_the_inverse_of_flatten(rng: np.random.Generator) -> None:
    tree = _nested(rng)
    flat = {path: np.array(leaf) for path, leaf in tree_flatten_with_paths(tree).items()}
    rebuilt = tree_unflatten_with_paths(tree, flat)
    assert type(rebuilt) is _Nested
    for path, leaf in tree_flatten_with_paths(rebuilt).items():
        np.testing.assert_array_equal(leaf, flat[path])
        assert not leaf.flags.writeable


def test_unflatten_checks_keys_and_shapes(rng: np.random.Generator) -> None:
    tree = _mlp(rng)
    flat = {path: np.array(leaf) for path, leaf in tree_flatten_with_paths(tree).items()}
    missing = dict(flat)
    del missing["layers.1.b"]
    with pytest.raises(ValueError, match=re.escape("missing ['layers.1.b'], unexpected []")):
        tree_unflatten_with_paths(tree, missing)
    with pytest.raises(ValueError, match=re.escape("missing [], unexpected ['extra']")):
        tree_unflatten_with_paths(tree, {**flat, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=re.escape("layers.0.w: expected shape (3, 4), got (4, 3)")):
        tree_unflatten_with_paths(tree, {**flat, "layers.0.w": np.zeros((4, 3))})
    with pytest.raises(TypeError, match="layers.0.b: expected dtype float32 or float64, got int64"):
        tree_unflatten_with_paths(tree, {**flat, "layers.0.b": np.zeros(3, dtype=np.int64)})


def test_tree_utilities_leave_their_arguments_untouched(rng: np.random.Generator) -> None:
    tree = _nested(rng)
    before = {path: leaf.copy() for path, leaf in tree_flatten_with_paths(tree).items()}
    zeros = tree_zeros_like(tree)
    tree_map(lambda a, b: a - b, tree, zeros)
    tree_unflatten_with_paths(tree, tree_flatten_with_paths(zeros))
    for path, leaf in tree_flatten_with_paths(tree).items():
        np.testing.assert_array_equal(leaf, before[path])
    for leaf, zero in zip(tree_leaves(tree), tree_leaves(zeros), strict=True):
        assert zero.shape == leaf.shape and zero.dtype == leaf.dtype and not zero.any()


def test_uniform_fan_in_is_the_papers_rule() -> None:
    values = uniform_fan_in(np.random.default_rng(0), (20_000,), fan_in=25)
    assert values.dtype == np.float32
    assert np.abs(values).max() <= 2.4 / 25
    assert np.abs(values).max() > 0.99 * 2.4 / 25  # it spans the interval
    assert abs(float(values.mean())) < 0.01 * 2.4 / 25
    np.testing.assert_array_equal(values, uniform_fan_in(np.random.default_rng(0), (20_000,), fan_in=25))


def test_initialisers_shapes_dtypes_and_schemes(rng: np.random.Generator) -> None:
    conv = init_conv2d(rng, 6, 16, 5, scheme="lecun98", dtype=np.float64)
    assert conv.w.shape == (16, 6, 5, 5) and conv.b.shape == (16,) and conv.w.dtype == np.float64
    assert np.abs(conv.w).max() <= 2.4 / 150 and np.abs(conv.b).max() <= 2.4 / 150 and conv.b.any()
    dense = init_linear(rng, 300, 100)
    assert dense.w.shape == (100, 300) and dense.w.dtype == np.float32 and not dense.b.any()
    assert np.abs(dense.w).max() <= np.sqrt(6 / 300)
    pool = init_subsample(rng, 6)
    assert pool.coeff.shape == (6,) and np.abs(pool.coeff).max() <= 2.4 / 4


def test_initialisers_reject_bad_arguments(rng: np.random.Generator) -> None:
    with pytest.raises(TypeError, match=re.escape("rng: expected a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got int")):
        init_linear(0, 3, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_features: expected an integer >= 1, got 0"):
        init_linear(rng, 0, 2)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64, got int32"):
        init_conv2d(rng, 1, 1, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="scheme: expected 'lecun98' or 'he', got 'xavier'"):
        init_linear(rng, 3, 2, scheme="xavier")  # type: ignore[arg-type]


def test_flatten_and_unflatten_round_trip(rng: np.random.Generator) -> None:
    tree = _nested(rng)
    leaves, treedef = tree_flatten(tree)
    assert treedef == tree_flatten(_nested(rng))[1] and treedef.num_leaves == len(leaves) == 8
    assert tree_paths(treedef) == list(tree_flatten_with_paths(tree))
    rebuilt = tree_unflatten(treedef, [leaf + 1 for leaf in leaves])
    assert type(rebuilt) is _Nested
    for old, new in zip(leaves, tree_leaves(rebuilt), strict=True):
        np.testing.assert_array_equal(new, old + 1)
    with pytest.raises(ValueError, match="leaves: expected 8 leaves for this structure, got 7"):
        tree_unflatten(treedef, leaves[:7])
    assert tree_flatten(_mlp(rng))[1] != treedef
