"""Reading your own digit images and preparing them the way MNIST's digits were prepared.

Formats: ``.npy`` (a 2-D array, or 3-D with 1 to 4 channels last: gray, gray and alpha, RGB, RGBA),
Netpbm (``.pbm``, ``.pgm``, ``.ppm``, ``.pnm``; read here, no extra needed) and, with the Pillow
extra, PNG, JPEG and whatever else Pillow opens. Every problem is an ``ImageError`` with a one-line
message naming the file.

Pixel values become [0, 1]: PNG, Netpbm and TIFF at their full bit depth (16-bit included); integer
arrays by their values (all within 0-255: 8-bit, within 0-65535: 16-bit, anything else, negative
values included, stretched from their minimum to their maximum); float arrays as they are when
within [0, 1], else stretched likewise. Transparent pixels are background: the opaque pixels are
the ink, laid on white when they are dark on average, on black when light.

Images of more than ``MAX_PIXELS`` pixels are refused from their header, before any pixel is
decoded, except JPEGs, which are decoded at 1/2, 1/4 or 1/8 of their size to fit.

Preparing a digit (``mnist_style``): the background is fitted as a smooth surface, so light falling
unevenly across a sheet is not taken for ink, and the ink is what stands out of it, in either
polarity (dark ink as the fraction of the light it absorbs). The strokes are the pixels above
Otsu's threshold; a picture whose marks do not stand out of its noise, or form a pattern or a blot
rather than strokes, holds no digit. A pen much finer than MNIST's, relative to the digit's size,
is widened towards it. Then as MNIST's digits were prepared (LeCun, Cortes, Burges): cropped to the
digit; scaled, keeping the aspect ratio, to fit a 20 x 20 box, the stroke cores at 255; placed in a
28 x 28 image with its centre of mass at the centre (MNIST's digits are light on dark).
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from lenet_fn.augment import bilinear_sample

GrayImage = npt.NDArray[np.float64]

MAX_PIXELS = 25_000_000  # twice a 12-megapixel phone photo; its float64 copy is 200 MB
PILLOW_HINT = "install the images extra for PNG/JPEG: python -m pip install 'lenet-fn[images]' (or: pip install Pillow)"
NETPBM_SUFFIXES = (".pbm", ".pgm", ".ppm", ".pnm")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" mode
_BLOCK_PIXELS = 1 << 20  # converted a block of rows at a time, so temporaries stay a few MB
_HEADER_BYTES = 1 << 16  # a Netpbm header (comments included) must fit in the file's first 64 KiB
_WHITESPACE = np.frombuffer(b" \t\n\v\f\r", dtype=np.uint8)
_SPACE = re.compile(rb"\s")


class ImageError(ValueError):
    """An image could not be read, or holds no digit (one-line message naming the file)."""


# --------------------------------------------------------------------------------------------
# pixel values


def _too_many_pixels(source: str, height: int, width: int) -> ImageError:
    return ImageError(f"{source}: {width} x {height} pixels ({width * height / 1e6:.1f} megapixels) is more than "
                      f"the {MAX_PIXELS / 1e6:g}-megapixel limit")  # fmt: skip


def _checked_layout(shape: tuple[int, ...], dtype: np.dtype[Any], source: str) -> None:
    """Refuses pixels that are not numbers, a shape that is not (H, W) or (H, W, 1 to 4), and too many pixels."""
    if dtype.kind not in "biuf":
        raise ImageError(f"{source}: expected numeric pixels (bool, integer or float), got dtype {dtype}")
    if not (len(shape) == 2 or len(shape) == 3 and 1 <= shape[2] <= 4) or min(shape[:2], default=0) < 1:
        raise ImageError(f"{source}: expected a 2-D image (H, W) or (H, W, channels) with 1 to 4 channels, got shape {shape}")
    if shape[0] * shape[1] > MAX_PIXELS:
        raise _too_many_pixels(source, shape[0], shape[1])


def _value_range(values: npt.NDArray[Any], source: str) -> tuple[float, float]:
    """``(low, span)`` such that ``(values - low) / span`` is in [0, 1] (the rules of the module docstring)."""
    if values.dtype == np.bool_:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ImageError(f"{source}: the image holds NaN or infinite values")
    if values.dtype.kind in "iu" and low >= 0 and high <= 65535:
        return 0.0, 255.0 if high <= 255 else 65535.0
    if values.dtype.kind == "f" and low >= 0 and high <= 1:
        return 0.0, 1.0
    return low, high - low if high > low else 1.0


def _scaled(values: npt.NDArray[Any], value_range: tuple[float, float]) -> GrayImage:
    scaled: GrayImage = (values.astype(np.float64) - value_range[0]) / value_range[1]
    return scaled


def _behind_transparency(colour: npt.NDArray[Any], alpha: npt.NDArray[Any], ranges: tuple[tuple[float, float], ...]) -> float:
    """The background to lay transparent pixels on: white (1) when the opaque pixels are dark on average, else black."""
    step = max(1, int(np.sqrt(alpha.size / _BLOCK_PIXELS)))  # a subsample of about a million pixels decides it
    opacity = _scaled(alpha[::step, ::step], ranges[1])
    gray = _scaled(colour[::step, ::step], ranges[0])
    gray = gray @ _LUMA if gray.ndim == 3 else gray
    total = float(opacity.sum())
    return 1.0 if total == 0 or float((gray * opacity).sum()) / total < 0.5 else 0.0


def _to_gray(array: npt.NDArray[Any], source: str, *, full_scale: float | None = None) -> GrayImage:
    """Pixels (H, W) or (H, W, 1 to 4 channels) as grayscale float64 in [0, 1], shape (H, W).

    Args:
        array: the pixels, shape (H, W) or (H, W, C); C is 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA).
        source: the file's name for error messages.
        full_scale: the value of full brightness when the format says (65535 for 16-bit PNG); else the
            values decide (the module docstring's rules).

    Returns:
        The image, 0 black and 1 white, transparent pixels composited onto the background, shape (H, W).
    """
    _checked_layout(array.shape, array.dtype, source)
    pixels = array if array.ndim == 3 else array[:, :, None]
    colour = pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, 0]
    alpha = pixels[:, :, -1] if pixels.shape[2] in (2, 4) else None
    ranges = tuple((0.0, full_scale) if full_scale else _value_range(part, source) for part in (colour, alpha) if part is not None)
    behind = 0.0 if alpha is None else _behind_transparency(colour, alpha, ranges)
    gray = np.empty(pixels.shape[:2])
    rows = max(1, _BLOCK_PIXELS // pixels.shape[1])
    for top in range(0, pixels.shape[0], rows):
        block = _scaled(colour[top : top + rows], ranges[0])
        block = block @ _LUMA if block.ndim == 3 else block
        if alpha is not None:
            opacity = _scaled(alpha[top : top + rows], ranges[1])
            block = block * opacity + behind * (1.0 - opacity)
        gray[top : top + rows] = block
    return gray


# --------------------------------------------------------------------------------------------
# Netpbm


class _NetpbmHeader(NamedTuple):
    magic: str
    width: int
    height: int
    maxval: int
    offset: int  # where the pixel data starts


def _netpbm_header(head: bytes, source: str) -> _NetpbmHeader:
    """Parses magic, width, height and (but for bitmaps) maxval from the file's first bytes."""
    tokens: list[bytes] = []
    position = 0
    needed = 3 if head[:2] in (b"P1", b"P4") else 4
    while len(tokens) < needed:
        while position < len(head) and head[position : position + 1].isspace():
            position += 1
        if head[position : position + 1] == b"#":
            position = head.find(b"\n", position) + 1 or len(head)
            continue
        start = position
        while position < len(head) and not head[position : position + 1].isspace():
            position += 1
        if start == position:
            raise ImageError(f"{source}: truncated Netpbm header")
        tokens.append(head[start:position])
    magic = tokens[0].decode("ascii", "replace")
    if magic not in ("P1", "P2", "P3", "P4", "P5", "P6"):
        raise ImageError(f"{source}: not a Netpbm image (magic {magic!r}, expected P1 to P6)")
    try:
        width, height = int(tokens[1]), int(tokens[2])
        maxval = 1 if needed == 3 else int(tokens[3])
    except ValueError:
        raise ImageError(f"{source}: malformed Netpbm header {b' '.join(tokens)!r}") from None
    if width < 1 or height < 1 or not 1 <= maxval <= 65535:
        raise ImageError(f"{source}: bad Netpbm size {width}x{height} or maximum value {maxval}")
    return _NetpbmHeader(magic, width, height, maxval, position + 1)


def _plain_numbers(data: bytes, count: int, header: _NetpbmHeader, source: str) -> npt.NDArray[np.int64]:
    """The first ``count`` pixel values of plain (ASCII) Netpbm data: decimal numbers, or in P1 single 0/1
    characters (spaces optional); ``#`` comments run to the line's end. Values above maxval are refused."""
    if b"#" in data:
        data = b"\n".join(line.split(b"#")[0] for line in data.splitlines())
    values, found, start = np.empty(count), 0, 0
    while found < count and start < len(data):
        space = _SPACE.search(data, min(start + _BLOCK_PIXELS, len(data)))  # blocks end between numbers
        stop = space.start() if space else len(data)
        numbers = _decimals(data[start:stop], header, source)[: count - found]
        values[found : found + len(numbers)] = numbers
        found, start = found + len(numbers), stop
    if found < count:
        raise ImageError(f"{source}: truncated Netpbm pixel data ({header.magic}, {header.width}x{header.height}: "
                         f"{found:,} of {count:,} values)")  # fmt: skip
    return values.astype(np.int64)


def _decimals(chunk: bytes, header: _NetpbmHeader, source: str) -> npt.NDArray[np.float64]:
    """The numbers in plain Netpbm text without comments (P1: each 0/1 character is one), refusing any above maxval."""
    text = np.frombuffer(chunk, dtype=np.uint8)
    is_digit = (text >= ord("0")) & (text <= ord("9"))
    if not np.isin(text[~is_digit], _WHITESPACE).all():
        raise ImageError(f"{source}: malformed Netpbm pixel data ({header.magic}: a character that is neither a digit nor a space)")
    positions = np.flatnonzero(is_digit)
    digits = (text[positions] - ord("0")).astype(np.float64)
    if header.magic != "P1" and len(positions):
        starts = np.diff(positions, prepend=-2) > 1  # a digit that follows a space begins a number
        first = np.flatnonzero(starts)
        last = np.append(first[1:], len(positions)) - 1
        power = np.minimum(last[np.cumsum(starts) - 1] - np.arange(len(positions)), 20)  # 10**20 is past any maxval
        digits = np.add.reduceat(digits * 10.0**power, first)
    _check_maxval(digits, header, source)
    return digits


def _check_maxval(values: npt.NDArray[Any], header: _NetpbmHeader, source: str) -> None:
    if len(values) and float(values.max()) > header.maxval:
        largest = float(values.max())
        shown = f"{largest:.0f}" if largest < 1e15 else "16 digits or more"
        raise ImageError(f"{source}: a pixel value ({shown}) above the header's maximum value {header.maxval} ({header.magic})")


def _binary_numbers(data: bytes, count: int, header: _NetpbmHeader, source: str) -> npt.NDArray[np.int64]:
    """The pixel values of raw (binary) Netpbm data: P4 bits packed per row (1 black), P5/P6 bytes or 16-bit words."""
    if header.magic == "P4":
        row_bytes = (header.width + 7) // 8
        packed = np.frombuffer(data, dtype=np.uint8, count=row_bytes * header.height).reshape(header.height, row_bytes)
        return np.unpackbits(packed, axis=1)[:, : header.width].astype(np.int64).ravel()
    dtype = np.dtype(">u2") if header.maxval > 255 else np.dtype(np.uint8)
    values = np.frombuffer(data, dtype=dtype, count=count)
    _check_maxval(values, header, source)
    return values.astype(np.int64)


def _netpbm(file: IO[bytes], size: int, source: str) -> GrayImage:
    """Netpbm P1-P6 (bitmaps: 1 is black; graymaps; pixmaps; plain or raw), size checked before any pixel is read."""
    header = _netpbm_header(file.read(_HEADER_BYTES), source)
    if header.width * header.height > MAX_PIXELS:
        raise _too_many_pixels(source, header.height, header.width)
    channels = 3 if header.magic in ("P3", "P6") else 1
    count = header.width * header.height * channels
    if header.magic == "P4":
        needed = (header.width + 7) // 8 * header.height
    elif header.magic in ("P5", "P6"):
        needed = count * (2 if header.maxval > 255 else 1)
    else:
        needed = count if header.magic == "P1" else 2 * count - 1  # a digit per value, spaces between (P1: optional)
    if size - header.offset < needed:
        raise ImageError(f"{source}: truncated Netpbm pixel data ({header.magic}, {header.width}x{header.height} "
                         f"needs {needed:,} bytes, the file holds {max(0, size - header.offset):,})")  # fmt: skip
    file.seek(header.offset)
    if header.magic in ("P1", "P2", "P3"):
        values = _plain_numbers(file.read(16 * count + _HEADER_BYTES), count, header, source)  # 16 bytes a value is ample
    else:
        values = _binary_numbers(file.read(needed), count, header, source)
    gray = values.reshape(header.height, header.width, channels) / header.maxval
    if header.magic in ("P1", "P4"):
        gray = 1.0 - gray  # in bitmaps 1 is black
    image: GrayImage = gray @ _LUMA if channels == 3 else gray[:, :, 0]
    return image


# --------------------------------------------------------------------------------------------
# .npy and Pillow


def _npy(file: IO[bytes], size: int, source: str) -> GrayImage:
    """A ``.npy`` array, its header checked (dtype, shape, pixel count, and the file's size) before loading."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(file)
    except (ValueError, OSError, EOFError) as error:
        raise ImageError(f"{source}: not a readable .npy file ({error})") from None
    _checked_layout(shape, dtype, source)
    expected = int(np.prod(shape)) * dtype.itemsize
    if size - file.tell() != expected:
        raise ImageError(f"{source}: the .npy header declares shape {shape} of {dtype} ({expected:,} bytes), "
                         f"the file holds {size - file.tell():,} bytes of data")  # fmt: skip
    pixels = np.memmap(file, dtype=dtype, mode="r", offset=file.tell(), shape=shape, order="F" if fortran_order else "C")
    return _to_gray(pixels, source)
def _jpeg_draft(image: Any, source: str) -> None:
    """Refuses an image of more than ``MAX_PIXELS`` pixels; a JPEG is set to decode at 1/2, 1/4 or 1/8 scale instead."""
    width, height = image.size
    if width * height <= MAX_PIXELS:
        return
    scale = next((scale for scale in (2, 4, 8) if width * height <= MAX_PIXELS * scale * scale), 0)
    if image.format == "JPEG" and scale:
        image.draft(None, (-(-width // scale), -(-height // scale)))
    if image.size[0] * image.size[1] > MAX_PIXELS:
        raise _too_many_pixels(source, height, width)


def _pillow_gray(image: Any, source: str) -> GrayImage:
    """An opened Pillow image as grayscale in [0, 1]: 16-bit at full depth, transparency composited."""
    _jpeg_draft(image, source)
    if image.mode.startswith("I;16"):
        return _to_gray(np.asarray(image), source, full_scale=65535.0)
    if image.mode in ("I", "F"):
        return _to_gray(np.asarray(image), source)  # 32-bit integers or floats: the values decide
    if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
        return _to_gray(np.asarray(image.convert("LA")), source)  # gray and alpha
    return _to_gray(np.asarray(image.convert("L")), source)


def _pillow(path: Path, source: str) -> GrayImage:
    """Any format Pillow opens; its size is checked from the header before the pixels are decoded."""
    if importlib.util.find_spec("PIL") is None:
        raise ImageError(f"{source}: reading {path.suffix or 'this format'} needs Pillow; {PILLOW_HINT}")
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS, checked next, is lower
            with Image.open(path) as image:
                return _pillow_gray(image, source)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:  # Pillow refuses to open it at all
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else str(error)
        raise ImageError(f"{source}: {size} is more than the {MAX_PIXELS / 1e6:g}-megapixel limit") from None
    except Exception as error:  # noqa: BLE001 - a decoder can fail any way on a damaged file; each is this file's problem
        raise ImageError(f"{source}: not a readable image ({error or type(error).__name__})") from None


def read_image(path: str | os.PathLike[str]) -> GrayImage:
    """Reads an image file as grayscale in [0, 1] (0 black, 1 white), shape (H, W).

    Args:
        path: a ``.npy``, Netpbm, or (with Pillow) PNG/JPEG/other image file.

    Returns:
        The image, transparent parts composited onto the background (the module docstring says how).
    """
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            magic = file.read(2)
            file.seek(0)
            if path.suffix.lower() == ".npy" or magic == b"\x93N":
                return _npy(file, size, source)
            if path.suffix.lower() in NETPBM_SUFFIXES or magic[:1] == b"P" and magic[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6"):
                return _netpbm(file, size, source)
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except OSError as error:
        raise ImageError(f"{source}: not a readable image ({error.strerror or error})") from None
    return _pillow(path, source)


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
    factor = -(-max(image.shape) // _WORKING_SIDE)
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
