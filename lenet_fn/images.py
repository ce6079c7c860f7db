"""Reading your own digit images and preparing them the way MNIST's digits were prepared.

Formats: ``.npy`` (a 2-D array, or 3-D with colour channels last), Netpbm (``.pbm``, ``.pgm``,
``.ppm``, ``.pnm``; read here, no extra needed) and, with the Pillow extra, PNG, JPEG and whatever
else Pillow opens. Every problem is an ``ImageError`` with a one-line message naming the file.

MNIST-style preprocessing (LeCun, Cortes, Burges): grayscale; inverted when the background is light
(MNIST digits are light on dark); cropped to the digit; scaled, keeping the aspect ratio, to fit a
20 x 20 box; placed in a 28 x 28 image with its centre of mass at the centre.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lenet_fn.augment import bilinear_sample

GrayImage = npt.NDArray[np.float64]

PILLOW_HINT = "install the images extra for PNG/JPEG: python -m pip install 'lenet-fn[images]' (or: pip install Pillow)"
NETPBM_SUFFIXES = (".pbm", ".pgm", ".ppm", ".pnm")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's "L" mode


class ImageError(ValueError):
    """An image could not be read, or holds no digit (one-line message naming the file)."""


# --------------------------------------------------------------------------------------------
# reading


def _to_gray(array: npt.NDArray[Any], source: str) -> GrayImage:
    """Any numeric 2-D array, or 3-D with 1, 3 or 4 channels last, as grayscale float64 in [0, 1]."""
    if not np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_:
        array = array.astype(np.float64) if array.dtype == np.bool_ else array
        if not np.issubdtype(array.dtype, np.number):
            raise ImageError(f"{source}: expected numeric pixels, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, 0] if array.shape[2] == 1 else array[:, :, :3] @ _LUMA
    if array.ndim != 2 or min(array.shape) < 1:
        raise ImageError(f"{source}: expected a 2-D image (H, W) or (H, W, channels), got shape {array.shape}")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError(f"{source}: the image holds NaN or infinite values")
    if np.issubdtype(array.dtype, np.integer):
        return values / float(np.iinfo(array.dtype).max)
    low, high = float(values.min()), float(values.max())
    return values if low >= 0 and high <= 1 else (values - low) / (high - low if high > low else 1.0)


def _netpbm(content: bytes, source: str) -> GrayImage:
    """Netpbm P1-P6: bitmaps (1 = black), graymaps and pixmaps, ASCII or binary."""
    tokens: list[bytes] = []
    position = 0
    needed = 3 if content[:2] in (b"P1", b"P4") else 4
    while len(tokens) < needed:
        while position < len(content) and content[position : position + 1].isspace():
            position += 1
        if content[position : position + 1] == b"#":
            position = content.find(b"\n", position) + 1 or len(content)
            continue
        start = position
        while position < len(content) and not content[position : position + 1].isspace():
            position += 1
        if start == position:
            raise ImageError(f"{source}: truncated Netpbm header")
        tokens.append(content[start:position])
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
    channels = 3 if magic in ("P3", "P6") else 1
    count = width * height * channels
    data = content[position + 1 :]
    try:
        if magic in ("P1", "P2", "P3"):
            text = b" ".join(line.split(b"#")[0] for line in data.splitlines())  # comments run to the line's end
            words = [bytes([bit]) for bit in text if bit in b"01"] if magic == "P1" else text.split()  # P1 may omit spaces
            values = np.array(words[:count], dtype=np.int64)
        elif magic == "P4":
            row_bytes = (width + 7) // 8
            packed = np.frombuffer(data[: row_bytes * height], dtype=np.uint8).reshape(height, row_bytes)
            values = np.unpackbits(packed, axis=1)[:, :width].astype(np.int64)
        else:
            dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
            values = np.frombuffer(data[: count * dtype.itemsize], dtype=dtype).astype(np.int64)
        values = values.reshape(height, width, channels) if channels == 3 else values.reshape(height, width)
    except ValueError:
        raise ImageError(f"{source}: truncated or malformed Netpbm pixel data ({magic}, {width}x{height})") from None
    gray = values.astype(np.float64) / maxval
    if magic in ("P1", "P4"):
        gray = 1.0 - gray  # in bitmaps 1 is black
    return gray @ _LUMA if channels == 3 else gray


def read_image(path: str | os.PathLike[str]) -> GrayImage:
    """Reads an image file as grayscale in [0, 1] (0 black, 1 white), shape (H, W).

    Args:
        path: a ``.npy``, Netpbm, or (with Pillow) PNG/JPEG/other image file.

    Returns:
        The image.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _to_gray(np.load(path, allow_pickle=False), str(path))
        content = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None
    if suffix in NETPBM_SUFFIXES or content[:1] == b"P" and content[1:2] in b"123456" and content[1:2] != b"":
        return _netpbm(content, str(path))
    if importlib.util.find_spec("PIL") is None:
        raise ImageError(f"{path}: reading {suffix or 'this format'} needs Pillow; {PILLOW_HINT}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from None


# --------------------------------------------------------------------------------------------
# MNIST-style preprocessing


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
        image: the picture, 0 black, 1 white, any size, either polarity.
        source: its name for error messages.

    Returns:
        The 28 x 28 digit, 0 background, up to 255 ink.
    """
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if np.median(border) > 0.5:
        image = 1.0 - image  # dark ink on a light background: make it light on dark, like MNIST
        border = 1.0 - border
    background = float(np.median(border))
    ink = image - background
    contrast = float(ink.max())
    if contrast < 0.1:
        raise ImageError(f"{source}: no digit found (the darkest and lightest parts differ by {contrast:.0%} of the range)")
    ink = np.clip(ink / contrast, 0.0, 1.0)
    rows, columns = np.nonzero(ink > 0.1)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    scale = 20.0 / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    fitted = _resize(ink, height, width)
    canvas = np.zeros((28, 28))
    top, left = (28 - height) // 2, (28 - width) // 2
    canvas[top : top + height, left : left + width] = fitted
    total = canvas.sum()
    centre_of_mass = np.array([(canvas.sum(axis=1) * np.arange(28)).sum(), (canvas.sum(axis=0) * np.arange(28)).sum()]) / total
    shift = np.array([13.5, 13.5]) - centre_of_mass
    grid = np.stack(np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij"), axis=-1).reshape(1, -1, 2) - shift
    centred = bilinear_sample(canvas[None, None], grid, fill=0.0).reshape(28, 28)
    return np.round(np.clip(centred, 0.0, 1.0) * 255).astype(np.uint8)
