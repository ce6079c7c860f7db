"""The RBF prototypes: 10 distinct +-1 bitmaps of 7 x 12, and their ASCII rendering."""

from __future__ import annotations

import numpy as np
import pytest

from lenet_fn.bitmaps import BITMAP_HEIGHT, BITMAP_WIDTH, rbf_centers, render_bitmap

DIGIT_SEVEN = """#######
.....##
.....##
....##.
...##..
...##..
..##...
..##...
..##...
..##...
.......
......."""


def test_ten_distinct_bitmaps_of_plus_minus_one() -> None:
    centers = rbf_centers()
    assert centers.shape == (10, BITMAP_WIDTH * BITMAP_HEIGHT) == (10, 84)
    assert centers.dtype == np.float32 and not centers.flags.writeable
    assert set(np.unique(centers)) == {-1.0, 1.0}
    distances = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    off_diagonal = distances[~np.eye(10, dtype=bool)]
    assert off_diagonal.min() > 0  # every pair differs
    assert rbf_centers(np.float64).dtype == np.float64


def test_rendering_matches_the_prototype_file() -> None:
    assert render_bitmap(7) == DIGIT_SEVEN
    assert render_bitmap(rbf_centers()[7]) == DIGIT_SEVEN
    assert render_bitmap(np.zeros(84), on="@", off=" ").strip() == ""


def test_rendering_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="values: expected a digit 0-9 or 84 values, got 10"):
        render_bitmap(10)
    with pytest.raises(ValueError, match=r"values: expected a digit 0-9 or 84 values of shape \(84,\), got shape \(83,\)"):
        render_bitmap(np.zeros(83))
