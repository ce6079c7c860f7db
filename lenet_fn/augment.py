"""Random affine distortions of training images, as in LeCun et al. 1998 (Sec. III-C, "distortions").

Each image gets its own warp: horizontal and vertical translation, scaling, squeezing (the
width scaled by ``q`` and the height by ``1 / q``) and horizontal shearing, all about the image
centre, sampled bilinearly. Pixels that come from outside the image take a fill value (the
background). Vectorised over the batch; the randomness comes from an explicit generator.
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, check_float_array, check_rng, number_in_range


MAX_TRANSLATE = 28.0
"""Shifts are below an MNIST image's width: one as wide moves the whole digit out of the frame."""
MAX_SHEAR = 2.0
"""Shears are below 2: one of 2 moves the top and bottom rows of a 28-pixel image a width apart."""


@attrs.frozen
class DistortionRanges:
    """How far the random warps go; every parameter is drawn uniformly in its range.

    Attributes:
        translate: shift in pixels along each axis, in ``[-translate, translate]`` (below
            ``MAX_TRANSLATE``).
        scale: zoom factor in ``[1 - scale, 1 + scale]``.
        squeeze: width factor ``q`` in ``[1 - squeeze, 1 + squeeze]``, height factor ``1 / q``.
        shear: horizontal shear ``x += shear * y`` (about the centre), in ``[-shear, shear]``
            (below ``MAX_SHEAR``).
    """

    translate: float = attrs.field(default=2.0, validator=number_in_range("translate", 0.0, MAX_TRANSLATE))
    scale: float = attrs.field(default=0.1, validator=number_in_range("scale", 0.0, 1.0))
    squeeze: float = attrs.field(default=0.1, validator=number_in_range("squeeze", 0.0, 1.0))
    shear: float = attrs.field(default=0.15, validator=number_in_range("shear", 0.0, MAX_SHEAR))


def random_affine(
    rng: np.random.Generator, count: int, ranges: DistortionRanges = DistortionRanges()
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``count`` random forward warps ``p -> matrix @ p + offset`` (coordinates (row, column) about the centre).

    Args:
        rng: the random generator.
        count: how many warps.
        ranges: their ranges.

    Returns:
        ``(matrices, offsets)`` of shapes (count, 2, 2) and (count, 2).
    """
    rng = check_rng(rng)
    scale = rng.uniform(1 - ranges.scale, 1 + ranges.scale, size=count)
    squeeze = rng.uniform(1 - ranges.squeeze, 1 + ranges.squeeze, size=count)
    shear = rng.uniform(-ranges.shear, ranges.shear, size=count)
    offsets = rng.uniform(-ranges.translate, ranges.translate, size=(count, 2))
    matrices = np.zeros((count, 2, 2))
    matrices[:, 0, 0] = scale / squeeze  # rows (y): height / q
    matrices[:, 1, 0] = scale * squeeze * shear  # x gains shear * y
    matrices[:, 1, 1] = scale * squeeze  # columns (x): width * q
    return matrices, offsets


def affine_warp(
    images: FloatArray, matrices: npt.NDArray[np.float64], offsets: npt.NDArray[np.float64], *, fill: float
) -> FloatArray:
    """Warps each image by its forward map ``p -> matrix @ p + offset`` about the centre, bilinearly.

    Output pixel ``p`` takes the input at ``matrix^-1 @ (p - offset)`` (about the centre); positions
    outside the image take ``fill``. Every output is a convex combination of input pixels and
    ``fill``, so it stays within their range.

    Args:
        images: shape (N, C, H, W).
        matrices: one invertible 2 x 2 map per image, (row, column) order, shape (N, 2, 2).
        offsets: one translation (rows, columns) per image, shape (N, 2).
        fill: the value outside the image (the background).

    Returns:
        The warped images, shape (N, C, H, W), in the dtype of ``images``.
    """
    images = check_float_array("images", images, layout="(N, C, H, W)")
    n, c, h, w = images.shape
    if matrices.shape != (n, 2, 2) or offsets.shape != (n, 2):
        raise ValueError(f"matrices, offsets: expected shapes ({n}, 2, 2) and ({n}, 2), got {matrices.shape} and {offsets.shape}")
    inverse = np.linalg.inv(matrices)  # (N, 2, 2)
    centre = ((h - 1) / 2, (w - 1) / 2)
    rows, columns = np.meshgrid(np.arange(h) - centre[0], np.arange(w) - centre[1], indexing="ij")
    moved = [rows.reshape(1, h * w) - offsets[:, 0, None], columns.reshape(1, h * w) - offsets[:, 1, None]]  # (N, HW) each
    source = [inverse[:, axis, 0, None] * moved[0] + inverse[:, axis, 1, None] * moved[1] + centre[axis] for axis in range(2)]
    return _sample(images, source[0], source[1], fill=fill).reshape(n, c, h, w)


def bilinear_sample(images: FloatArray, positions: npt.NDArray[np.float64], *, fill: float) -> FloatArray:
    """The images read at fractional (row, column) positions, bilinearly; outside the image, ``fill``.

    Args:
        images: shape (N, C, H, W).
        positions: where to read each image, (row, column), shape (N, P, 2).
        fill: the value outside the image.

    Returns:
        Shape (N, C, P), in the dtype of ``images``: each value a convex combination of pixels and ``fill``.
    """
    return _sample(images, positions[..., 0], positions[..., 1], fill=fill)


def _clipped(values: npt.NDArray[np.intp], low: int, high: int) -> npt.NDArray[np.intp]:
    """``values`` limited to [low, high], in place (``np.clip`` costs three times as much here)."""
    np.maximum(values, low, out=values)
    np.minimum(values, high, out=values)
    return values


def _sample(images: FloatArray, rows: npt.NDArray[np.float64], columns: npt.NDArray[np.float64], *, fill: float) -> FloatArray:
    """``bilinear_sample`` at the positions (``rows[n, p]``, ``columns[n, p]``), each of shape (N, P).

    The four corners of every position are gathered from one flat, fill-bordered copy of the images
    by linear index; the weights are combined in ``bilinear_sample``'s order of operations.
    """
    n, c, h, w = images.shape
    points = rows.shape[1]
    top, left = np.floor(rows), np.floor(columns)
    down = (rows - top).astype(images.dtype)[:, None, :]
    right = (columns - left).astype(images.dtype)[:, None, :]
    padded = np.full((n, c, h + 2, w + 2), fill, dtype=images.dtype)  # a border of fill around each image
    padded[:, :, 1:-1, 1:-1] = images
    flat = padded.reshape(-1)
    # the start of each image and channel in ``flat``, then each corner's row and column in the
    # padded image; anything outside lands on the fill border
    starts = (np.arange(n)[:, None, None] * c + np.arange(c)[None, :, None]) * ((h + 2) * (w + 2))
    top_rows, left_columns = top.astype(np.intp), left.astype(np.intp)
    row_starts = [(_clipped(top_rows + step, -1, h) + 1) * (w + 2) for step in (0, 1)]
    column_offsets = [_clipped(left_columns + step, -1, w) + 1 for step in (0, 1)]

    def corner(row: int, column: int) -> FloatArray:
        picked: FloatArray = np.take(flat, starts + (row_starts[row] + column_offsets[column])[:, None, :])
        return picked

    upper = corner(0, 0) * (1 - right) + corner(0, 1) * right
    lower = corner(1, 0) * (1 - right) + corner(1, 1) * right
    out: FloatArray = upper * (1 - down) + lower * down
    return out.reshape(n, c, points)


def distort(
    images: FloatArray, rng: np.random.Generator, *, fill: float, ranges: DistortionRanges = DistortionRanges()
) -> FloatArray:
    """Each image warped by its own random affine map (``random_affine`` then ``affine_warp``).

    Args:
        images: shape (N, C, H, W).
        rng: the random generator.
        fill: the background value.
        ranges: how far the warps go.

    Returns:
        The distorted images, shape (N, C, H, W).
    """
    images = check_float_array("images", images, layout="(N, C, H, W)")
    matrices, offsets = random_affine(rng, images.shape[0], ranges)
    return affine_warp(images, matrices, offsets, fill=fill)
