"""The fast conv2d, pools, subsampling and squashing equal their plain-loop references to round-off."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lenet_fn import ops, reference

CONV_CONFIGS: list[tuple[tuple[int, ...], tuple[int, ...], Any, Any]] = [
    ((1, 1, 5, 5), (2, 1, 3, 3), 1, 0),
    ((4, 1, 32, 32), (6, 1, 5, 5), 1, 0),
    ((3, 6, 14, 14), (16, 6, 5, 5), 1, 0),
    ((2, 3, 7, 6), (4, 3, 3, 3), 2, 1),
    ((2, 2, 9, 11), (3, 2, 5, 4), (2, 3), 2),
    ((3, 2, 6, 6), (2, 2, 2, 2), 1, (1, 2)),
    ((2, 16, 5, 5), (8, 16, 5, 5), 1, 0),
]


def _assert_round_off(fast: np.ndarray[Any, Any], loop: np.ndarray[Any, Any]) -> None:
    assert fast.shape == loop.shape and fast.dtype == loop.dtype
    scale = max(1.0, float(np.abs(loop).max()))
    np.testing.assert_allclose(fast, loop, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding"), CONV_CONFIGS)
def test_conv2d_equals_the_loop_reference(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Any, padding: Any, rng: np.random.Generator
) -> None:
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    out, cache = ops.conv2d_forward(x, w, b, stride=stride, padding=padding)
    _assert_round_off(out, reference.conv2d_reference(x, w, b, stride=stride, padding=padding))
    d_out = rng.standard_normal(out.shape)
    fast = ops.conv2d_backward(d_out, cache)
    loop = reference.conv2d_backward_reference(d_out, x, w, stride=stride, padding=padding)
    for fast_gradient, loop_gradient in zip(fast, loop, strict=True):
        _assert_round_off(fast_gradient, loop_gradient)


POOL_SHAPES = [((2, 3, 6, 6), 2), ((4, 6, 28, 28), 2), ((1, 2, 7, 5), 2), ((2, 1, 9, 7), 3), ((3, 16, 10, 10), 2)]


@pytest.mark.parametrize(("shape", "size"), POOL_SHAPES)
def test_pools_equal_their_loop_references(shape: tuple[int, ...], size: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape)
    out, avg_cache = ops.avg_pool2d_forward(x, size=size)
    _assert_round_off(out, reference.avg_pool2d_reference(x, size=size))
    d_out = rng.standard_normal(out.shape)
    _assert_round_off(ops.avg_pool2d_backward(d_out, avg_cache), reference.avg_pool2d_backward_reference(d_out, x, size=size))

    out, max_cache = ops.max_pool2d_forward(x, size=size)
    _assert_round_off(out, reference.max_pool2d_reference(x, size=size))
    _assert_round_off(ops.max_pool2d_backward(d_out, max_cache), reference.max_pool2d_backward_reference(d_out, x, size=size))


def test_max_pool_equals_the_reference_on_ties(rng: np.random.Generator) -> None:
    x = np.maximum(rng.standard_normal((3, 4, 8, 8)), 0)  # after a ReLU, many windows are all zero
    out, cache = ops.max_pool2d_forward(x)
    d_out = rng.standard_normal(out.shape)
    _assert_round_off(ops.max_pool2d_backward(d_out, cache), reference.max_pool2d_backward_reference(d_out, x))


@pytest.mark.parametrize(("shape", "size"), POOL_SHAPES)
def test_subsample_equals_the_loop_reference(shape: tuple[int, ...], size: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape)
    coeff = rng.standard_normal(shape[1])
    bias = rng.standard_normal(shape[1])
    out, cache = ops.subsample_forward(x, coeff, bias, size=size)
    _assert_round_off(out, reference.subsample_reference(x, coeff, bias, size=size))
    d_out = rng.standard_normal(out.shape)
    fast = ops.subsample_backward(d_out, cache)
    loop = reference.subsample_backward_reference(d_out, x, coeff, size=size)
    for fast_gradient, loop_gradient in zip(fast, loop, strict=True):
        _assert_round_off(fast_gradient, loop_gradient)


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_partial_conv2d_equals_the_loop_reference(stride: int, padding: int, rng: np.random.Generator) -> None:
    table = rng.random((7, 5)) < 0.5
    table[:, 2] = True
    x = rng.standard_normal((3, 5, 9, 9))
    w = rng.standard_normal((int(table.sum()), 3, 3))
    b = rng.standard_normal(7)
    out, _ = ops.partial_conv2d_forward(x, w, b, table=table, stride=stride, padding=padding)
    _assert_round_off(out, reference.partial_conv2d_reference(x, w, b, table=table, stride=stride, padding=padding))


def _layouts(x: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """x as laid out in memory by the ops: contiguous, channel-major (conv outputs), strided, Fortran."""
    channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return [x, channel_major, np.repeat(x, 2, axis=2)[:, :, ::2], np.asfortranarray(x)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_squash_equals_the_loop_reference(dtype: type[np.floating[Any]], rng: np.random.Generator) -> None:
    x = (rng.standard_normal((3, 4, 9, 7)) * 4).astype(dtype)
    x[0, 0, 0, :5] = [0.0, -200.0, 200.0, -1e30, 1e30]  # exp overflows for the very negative ones
    # float64: round-off of A = 1.7159; float32: a few units in the last place
    atol = 1e-15 if dtype == np.float64 else 5e-7
    loop_out = reference.squash_reference(x)
    d_out = np.asarray(rng.standard_normal(x.shape), dtype=dtype)
    loop_d_x = reference.squash_backward_reference(d_out, x)
    for laid_out in _layouts(x):
        with np.errstate(all="raise"):
            out, cache = ops.squash_forward(laid_out)
        assert out.dtype == dtype and out.strides == np.empty_like(laid_out).strides
        np.testing.assert_allclose(out, loop_out, rtol=0, atol=atol)
        for d_out_laid_out in _layouts(d_out):
            d_x = ops.squash_backward(d_out_laid_out, cache)
            np.testing.assert_allclose(d_x, loop_d_x, rtol=0, atol=4 * atol * max(1.0, float(np.abs(d_out).max())))


def test_squash_works_on_chunks_of_a_large_array(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "_SQUASH_CHUNK", 1000)
    x = rng.standard_normal((3, 5, 17, 19)).astype(np.float32)  # 4,845 elements: 4 whole chunks and a part
    x_t = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    out, cache = ops.squash_forward(x_t)
    np.testing.assert_allclose(out, 1.7159 * np.tanh(np.float32(2 / 3) * x), rtol=0, atol=5e-7)
    d_x = ops.squash_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(d_x, 1.7159 * 2 / 3 * (1 - np.tanh(2 / 3 * x.astype(np.float64)) ** 2), rtol=0, atol=2e-6)


def test_the_references_validate_like_the_ops() -> None:
    with pytest.raises(ValueError, match="stride: expected an integer >= 1, got 0"):
        reference.conv2d_reference(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), np.zeros(1), stride=0)
    with pytest.raises(ValueError, match="size: expected a window no larger than the input 3x3, got 4"):
        reference.avg_pool2d_reference(np.zeros((1, 1, 3, 3)), size=4)
