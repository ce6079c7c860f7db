"""Every op: gradients against central differences, dtypes, purity, read-only caches, bad input."""

from __future__ import annotations

import re
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pytest

from lenet_fn import ops
from lenet_fn.arrays import FloatArray
from lenet_fn.gradcheck import check_backward
from tests.conftest import GradientRecorder
from tests.op_cases import OP_CASES, OpCase


def _cache_arrays(cache: Any) -> dict[str, npt.NDArray[Any]]:
    return {
        field.name: getattr(cache, field.name)
        for field in attrs.fields(type(cache))
        if isinstance(getattr(cache, field.name), np.ndarray)
    }


@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_backward_matches_central_differences(
    case: OpCase, rng: np.random.Generator, gradients: GradientRecorder
) -> None:
    """Every input of every op, at check_backward's default tolerances (the same for every op)."""
    report = check_backward(case.forward, case.backward, case.make_inputs(rng, np.float64), rng=rng)
    assert len(report.inputs) == len(case.make_inputs(rng, np.float64)) and not report.skipped
    gradients.record(case.op, report.worst_ratio)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_dtype_is_preserved(case: OpCase, dtype: type[np.floating[Any]], rng: np.random.Generator) -> None:
    inputs = case.make_inputs(rng, dtype)
    out, cache = case.forward(*inputs)
    assert out.dtype == dtype
    for gradient in case.backward(rng.standard_normal(out.shape).astype(dtype), cache):
        assert gradient.dtype == dtype


@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_ops_leave_arguments_and_cache_untouched(case: OpCase, rng: np.random.Generator) -> None:
    inputs = case.make_inputs(rng, np.float64)
    inputs_before = [value.copy() for value in inputs]
    out, cache = case.forward(*inputs)
    cache_before = {name: value.copy() for name, value in _cache_arrays(cache).items()}
    d_out = rng.standard_normal(out.shape)
    d_out_before = d_out.copy()
    case.backward(d_out, cache)
    case.backward(d_out, cache)  # a second backward from the same cache sees the same state
    for value, before in zip(inputs, inputs_before, strict=True):
        np.testing.assert_array_equal(value, before)
    for name, value in _cache_arrays(cache).items():
        np.testing.assert_array_equal(value, cache_before[name], err_msg=name)
    np.testing.assert_array_equal(d_out, d_out_before)


@pytest.mark.parametrize("case", OP_CASES, ids=lambda case: case.id)
def test_cache_is_frozen_and_read_only(case: OpCase, rng: np.random.Generator) -> None:
    inputs = case.make_inputs(rng, np.float64)
    _, cache = case.forward(*inputs)
    assert type(cache).__name__.endswith("Cache")
    first_field = attrs.fields(type(cache))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(cache, first_field, None)
    for name, value in _cache_arrays(cache).items():
        with pytest.raises(ValueError, match="read-only"):
            value[(0,) * value.ndim] = 1.0
        assert not value.flags.writeable, name
    for value in inputs:
        assert value.flags.writeable  # the caller's arrays keep their flags


def test_backward_twice_gives_the_same_gradients(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    out, cache = ops.conv2d_forward(x, w, np.zeros(4), stride=2, padding=1)
    d_out = rng.standard_normal(out.shape)
    first, second = ops.conv2d_backward(d_out, cache), ops.conv2d_backward(d_out, cache)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_skipping_the_input_gradient(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    out, cache = ops.conv2d_forward(x, w, b)
    d_out = rng.standard_normal(out.shape).astype(np.float32)
    d_x, d_w, d_b = ops.conv2d_backward(d_out, cache)
    none, d_w_only, d_b_only = ops.conv2d_backward(d_out, cache, input_grad=False)
    assert none is None and d_x.shape == x.shape
    np.testing.assert_array_equal(d_w, d_w_only)
    np.testing.assert_array_equal(d_b, d_b_only)

    linear_w = rng.standard_normal((6, 144)).astype(np.float32)
    out, linear_cache = ops.linear_forward(x.reshape(2, -1), linear_w, b)
    linear_none, d_w_linear, _ = ops.linear_backward(out, linear_cache, input_grad=False)
    assert linear_none is None
    np.testing.assert_array_equal(d_w_linear, ops.linear_backward(out, linear_cache)[1])


def test_squash_is_lecuns_function() -> None:
    x = np.array([-100.0, -1.0, 0.0, 1.0, 100.0])
    out, _ = ops.squash_forward(x)
    np.testing.assert_allclose(out, 1.7159 * np.tanh(2.0 / 3.0 * x), rtol=1e-15)
    assert out[3] == pytest.approx(1.0, abs=1e-4)  # squash(1) = 1 and squash(-1) = -1 by design
    assert out[1] == pytest.approx(-1.0, abs=1e-4)


def test_sigmoid_is_exact_at_the_extremes() -> None:
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(over="raise"):
        out, _ = ops.sigmoid_forward(x)
    np.testing.assert_allclose(out, [0.0, 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0], rtol=1e-14)
    assert out[1] > 0  # no underflow to 0 where the true value is representable


def test_max_pool_ties_send_the_gradient_to_the_first_maximum() -> None:
    x = np.zeros((1, 1, 2, 2))
    out, cache = ops.max_pool2d_forward(x)
    d_x = ops.max_pool2d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(d_x, [[[[1.0, 0.0], [0.0, 0.0]]]])


def test_conv2d_matches_a_hand_computed_example() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    out, _ = ops.conv2d_forward(x, w, np.array([0.5]), stride=2)
    np.testing.assert_array_equal(out, [[[[-4.5, -4.5], [-4.5, -4.5]]]])  # x[i, j] - x[i+1, j+1] + 0.5
    padded, _ = ops.conv2d_forward(x, w, np.array([0.0]), padding=1)
    assert padded.shape == (1, 1, 5, 5)
    assert padded[0, 0, 0, 0] == -x[0, 0, 0, 0] and padded[0, 0, 4, 4] == x[0, 0, 3, 3]


# --------------------------------------------------------------------------------------------
# bad input: one clear error naming the argument, what was expected and what was received


def _conv_args(dtype: npt.DTypeLike = np.float64) -> tuple[FloatArray, FloatArray, FloatArray]:
    return np.zeros((2, 3, 8, 8), dtype), np.zeros((4, 3, 3, 3), dtype), np.zeros(4, dtype)


def test_conv2d_rejects_wrong_rank() -> None:
    _, w, b = _conv_args()
    message = re.escape("x: expected a 4-D array of shape (N, C, H, W), got shape (3, 8, 8)")
    with pytest.raises(ValueError, match=message):
        ops.conv2d_forward(np.zeros((3, 8, 8)), w, b)
    with pytest.raises(ValueError, match=re.escape("w: expected a 4-D array of shape (F, C, kh, kw), got shape (4, 9)")):
        ops.conv2d_forward(np.zeros((2, 3, 8, 8)), np.zeros((4, 9)), b)


def test_conv2d_rejects_channel_mismatch() -> None:
    x, _, b = _conv_args()
    message = re.escape("w: expected 3 input channels (x has shape (2, 3, 8, 8)), got w of shape (4, 2, 3, 3)")
    with pytest.raises(ValueError, match=message):
        ops.conv2d_forward(x, np.zeros((4, 2, 3, 3)), b)


def test_conv2d_rejects_a_kernel_larger_than_the_padded_input() -> None:
    message = re.escape("w: kernel 5x5 is larger than the padded input 4x4 (x is 2x2, padding (1, 1))")
    with pytest.raises(ValueError, match=message):
        ops.conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 5, 5)), np.zeros(1), padding=1)


@pytest.mark.parametrize(
    ("keyword", "value", "error", "message"),
    [
        ("stride", 0, ValueError, "stride: expected an integer >= 1, got 0"),
        ("stride", 1.5, TypeError, "stride: expected an integer >= 1, got float 1.5"),
        ("stride", (1, 2, 3), ValueError, "stride: expected an integer or a pair (height, width), got (1, 2, 3)"),
        ("padding", -1, ValueError, "padding: expected an integer >= 0, got -1"),
    ],
)
def test_conv2d_rejects_bad_hyperparameters(keyword: str, value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ops.conv2d_forward(*_conv_args(), **{keyword: value})  # type: ignore[arg-type]


def test_conv2d_rejects_wrong_bias_and_mixed_dtypes() -> None:
    x, w, _ = _conv_args()
    with pytest.raises(ValueError, match=re.escape("b: expected shape (4,) (one bias per output channel of w), got (3,)")):
        ops.conv2d_forward(x, w, np.zeros(3))
    with pytest.raises(TypeError, match=re.escape("w: expected dtype float64 (the dtype of x), got float32")):
        ops.conv2d_forward(x, w.astype(np.float32), np.zeros(4))


def test_ops_reject_non_float_and_non_arrays() -> None:
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int64"):
        ops.relu_forward(np.arange(4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x: expected a numpy.ndarray of float32 or float64, got list"):
        ops.tanh_forward([1.0, 2.0])  # type: ignore[arg-type]


def test_backward_rejects_a_gradient_of_the_wrong_shape_or_dtype() -> None:
    out, cache = ops.conv2d_forward(*_conv_args())
    with pytest.raises(ValueError, match=re.escape("d_out: expected shape (2, 4, 6, 6) (the shape of the forward output), got (2, 4, 5, 5)")):
        ops.conv2d_backward(np.zeros((2, 4, 5, 5)), cache)
    with pytest.raises(TypeError, match=re.escape("d_out: expected dtype float64 (the dtype of the forward output), got float32")):
        ops.conv2d_backward(out.astype(np.float32), cache)


def test_linear_and_rbf_reject_feature_mismatch() -> None:
    with pytest.raises(ValueError, match=re.escape("w: expected 5 input features (x has shape (2, 5)), got w of shape (3, 4)")):
        ops.linear_forward(np.zeros((2, 5)), np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=re.escape("x: expected a 2-D array of shape (N, in), got shape (2, 5, 1)")):
        ops.linear_forward(np.zeros((2, 5, 1)), np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=re.escape("centers: expected 84 columns (x has shape (1, 84)), got centers of shape (10, 83)")):
        ops.rbf_forward(np.zeros((1, 84)), np.zeros((10, 83)))


def test_pools_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match=re.escape("size: expected a window no larger than the input 3x3, got 4")):
        ops.max_pool2d_forward(np.zeros((1, 1, 3, 3)), size=4)
    with pytest.raises(ValueError, match="size: expected an integer >= 1, got 0"):
        ops.avg_pool2d_forward(np.zeros((1, 1, 3, 3)), size=0)
    with pytest.raises(ValueError, match=re.escape("coeff: expected shape (2,) (one coefficient per channel of x), got (3,)")):
        ops.subsample_forward(np.zeros((1, 2, 4, 4)), np.zeros(3), np.zeros(2))


def test_partial_conv2d_rejects_bad_tables_and_weights() -> None:
    x = np.zeros((1, 3, 6, 6))
    table = np.array([[True, False, True], [False, True, False]])
    with pytest.raises(TypeError, match="table: expected a boolean numpy.ndarray of shape .F, C., got int64"):
        ops.partial_conv2d_forward(x, np.zeros((3, 3, 3)), np.zeros(2), table=table.astype(np.int64))
    with pytest.raises(ValueError, match=re.escape("table: expected shape (2, 3) (output maps, input maps of x), got (2, 4)")):
        ops.partial_conv2d_forward(x, np.zeros((3, 3, 3)), np.zeros(2), table=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=re.escape("w: expected 3 kernels (one per connection of table), got w of shape (6, 3, 3)")):
        ops.partial_conv2d_forward(x, np.zeros((6, 3, 3)), np.zeros(2), table=table)
    with pytest.raises(ValueError, match=re.escape("table: expected every output map to have an input, rows [1] are empty")):
        ops.partial_conv2d_forward(x, np.zeros((2, 3, 3)), np.zeros(2), table=np.array([[1, 0, 1], [0, 0, 0]], bool))


def test_partial_conv2d_missing_connections_have_no_effect(rng: np.random.Generator) -> None:
    table = np.array([[True, False], [True, True]])
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 3, 3))
    out, _ = ops.partial_conv2d_forward(x, w, np.zeros(2), table=table)
    changed = x.copy()
    changed[:, 1] += 10.0  # input map 1 does not feed output map 0
    out_changed, _ = ops.partial_conv2d_forward(changed, w, np.zeros(2), table=table)
    np.testing.assert_array_equal(out[:, 0], out_changed[:, 0])
    assert not np.allclose(out[:, 1], out_changed[:, 1])


def test_activation_hyperparameters_are_checked() -> None:
    with pytest.raises(ValueError, match="slope: expected a finite number > 0, got -0.1"):
        ops.leaky_relu_forward(np.zeros(3), slope=-0.1)
    with pytest.raises(ValueError, match="alpha: expected a finite number > 0, got 0.0"):
        ops.elu_forward(np.zeros(3), alpha=0.0)
