"""The argument checks: each error names the argument, the expectation and what was received."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lenet_fn.arrays import (
    check_float_array,
    check_float_dtype,
    check_int,
    check_int_pair,
    check_labels,
    check_positive_float,
    check_rng,
    layout_rank,
    readonly_view,
)


def test_layout_rank() -> None:
    assert layout_rank("(N, C, H, W)") == 4
    assert layout_rank("(F,)") == 1
    assert layout_rank("(N, K)") == 2


def test_check_float_array() -> None:
    x = np.zeros((2, 3), np.float32)
    assert check_float_array("x", x, layout="(N, K)") is x
    with pytest.raises(ValueError, match=re.escape("x: expected a 1-D array of shape (F,), got shape (2, 3)")):
        check_float_array("x", x, layout="(F,)")
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got float16"):
        check_float_array("x", x.astype(np.float16))


def test_check_labels() -> None:
    labels = np.array([0, 9, 3], dtype=np.uint8)
    assert check_labels("labels", labels, count=3, num_classes=10) is labels
    with pytest.raises(TypeError, match="labels: expected an integer array of class labels, got dtype bool"):
        check_labels("labels", np.array([True, False, True]), count=3, num_classes=10)
    with pytest.raises(TypeError, match="labels: expected a numpy.ndarray of integer labels, got list"):
        check_labels("labels", [0, 1, 2], count=3, num_classes=10)


def test_integer_and_number_checks() -> None:
    assert check_int("size", np.int64(3), minimum=1) == 3
    with pytest.raises(TypeError, match="size: expected an integer >= 1, got bool True"):
        check_int("size", True, minimum=1)
    assert check_int_pair("stride", (2, 3), minimum=1) == (2, 3)
    assert check_int_pair("stride", 2, minimum=1) == (2, 2)
    with pytest.raises(ValueError, match=re.escape("stride: expected an integer >= 1, got 0")):
        check_int_pair("stride", (1, 0), minimum=1)
    assert check_positive_float("slope", 2) == 2.0
    with pytest.raises(ValueError, match="slope: expected a finite number > 0, got inf"):
        check_positive_float("slope", float("inf"))
    with pytest.raises(TypeError, match="slope: expected a positive number, got str '1'"):
        check_positive_float("slope", "1")


def test_dtype_and_rng_checks() -> None:
    assert check_float_dtype("dtype", "float32") == np.float32
    assert check_float_dtype("dtype", np.float64) == np.float64
    with pytest.raises(TypeError, match="dtype: expected float32 or float64, got 'pixels'"):
        check_float_dtype("dtype", "pixels")
    generator = np.random.default_rng(1)
    assert check_rng(generator) is generator
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        check_rng(np.random.RandomState(1))


def test_readonly_view_leaves_the_original_writable() -> None:
    array = np.zeros(3)
    view = readonly_view(array)
    assert array.flags.writeable and not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1.0
