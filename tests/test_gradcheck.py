"""The gradient checker itself: it finds known gradients, it catches wrong ones, and it says which."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import attrs
import numpy as np
import pytest

from lenet_fn import losses, ops
from lenet_fn.gradcheck import GradientCheckError, check_backward, numerical_gradient, numerical_vjp, relative_error


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


# --------------------------------------------------------------------------------------------
# check_backward: one call for an op written in the library's style


@attrs.frozen
class SwishCache:
    x: np.ndarray[Any, Any]
    sigmoid: np.ndarray[Any, Any]


def swish_forward(x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], SwishCache]:
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    return x * sigmoid, SwishCache(x, sigmoid)


def swish_backward(d_out: np.ndarray[Any, Any], cache: SwishCache) -> np.ndarray[Any, Any]:
    s = cache.sigmoid
    d_x: np.ndarray[Any, Any] = d_out * (s + cache.x * s * (1.0 - s))
    return d_x


def test_a_correct_swish_with_gradients_near_1e_4_passes_at_the_defaults(rng: np.random.Generator) -> None:
    """The false alarm of a relative measure without an absolute tolerance: swish' vanishes near -1.2785."""
    x = np.concatenate([rng.standard_normal(40), -1.2785 + rng.uniform(-2e-4, 2e-4, size=8)])
    assert np.abs(swish_backward(np.ones_like(x), swish_forward(x)[1])).min() < 1e-4
    report = check_backward(swish_forward, swish_backward, x, rng=rng)
    assert [entry.name for entry in report.inputs] == ["x"] and report.inputs[0].checked == 48
    assert report.worst_ratio < 0.1


def _linear_square(rng: np.random.Generator) -> tuple[np.ndarray[Any, Any], ...]:
    return rng.standard_normal((4, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)


def _product_forward(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], tuple[Any, Any]]:
    return a * b, (a, b)


@attrs.frozen
class WritableCache:
    x: np.ndarray[Any, Any]


def _scale_forward(x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], WritableCache]:
    return 3.0 * x, WritableCache(x.copy())


def _scale_backward_that_mutates(d_out: np.ndarray[Any, Any], cache: WritableCache) -> np.ndarray[Any, Any]:
    cache.x[...] = 0.0  # a cache is the forward's record: a backward must not write to it
    return 3.0 * d_out


def _mutating_forward(x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], None]:
    x *= 1.0 + 1e-3
    return 2.0 * x, None


def _pool_shifted(d_out: np.ndarray[Any, Any], cache: Any) -> np.ndarray[Any, Any]:
    return np.roll(ops.avg_pool2d_backward(d_out, cache), 1, axis=-1)  # every window one column off


WRONG_BACKWARDS: list[tuple[str, Any, Any, Any, str]] = [
    # (label, forward, wrong backward, inputs from a generator, the start of the message)
    ("sign flip", ops.relu_forward, lambda d, c: -ops.relu_backward(d, c),
     lambda rng: (rng.standard_normal((3, 4)) + 0.1,), r"gradient of x \(input 0, shape \(3, 4\)\)"),
    ("missing factor 2", ops.rbf_forward, lambda d, c: (ops.rbf_backward(d, c)[0] / 2, ops.rbf_backward(d, c)[1]),
     lambda rng: (rng.standard_normal((3, 5)), rng.standard_normal((4, 5))), r"gradient of x \(input 0, shape \(3, 5\)\)"),
    ("transposed weight gradient", ops.linear_forward,
     lambda d, c: (lambda g: (g[0], g[1].T, g[2]))(ops.linear_backward(d, c)),
     _linear_square, r"gradient of w \(input 1, shape \(4, 4\)\)"),
    ("the gradient of the wrong input", _product_forward, lambda d, c: (d * c[0], d * c[1]),
     lambda rng: (rng.standard_normal(6), rng.standard_normal(6)), r"gradient of a \(input 0, shape \(6,\)\)"),
    ("bias summed over the wrong axis", ops.linear_forward,
     lambda d, c: (*ops.linear_backward(d, c)[:2], d.sum(axis=1)),
     _linear_square, r"gradient of b \(input 2, shape \(4,\)\)"),
    ("pool window off by one", ops.avg_pool2d_forward, _pool_shifted,
     lambda rng: (rng.standard_normal((2, 2, 6, 6)),), r"gradient of x \(input 0, shape \(2, 2, 6, 6\)\)"),
    ("ignores d_out", ops.sigmoid_forward, lambda d, c: ops.sigmoid_backward(np.ones_like(d), c),
     lambda rng: (rng.standard_normal((3, 3)),), r"gradient of x \(input 0, shape \(3, 3\)\)"),
    ("convolution instead of correlation", lambda x, w, b: ops.conv2d_forward(x, w, b, padding=1),
     lambda d, c: (lambda g: (g[0], np.flip(g[1], axis=(2, 3)), g[2]))(ops.conv2d_backward(d, c)),
     lambda rng: (rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)),
     r"gradient of w \(input 1, shape \(4, 3, 3, 3\)\)"),
    ("mutates its cache", _scale_forward, _scale_backward_that_mutates,
     lambda rng: (rng.standard_normal(5),), r"backward changed its cache .*: cache\.x$"),
    ("mutates its input", _mutating_forward, lambda d, c: 2.0 * d,
     lambda rng: (rng.standard_normal(5),), r"x \(input 0\) was changed by the forward or the backward"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "forward", "backward", "make", "message"), WRONG_BACKWARDS, ids=[row[0] for row in WRONG_BACKWARDS])
def test_wrong_backwards_are_caught_and_the_input_named(
    label: str, forward: Any, backward: Any, make: Any, message: str, rng: np.random.Generator
) -> None:
    with pytest.raises(GradientCheckError, match=f"^{message}") as caught:
        check_backward(forward, backward, make(rng), rng=rng)
    text = str(caught.value)
    assert "\n" not in text and "array(" not in text and len(text) < 400  # a few facts, no array dump
    if text.startswith("gradient of"):
        assert re.search(r"worst element \w+\[[\d, ]+\]: analytic -?[\d.e+-]+, numeric -?[\d.e+-]+, \|difference\| [\d.e+-]+ > "
                         r"tolerance [\d.e+-]+ \(atol 1e-07 \+ rtol 1e-05 \* \|numeric\|\); \d+ of \d+ checked elements outside$", text)


def _scale_backward(d_out: np.ndarray[Any, Any], cache: WritableCache) -> np.ndarray[Any, Any]:
    return 3.0 * d_out


CORRECT: dict[str, tuple[Any, Any]] = {  # label: (forward, backward) for the same inputs
    "sign flip": (ops.relu_forward, ops.relu_backward),
    "missing factor 2": (ops.rbf_forward, ops.rbf_backward),
    "transposed weight gradient": (ops.linear_forward, ops.linear_backward),
    "the gradient of the wrong input": (_product_forward, lambda d, c: (d * c[1], d * c[0])),
    "bias summed over the wrong axis": (ops.linear_forward, ops.linear_backward),
    "pool window off by one": (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
    "ignores d_out": (ops.sigmoid_forward, ops.sigmoid_backward),
    "convolution instead of correlation": (lambda x, w, b: ops.conv2d_forward(x, w, b, padding=1), ops.conv2d_backward),
    "mutates its cache": (_scale_forward, _scale_backward),
    "mutates its input": (lambda x: (2.0 * x, None), lambda d, c: 2.0 * d),
}


@pytest.mark.parametrize(("label", "make"), [(row[0], row[3]) for row in WRONG_BACKWARDS], ids=[row[0] for row in WRONG_BACKWARDS])
def test_the_correct_version_of_each_row_passes(label: str, make: Any, rng: np.random.Generator) -> None:
    """Each wrong backward above fails for its mistake, not because of the inputs it is given."""
    forward, backward = CORRECT[label]
    assert check_backward(forward, backward, make(rng), rng=rng).worst_ratio <= 1.0


class PlainCache:
    def __init__(self, x: np.ndarray[Any, Any]) -> None:
        self.x = x


@pytest.mark.parametrize("make_cache", [lambda x: {"x": x}, lambda x: [x], PlainCache, dataclasses.make_dataclass("Cache", ["x"])],
                         ids=["dict", "list", "plain object", "dataclass"])  # fmt: skip
def test_a_backward_that_writes_to_any_kind_of_cache_is_caught(make_cache: Any, rng: np.random.Generator) -> None:
    def backward(d_out: Any, cache: Any) -> Any:
        members = cache if isinstance(cache, list) else [cache["x"]] if isinstance(cache, dict) else [cache.x]
        members[0][...] = 0.0
        return 3.0 * d_out

    with pytest.raises(GradientCheckError, match=r"^backward changed its cache"):
        check_backward(lambda x: (3.0 * x, make_cache(x.copy())), backward, rng.standard_normal(4), rng=rng)


def test_a_backward_that_writes_to_d_out_is_caught(rng: np.random.Generator) -> None:
    def backward(d_out: Any, cache: Any) -> Any:
        d_out *= 2.0
        return d_out

    with pytest.raises(GradientCheckError, match=r"^backward changed d_out, the upstream gradient it was given"):
        check_backward(lambda x: (x.copy(), None), backward, rng.standard_normal(4), rng=rng)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("atol", -1.0, "atol: expected a finite number >= 0, got -1.0"),
        ("rtol", float("nan"), "rtol: expected a finite number >= 0, got nan"),
        ("atol", 0.0, "atol, rtol: expected at least one of them > 0, got both 0 (no difference would pass)"),
        ("eps", 0.0, "eps: expected a step > 0, got 0.0"),
        ("samples", 0, "samples: expected an integer >= 1, got 0"),
    ],
)
def test_bad_tolerances_and_sample_counts_are_refused(keyword: str, value: float, message: str) -> None:
    options: dict[str, Any] = {keyword: value, **({"rtol": 0.0} if keyword == "atol" and value == 0.0 else {})}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_backward(ops.relu_forward, ops.relu_backward, np.ones(3), **options)


def test_inputs_without_a_gradient_are_skipped_and_named(rng: np.random.Generator) -> None:
    x, w, b = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((2, 1, 3, 3)), rng.standard_normal(2)
    report = check_backward(ops.conv2d_forward, lambda d, c: ops.conv2d_backward(d, c, input_grad=False), (x, w, b),
                            options={"stride": 2}, rng=rng)  # fmt: skip
    assert report.skipped == ("x",) and [entry.name for entry in report.inputs] == ["w", "b"]
    named = check_backward(lambda *a: ops.linear_forward(*a), ops.linear_backward, _linear_square(rng), names=["x", "w", "b"], rng=rng)
    assert [entry.name for entry in named.inputs] == ["x", "w", "b"]


def test_large_inputs_are_sampled_or_checked_along_a_direction(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 3, 16, 16))
    w, b = rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    sampled = check_backward(ops.conv2d_forward, ops.conv2d_backward, (x, w, b), rng=rng, samples=100)
    assert [entry.checked for entry in sampled.inputs] == [100, 100, 5]
    directional = check_backward(ops.conv2d_forward, ops.conv2d_backward, (x, w, b), rng=rng, directional=True)
    assert [entry.checked for entry in directional.inputs] == [1, 1, 1]
    wrong = WRONG_BACKWARDS[7][2]
    with pytest.raises(GradientCheckError, match=r"^gradient of w \(input 1, along a random direction"):
        check_backward(ops.conv2d_forward, wrong, (x, w, b), rng=rng, directional=True)


@pytest.mark.parametrize(
    ("forward", "backward", "inputs", "error", "message"),
    [
        (lambda x: 2.0 * x, lambda d, c: 2.0 * d, (np.zeros(3),), TypeError, "forward: expected it to return (out, cache), got ndarray"),
        (ops.linear_forward, lambda d, c: ops.linear_backward(d, c)[:2], (np.ones((2, 3)), np.ones((4, 3)), np.ones(4)),
         ValueError, "backward: expected 3 gradients (one per input, None for none), got 2"),
        (ops.linear_forward, lambda d, c: (lambda g: (g[0], g[1][:2], g[2]))(ops.linear_backward(d, c)),
         (np.ones((2, 3)), np.ones((4, 3)), np.ones(4)), ValueError, "backward: the gradient of w (input 1) should have its shape (4, 3), got shape (2, 3)"),
        (losses.map_loss_forward, lambda d, c: losses.map_loss_backward(c, d), (np.ones((2, 3)), np.array([0, 1])),
         TypeError, "inputs[1]: expected a float64 array, got dtype int64 (pass labels and other arrays without a gradient through options=)"),
        (ops.relu_forward, ops.relu_backward, (np.ones(3, np.float32),), TypeError, "inputs[0]: gradient checks run in float64, got float32"),
        (ops.relu_forward, ops.relu_backward, (), ValueError, "inputs: expected at least one float64 array, got none"),
    ],
)  # fmt: skip
def test_wrong_use_gets_a_clear_error(forward: Any, backward: Any, inputs: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check_backward(forward, backward, inputs)


def test_losses_take_their_labels_through_options(rng: np.random.Generator) -> None:
    distances = np.abs(rng.standard_normal((3, 10))) * 3
    report = check_backward(losses.map_loss_forward, lambda d, cache: losses.map_loss_backward(cache, d), distances,
                            options={"labels": np.array([1, 4, 9])}, rng=rng)  # fmt: skip
    assert report.inputs[0].name == "distances"


def test_purity_checks_can_be_left_out(rng: np.random.Generator) -> None:
    """A backward that writes to its own cache still has a right gradient; purity=False checks only that."""
    report = check_backward(_scale_forward, _scale_backward_that_mutates, rng.standard_normal(5), rng=rng, purity=False)
    assert report.inputs[0].checked == 5
