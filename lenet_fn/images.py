"""Reading your own digit images: every file as grayscale in [0, 1], shape (H, W).

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
``lenet_fn.digits`` prepares what is read the way MNIST's digits were prepared.
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


GrayImage = npt.NDArray[np.float64]

MAX_PIXELS = 25_000_000  # twice a 12-megapixel phone photo; its float64 copy is 200 MB
PILLOW_HINT = "install the images extra for PNG/JPEG: python -m pip install 'lenet-fn[images]' (or: pip install Pillow)"
NETPBM_SUFFIXES = (".pbm", ".pgm", ".ppm", ".pnm")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" mode
_BLOCK_PIXELS = 1 << 20  # converted a block of rows at a time, so temporaries stay a few MB
_HEADER_BYTES = 1 << 16  # a Netpbm header (comments included) must fit in the file's first 64 KiB
_WHITESPACE = np.frombuffer(b" \t\n\v\f\r", dtype=np.uint8)
_SPACE = re.compile(rb"\s")
_COMMENT = re.compile(rb"#[^\r\n]*")
_LONGEST_NUMBER = 64  # digits of a plain Netpbm value (65535 has 5; a few leading zeros are allowed)


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
        data = _COMMENT.sub(b"", data)  # one pass, one copy (line by line took an object per line)
    values, found, start = np.empty(count), 0, 0
    while found < count and start < len(data):
        cut = min(start + _BLOCK_PIXELS, len(data))
        space = _SPACE.search(data, cut, cut + _LONGEST_NUMBER)  # blocks end between numbers
        if space is None and cut + _LONGEST_NUMBER < len(data):
            raise ImageError(f"{source}: malformed Netpbm pixel data ({header.magic}: a number of more than {_LONGEST_NUMBER} digits)")
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
