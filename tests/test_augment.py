"""Affine distortions: identity, exact one-pixel shifts, value range, seeding, bad input."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from lenet_fn import reference
from lenet_fn.augment import DistortionRanges, affine_warp, bilinear_sample, distort, random_affine


def _identity(count: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return np.repeat(np.eye(2)[None], count, axis=0), np.zeros((count, 2))


def test_identity_parameters_return_the_image_unchanged(rng: np.random.Generator) -> None:
    images = rng.standard_normal((3, 2, 7, 9)).astype(np.float32)
    warped = affine_warp(images, *_identity(3), fill=-0.1)
    assert warped.dtype == np.float32 and warped.shape == images.shape
    np.testing.assert_array_equal(warped, images)


@pytest.mark.parametrize(("rows", "columns"), [(1, 0), (0, 1), (-1, 0), (0, -1), (2, -1)])
def test_a_translation_by_whole_pixels_equals_a_shifted_image(rows: int, columns: int, rng: np.random.Generator) -> None:
    images = rng.standard_normal((2, 1, 8, 8))
    matrices, offsets = _identity(2)
    offsets[:] = [rows, columns]
    warped = affine_warp(images, matrices, offsets, fill=-5.0)
    expected = np.full_like(images, -5.0)
    h, w = images.shape[2:]
    expected[:, :, max(rows, 0) : h + min(rows, 0), max(columns, 0) : w + min(columns, 0)] = images[
        :, :, max(-rows, 0) : h + min(-rows, 0), max(-columns, 0) : w + min(-columns, 0)
    ]
    np.testing.assert_allclose(warped, expected, rtol=0, atol=1e-12)


def test_random_warps_stay_within_the_input_range_and_are_seeded(rng: np.random.Generator) -> None:
    images = rng.uniform(-0.1, 1.175, size=(64, 1, 32, 32))
    ranges = DistortionRanges(translate=3, scale=0.2, squeeze=0.2, shear=0.3)
    warped = distort(images, np.random.default_rng(5), fill=-0.1, ranges=ranges)
    assert warped.min() >= -0.1 - 1e-12 and warped.max() <= images.max() + 1e-12
    np.testing.assert_array_equal(warped, distort(images, np.random.default_rng(5), fill=-0.1, ranges=ranges))
    assert not np.allclose(warped, images)
    matrices, offsets = random_affine(np.random.default_rng(1), 1000, ranges)
    assert np.abs(offsets).max() <= 3 and np.abs(offsets).max() > 2.9
    determinants = np.linalg.det(matrices)
    assert determinants.min() >= 0.8**2 - 1e-12 and determinants.max() <= 1.2**2 + 1e-12  # squeeze keeps the area


def test_a_shear_moves_rows_sideways_in_proportion_to_their_height() -> None:
    image = np.zeros((1, 1, 9, 9))
    image[0, 0, :, 4] = 1.0  # a vertical bar through the centre
    matrices, offsets = _identity(1)
    matrices[0, 1, 0] = 0.5  # x += 0.5 * y
    warped = affine_warp(image, matrices, offsets, fill=0.0)[0, 0]
    assert warped[4, 4] == 1.0  # the centre row stays
    assert warped[8, 6] == 1.0 and warped[0, 2] == 1.0  # 4 rows down: 2 columns right; 4 rows up: 2 left


def test_bad_ranges_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("scale: expected a number in [0.0, 1.0), got 1.5")):
        DistortionRanges(scale=1.5)
    with pytest.raises(ValueError, match=re.escape("matrices, offsets: expected shapes (2, 2, 2) and (2, 2), got (1, 2, 2) and (2, 2)")):
        affine_warp(np.zeros((2, 1, 4, 4)), np.zeros((1, 2, 2)), np.zeros((2, 2)), fill=0.0)


def test_bilinear_sampling_is_the_loop_reference_inside_on_the_border_and_far_outside(rng: np.random.Generator) -> None:
    images = rng.standard_normal((3, 2, 7, 9))
    positions = np.concatenate([
        rng.uniform(-0.99, [6.99, 8.99], size=(3, 40, 2)),  # inside and within a pixel of the edge
        rng.uniform(-30, 40, size=(3, 40, 2)),  # far outside too
        np.array([[[-1.0, -1.0], [6.0, 8.0], [0.0, 8.5], [7.0, 0.0]]] * 3),  # corners and edges exactly
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(
        bilinear_sample(images, positions, fill=0.25), reference.bilinear_sample_reference(images, positions, fill=0.25), rtol=1e-12, atol=1e-12
    )
