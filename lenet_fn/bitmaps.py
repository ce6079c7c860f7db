"""The 10 RBF output prototypes of LeNet-5: 7 x 12 bitmaps of +-1, one per digit.

Stylised after Fig. 3 of LeCun et al. 1998 (the 7x12 ASCII set); these are the exact values of the
seed implementation (the project's ``rbf_bitmaps.txt``). ``#`` is +1 and ``.`` is -1; the 84 values of
a digit are its 12 rows read left to right, top to bottom.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import FloatArray, check_float_dtype, check_int

BITMAP_WIDTH = 7
BITMAP_HEIGHT = 12

_BITMAPS: tuple[str, ...] = (
    # digit 0
    (
        ".#####."
        "......."
        "..###.."
        ".##.##."
        "##...##"
        "##...##"
        "##...##"
        "##...##"
        ".##.##."
        "..###.."
        "......."
        "......."
    ),
    # digit 1
    (
        "...##.."
        "..###.."
        ".####.."
        "...##.."
        "...##.."
        "...##.."
        "...##.."
        "...##.."
        "...##.."
        ".######"
        "......."
        "......."
    ),
    # digit 2
    (
        ".#####."
        "......."
        ".#####."
        "##...##"
        "#....##"
        "....##."
        "..###.."
        ".##...."
        "##....."
        "#######"
        "......."
        "......."
    ),
    # digit 3
    (
        "#######"
        ".....##"
        "....##."
        "...##.."
        "..####."
        ".....##"
        ".....##"
        ".....##"
        "##...##"
        ".#####."
        "......."
        "......."
    ),
    # digit 4
    (
        ".#####."
        "......."
        "......."
        ".##..##"
        ".##..##"
        "###..##"
        "##...##"
        "##...##"
        "##..###"
        ".######"
        ".....##"
        ".....##"
    ),
    # digit 5
    (
        ".#####."
        "......."
        "#######"
        "##....."
        "##....."
        ".####.."
        "..####."
        ".....##"
        "##...##"
        ".#####."
        "......."
        "......."
    ),
    # digit 6
    (
        "..####."
        ".##...."
        "##....."
        "##....."
        "######."
        "###..##"
        "##...##"
        "##...##"
        "###..##"
        ".#####."
        "......."
        "......."
    ),
    # digit 7
    (
        "#######"
        ".....##"
        ".....##"
        "....##."
        "...##.."
        "...##.."
        "..##..."
        "..##..."
        "..##..."
        "..##..."
        "......."
        "......."
    ),
    # digit 8
    (
        ".#####."
        "##...##"
        "##...##"
        "##...##"
        ".#####."
        "##...##"
        "##...##"
        "##...##"
        "##...##"
        ".#####."
        "......."
        "......."
    ),
    # digit 9
    (
        ".#####."
        "##..###"
        "##...##"
        "##...##"
        "##..###"
        ".######"
        ".....##"
        ".....##"
        "....##."
        ".####.."
        "......."
        "......."
    ),
)


def rbf_centers(dtype: npt.DTypeLike = np.float32) -> FloatArray:
    """The prototypes as RBF centers, read-only.

    Args:
        dtype: float32 or float64.

    Returns:
        Array of shape (10, 84) with values +-1; row ``d`` is digit ``d``.
    """
    return _centers(check_float_dtype("dtype", dtype))


@functools.cache
def _centers(dtype: np.dtype[Any]) -> FloatArray:
    """The prototypes, built once per dtype (read-only, so one array serves every caller)."""
    centers = np.array([[1.0 if pixel == "#" else -1.0 for pixel in bitmap] for bitmap in _BITMAPS], dtype=dtype)
    centers.flags.writeable = False
    return centers


def render_bitmap(values: FloatArray | int, *, on: str = "#", off: str = ".") -> str:
    """ASCII rendering of a 7 x 12 bitmap: a digit's prototype, or any 84 values (e.g. an F6 output).

    Args:
        values: a digit 0-9, or 84 values, shape (84,); a value > 0 is drawn ``on``.
        on: the character for positive values.
        off: the character for the others.

    Returns:
        12 lines of 7 characters, joined by newlines.
    """
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        digit = check_int("values", values, minimum=0)
        if digit > 9:
            raise ValueError(f"values: expected a digit 0-9 or 84 values, got {digit}")
        pixels = rbf_centers()[digit]
    else:
        pixels = np.asarray(values)
        if pixels.shape != (BITMAP_WIDTH * BITMAP_HEIGHT,):
            raise ValueError(f"values: expected a digit 0-9 or 84 values of shape (84,), got shape {pixels.shape}")
    lines = [
        "".join(on if pixel > 0 else off for pixel in pixels[row * BITMAP_WIDTH : (row + 1) * BITMAP_WIDTH])
        for row in range(BITMAP_HEIGHT)
    ]
    return "\n".join(lines)
