"""The cache-free forward pass (lenet_fn.inference) against the plain-loop references and against
the training forward: equal to float64 round-off, and equal predictions in float32."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lenet_fn import inference, reference
from lenet_fn.batch import predict_outputs
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.models import C3_TABLE, LENET5, lenet5_forward
from lenet_fn.parallel import Workers
from lenet_fn.params import PartialConv2dParams
from lenet_fn.shipped import pretrained


def _close(fast: npt.NDArray[Any], loops: npt.NDArray[Any]) -> None:
    np.testing.assert_allclose(fast, loops, rtol=1e-12, atol=1e-12 * float(np.abs(loops).max()))


@pytest.mark.parametrize(("size", "channels", "kernel", "block"),
                         [(32, 1, 5, 1), (32, 1, 5, 4), (32, 1, 5, 7), (32, 1, 5, 28), (14, 6, 5, 1), (14, 6, 5, 5),
                          (14, 6, 5, 10), (5, 16, 5, 1), (7, 3, 2, 3)])  # fmt: skip
def test_the_banded_channel_last_convolution_is_the_loop_convolution(
    rng: np.random.Generator, size: int, channels: int, kernel: int, block: int
) -> None:
    x = rng.standard_normal((2, channels, size, size))
    w, b = rng.standard_normal((4, channels, kernel, kernel)), rng.standard_normal(4)
    fast = inference.conv_channels_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, block=block)
    _close(fast.transpose(0, 3, 1, 2), reference.conv2d_reference(x, w, b))


def test_a_block_that_does_not_divide_the_output_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"^block: expected a divisor of the output width 10, got 3$"):
        inference.conv_channels_last(np.zeros((1, 14, 14, 6)), np.zeros((16, 6, 5, 5)), np.zeros(16), block=3)


@pytest.mark.parametrize("size", [28, 10, 9])
def test_the_channel_last_subsampling_is_the_loop_subsampling(rng: np.random.Generator, size: int) -> None:
    x = rng.standard_normal((2, 6, size, size))
    coeff, bias = rng.standard_normal(6), rng.standard_normal(6)
    fast = inference.subsample_channels_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), coeff, bias)
    _close(fast.transpose(0, 3, 1, 2), reference.subsample_reference(x, coeff, bias))


def test_dense_kernels_put_each_connection_where_the_table_says(rng: np.random.Generator) -> None:
    params = PartialConv2dParams(w=rng.standard_normal((int(C3_TABLE.sum()), 5, 5)), b=np.zeros(16))
    dense = inference.dense_kernels(params, C3_TABLE)
    np.testing.assert_array_equal(dense[~C3_TABLE], 0)
    np.testing.assert_array_equal(dense[C3_TABLE], params.w)


@pytest.mark.parametrize("count", [1, 5, 64])
def test_lenet5_infer_is_lenet5_forward_to_round_off(rng: np.random.Generator, count: int) -> None:
    params = LENET5.init(rng, dtype=np.float64)
    x = rng.standard_normal((count, 1, 32, 32))
    before = x.copy()
    _close(inference.lenet5_infer(params, x, C3_TABLE), lenet5_forward(params, x)[0])
    np.testing.assert_array_equal(x, before)


def test_evaluation_through_infer_predicts_what_the_forward_pass_predicts() -> None:
    params, _ = pretrained()
    images = load_mnist(repository_dataset_dir()).test_images[:2000]
    x = LENET5.prepare(images, np.float32)
    with Workers(2) as workers:
        fast = predict_outputs(LENET5, params, x, workers=workers)
    slow = lenet5_forward(params, x)[0]
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(LENET5.predict(fast), LENET5.predict(slow))


def test_lenet5_infer_refuses_other_images(rng: np.random.Generator) -> None:
    params = LENET5.init(rng)
    with pytest.raises(ValueError, match=r"^x: expected shape \(2, 1, 32, 32\) \(prepared 32x32 images\), got \(2, 1, 28, 28\)$"):
        inference.lenet5_infer(params, np.zeros((2, 1, 28, 28), np.float32), C3_TABLE)
