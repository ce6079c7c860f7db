"""Preparing a picture of a digit the way MNIST's digits were prepared (``mnist_style``).

The background is fitted as a smooth surface, so light falling unevenly across a sheet is not taken
for ink, and the ink is what stands out of it, in either polarity (dark ink as the fraction of the
light it absorbs). The strokes are the pixels above Otsu's threshold; a picture whose marks do not
stand out of its noise, or form a pattern or a blot rather than strokes, holds no digit. A pen much
finer than MNIST's, relative to the digit's size, is widened towards it. Then as MNIST's digits
were prepared (LeCun, Cortes, Burges): cropped to the digit; scaled, keeping the aspect ratio, to
fit a 20 x 20 box, the stroke cores at 255; placed in a 28 x 28 image with its centre of mass at
the centre (MNIST's digits are light on dark).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lenet_fn.augment import bilinear_sample
from lenet_fn.images import GrayImage, ImageError

# --------------------------------------------------------------------------------------------
# filters: smoothing, growing, thresholding


def _block_mean(image: GrayImage, factor: int) -> GrayImage:
    """The means of ``factor`` x ``factor`` blocks (a last partial row or column of blocks dropped), rows first, so
    nothing as large as the image is copied."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    rows = image[:h].reshape(h // factor, factor, image.shape[1]).mean(axis=1)
    reduced: GrayImage = rows[:, :w].reshape(h // factor, w // factor, factor).mean(axis=2)
    return reduced


def _robust_sigma(values: GrayImage) -> float:
    """The standard deviation of the majority of the values, from their median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _box_smoothed(image: GrayImage, radius: int) -> GrayImage:
    """The mean over a (2 radius + 1)-square window, edges repeated, shape unchanged."""
    for axis in (0, 1):
        padded = np.pad(image, [(radius + 1, radius) if each == axis else (0, 0) for each in (0, 1)], mode="edge")
        summed = np.cumsum(padded, axis=axis)
        image = (np.take(summed, np.arange(2 * radius + 1, summed.shape[axis]), axis=axis)
                 - np.take(summed, np.arange(0, summed.shape[axis] - 2 * radius - 1), axis=axis)) / (2 * radius + 1)  # fmt: skip
    return image


def _grown(image: npt.NDArray[Any], steps: int) -> npt.NDArray[Any]:
    """Grey dilation by ``steps`` pixels (a mask's too): 3 x 3 squares alternating with crosses, about a disc."""
    for step in range(steps):
        padded = np.pad(image, 1, mode="edge")
        out = image.copy()
        shifts = [(-1, 0), (1, 0), (0, -1), (0, 1)] + ([(-1, -1), (-1, 1), (1, -1), (1, 1)] if step % 2 == 0 else [])
        for dy, dx in shifts:
            out = np.maximum(out, padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx])
        image = out
    return image


def _despeckled(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The mask without its isolated pixels and pairs: a pixel stays when 3 of its 3 x 3 window are set (a 1-pixel line's are)."""
    kept: npt.NDArray[np.bool_] = mask & (_box_smoothed(mask.astype(np.float64), 1) * 9 > 2.5)
    return kept


def _otsu_threshold(values: GrayImage) -> float:
    """Otsu's threshold: the cut of a 256-bin histogram that maximises the variance between the two classes."""
    counts, edges = np.histogram(values, bins=256, range=(0.0, max(float(values.max()), 1e-12)))
    weight = np.cumsum(counts) / values.size
    mass = np.cumsum(counts * (edges[:-1] + edges[1:]) / 2) / values.size
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * weight - mass) ** 2 / (weight * (1 - weight))
    return float(edges[int(np.nanargmax(between[:-1])) + 1])


def _euler_number(mask: npt.NDArray[np.bool_]) -> int:
    """Pieces minus holes of a mask (8-connected pieces), counted on its 2 x 2 windows (Gray's bit quads)."""
    m = np.pad(mask, 1).astype(np.int8)
    set_in_window = m[:-1, :-1] + m[:-1, 1:] + m[1:, :-1] + m[1:, 1:]
    diagonal = (m[:-1, :-1] == m[1:, 1:]) & (m[:-1, 1:] == m[1:, :-1]) & (m[:-1, :-1] != m[:-1, 1:])
    return int((set_in_window == 1).sum() - (set_in_window == 3).sum() - 2 * diagonal.sum()) // 4


def _stroke_width(mask: npt.NDArray[np.bool_]) -> float:
    """The mean width of the strokes of a mask, in pixels: twice its area over its perimeter (a stroke has two sides)."""
    padded = np.pad(mask, 1).astype(np.int8)
    perimeter = np.abs(np.diff(padded, axis=0)).sum() + np.abs(np.diff(padded, axis=1)).sum()
    return 2.0 * float(mask.sum()) / max(float(perimeter), 1.0)


def _mass_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice]:
    """Rows and columns holding all but the outer 0.2% of the mask's pixels either way (a stray mark is left out)."""
    spans = []
    for axis in (1, 0):
        cumulative = np.cumsum(mask.sum(axis=axis)) / mask.sum()
        spans.append(slice(int(np.searchsorted(cumulative, 0.002)), int(np.searchsorted(cumulative, 0.998)) + 1))
    return spans[0], spans[1]


# --------------------------------------------------------------------------------------------
# finding the digit: background, polarity, strokes

_WORKING_SIDE = 640  # larger pictures are block-averaged to this size first (32 times the 20-pixel box)
_THIN, _THIN_TARGET = 0.065, 0.09  # pen width / digit size: about the 5th percentile and the median of MNIST's digits
_PIECES = 8  # |pieces - holes| of a digit's strokes: MNIST's span -6 to 5 (test set, 10,000 training digits)
_BLOT = 0.35  # stroke width / digit size: MNIST's test digits reach 0.29 (99.9% under 0.23)


class _Ink(NamedTuple):
    signal: GrayImage  # how much ink each pixel holds: 0 the background, negative where it is lighter than that
    noise: float  # the background's standard deviation, in the same units


class _Strokes(NamedTuple):
    ink: GrayImage  # the signal clipped at 0
    mask: npt.NDArray[np.bool_]  # the pixels taken for strokes, inside the digit's box
    box: tuple[slice, slice]  # the digit's rows and columns
    width: float  # the strokes' mean width, pixels
    side: int  # the longer side of the box, pixels
    noise: float  # the standard deviation of the signal away from the strokes


def _background_surface(image: GrayImage) -> tuple[GrayImage, float]:
    """A smooth surface fitted to the background, and the background's noise about it.

    Least squares on a subsample, first on the picture's frame (its outer 1/30 each side: paper around a
    photographed digit, and mostly background even where a tight crop touches the digit): a constant, a
    plane, a quadratic in row and column; then twice a quadratic on every pixel. Each fit takes the pixels
    within 2.5 standard deviations of the last (the deviation measured on the frame), so the ink never
    pulls it; an uneven light and vignetting across a sheet are smooth enough for a quadratic.

    Args:
        image: the picture, shape (H, W).

    Returns:
        ``(surface, sigma)``: the surface, shape (H, W), and the standard deviation of the background about it.
    """
    step = max(1, int(np.sqrt(image.size / 20_000)))
    sample = image[::step, ::step]
    rows, columns = np.linspace(-1, 1, image.shape[0]), np.linspace(-1, 1, image.shape[1])
    y, x = np.meshgrid(rows[::step], columns[::step], indexing="ij")
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    target = sample.ravel()
    edge = max(1, min(sample.shape) // 30)
    framed = np.ones(sample.shape, dtype=bool)
    framed[edge:-edge, edge:-edge] = False
    frame = framed.ravel()
    coefficients = np.zeros(6)
    coefficients[0] = np.median(target[frame])
    for used, pool in ((3, frame), (6, frame), (6, None), (6, None)):
        residual = target - design @ coefficients
        keep = np.abs(residual) <= max(2.5 * _robust_sigma(residual[frame]), 1 / 255)
        kept = design[keep & pool if pool is not None else keep, :used]
        coefficients = np.zeros(6)
        coefficients[:used] = np.linalg.solve(kept.T @ kept + 1e-9 * np.eye(used), kept.T @ target[keep & pool if pool is not None else keep])
    residual = target - design @ coefficients
    sigma = _robust_sigma(residual[frame & (np.abs(residual) <= max(2.5 * _robust_sigma(residual[frame]), 1 / 255))])
    c, y, x = coefficients, rows[:, None], columns[None, :]
    surface: GrayImage = c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y
    return surface, sigma


def _ink(image: GrayImage) -> _Ink:
    """The ink of a (H, W) picture, either polarity: light on dark is the difference from the background;
    dark on light the fraction of the light it absorbs (1 - image / background), even under uneven light."""
    surface, sigma = _background_surface(image)
    residual = image - surface
    cut = 3 * max(sigma, 1e-6)
    if np.maximum(-residual - cut, 0).sum() <= np.maximum(residual - cut, 0).sum():
        return _Ink(residual, sigma)
    light = np.maximum(surface, 0.1 * max(float(np.median(surface)), 1e-3))
    return _Ink(1.0 - image / light, sigma / float(np.median(light)))


def _flat_ink(image: GrayImage) -> _Ink:
    """The ink against a flat background at the frame's median, dark ink when that is above 0.5: for a crop so tight
    that its frame is mostly ink and no background can be fitted."""
    frame = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = float(np.median(frame))
    return _Ink(background - image if background > 0.5 else image - background, 0.0)


def _no_digit(source: str, why: str) -> ImageError:
    return ImageError(f"{source}: no digit found ({why})")


def _found_strokes(found: _Ink, source: str) -> _Strokes:
    """The strokes of an ink map: the pixels above Otsu's threshold (of a 3 x 3 mean when the picture is
    noisy), isolated specks and the outer 0.2% either way left out. Refused when they do not stand out of
    the rest by 5 of its standard deviations (or absorb under 5% of the light), or form a pattern: pieces
    minus holes beyond ``_PIECES`` either way."""
    smooth = _box_smoothed(found.signal, 1) if found.noise > 0.02 else found.signal
    threshold = _otsu_threshold(np.maximum(smooth, 0.0))
    mask = _despeckled(smooth > threshold)
    away = ~_grown(mask, 2) if mask.any() else mask
    if not away.any() or float(np.percentile(smooth[mask], 75)) < max(5 * _robust_sigma(smooth[away]), 0.05):
        raise _no_digit(source, "nothing stands out of the background more than its noise")
    rows, columns = _mass_box(mask)
    inside = np.zeros_like(mask)
    inside[rows, columns] = mask[rows, columns]
    pieces = _euler_number(inside)
    if abs(pieces) > _PIECES:
        counted = f"{pieces} more pieces than holes" if pieces > 0 else f"{-pieces} more holes than pieces"
        raise _no_digit(source, f"a pattern, not one digit: its marks make {counted}, a digit at most {_PIECES}")
    ink = np.maximum(found.signal, 0.0)
    width = _stroke_width(inside & (ink > threshold))
    side = max(rows.stop - rows.start, columns.stop - columns.start)
    if width > _BLOT * side:
        raise _no_digit(source, f"a blot, not strokes: its marks are {width / side:.0%} as wide as they are long, "
                                f"a digit's at most about {_BLOT:.0%}")  # fmt: skip
    return _Strokes(ink, inside, (rows, columns), width, side, _robust_sigma(found.signal[away]))


def _strokes(work: GrayImage, source: str) -> _Strokes:
    """The digit's strokes, found against the fitted background or, failing that, a flat one."""
    try:
        return _found_strokes(_ink(work), source)
    except ImageError as error:
        try:
            return _found_strokes(_flat_ink(work), source)
        except ImageError:
            raise error from None


def _mnist_pen(digit: GrayImage, width: float, side: int) -> GrayImage:
    """Strokes far thinner than MNIST's, relative to the digit's size, grown towards MNIST's median pen (else unchanged).

    A fine pen on a large picture would otherwise end up under a pixel wide and faint at 28 x 28.
    """
    steps = round((_THIN_TARGET * side - width) / 2) if width < _THIN * side else 0
    return _grown(np.pad(digit, steps), steps) if steps > 0 else digit


def _digit_ink(image: GrayImage, source: str) -> GrayImage:
    """The digit's ink, cropped: 0 background, 1 stroke cores, its pen about as wide as MNIST's (relative to size).

    Only ink within a few pixels of the strokes is kept; the background's noise (3 standard deviations)
    is taken off, and the ink divided by the strokes' typical value (their 75th percentile).
    """
    factor = min(-(-max(image.shape) // _WORKING_SIDE), min(image.shape))  # the short side keeps a pixel
    work = _block_mean(image, factor) if factor > 1 else image
    spread = float(work.max() - work.min())
    if spread < 0.1:
        raise _no_digit(source, f"the darkest and lightest parts differ by {spread:.0%} of the range")
    strokes = _strokes(work, source)
    near = _grown(strokes.mask, max(2, int(np.ceil(strokes.width / 2))))
    core = float(np.percentile(strokes.ink[strokes.mask], 75))
    floor = min(3 * strokes.noise, core / 2)
    ink = np.clip((strokes.ink - floor) / (core - floor), 0.0, 1.0) * near
    ink = _mnist_pen(ink, strokes.width, strokes.side)
    kept_rows, kept_columns = np.nonzero(ink > 0.1)
    cropped: GrayImage = ink[kept_rows.min() : kept_rows.max() + 1, kept_columns.min() : kept_columns.max() + 1]
    return cropped


# --------------------------------------------------------------------------------------------
# MNIST-style framing


def _resize(image: GrayImage, height: int, width: int) -> GrayImage:
    """Bilinear resize of a (H, W) image; larger reductions are block-averaged first (anti-aliasing)."""
    factor = min(image.shape[0] // height, image.shape[1] // width)
    if factor >= 2:
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        image = image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    rows = (np.arange(height) + 0.5) * image.shape[0] / height - 0.5
    columns = (np.arange(width) + 0.5) * image.shape[1] / width - 0.5
    grid = np.stack(np.meshgrid(np.clip(rows, 0, image.shape[0] - 1), np.clip(columns, 0, image.shape[1] - 1), indexing="ij"), axis=-1)
    sampled = bilinear_sample(image[None, None], grid.reshape(1, -1, 2), fill=0.0)
    resized: GrayImage = sampled.reshape(height, width).astype(np.float64)
    return resized


def mnist_style(image: GrayImage, *, source: str = "image") -> npt.NDArray[np.uint8]:
    """A grayscale digit (H, W) in [0, 1] as an MNIST digit: uint8 (28, 28), light on dark, centred.

    Args:
        image: the picture, 0 black, 1 white, any size, either polarity, lit unevenly or not.
        source: its name for error messages.

    Returns:
        The 28 x 28 digit, 0 background, up to 255 ink.
    """
    ink = _digit_ink(image, source)
    scale = 20.0 / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    fitted = _resize(ink, height, width)
    canvas = np.zeros((28, 28))
    top, left = (28 - height) // 2, (28 - width) // 2
    canvas[top : top + height, left : left + width] = fitted / max(float(fitted.max()), 1e-12)  # stroke cores at 255
    total = canvas.sum()
    centre_of_mass = np.array([(canvas.sum(axis=1) * np.arange(28)).sum(), (canvas.sum(axis=0) * np.arange(28)).sum()]) / total
    shift = np.array([13.5, 13.5]) - centre_of_mass
    grid = np.stack(np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij"), axis=-1).reshape(1, -1, 2) - shift
    centred = bilinear_sample(canvas[None, None], grid, fill=0.0).reshape(28, 28)
    return np.round(np.clip(centred, 0.0, 1.0) * 255).astype(np.uint8)
