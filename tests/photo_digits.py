"""Generated digits for testing ``predict``: pen strokes drawn cleanly, or rendered like a photo of paper.

Each digit is a few strokes (polylines and elliptic arcs in a box 0.6 wide and 1 high, y down),
bent by a smooth random warp, slanted, scaled and placed off-centre, then drawn with a round pen.
The photo-like kinds put the ink on paper under a light that changes across the sheet, with paper
texture, blur, sensor noise and sometimes JPEG compression, each kind stressing one of them.

``python tests/photo_digits.py --out sheet.png`` draws a contact sheet: one row per kind, 0 to 9.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]
Pixels = npt.NDArray[np.uint8]

DRAWN_KINDS = ("drawn", "drawn_inverted")
PHOTO_KINDS = ("gradient", "noise_blur", "jpeg", "thin_pen", "thick_pen", "rotated", "textured")
KINDS = DRAWN_KINDS + PHOTO_KINDS


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> Points:
    """Points of an elliptic arc from angle ``start`` to ``stop`` (degrees, counter-clockwise as seen, y down)."""
    angles = np.radians(np.linspace(start, stop, max(8, int(abs(stop - start) / 8))))
    return np.stack([cx + rx * np.cos(angles), cy - ry * np.sin(angles)], axis=1)


def _line(*points: tuple[float, float]) -> Points:
    return np.array(points, dtype=np.float64)


def _joined(*parts: Points) -> Points:
    return np.concatenate(parts)


# Each digit has one or two common ways of writing it; each way is a list of strokes.
SKELETONS: dict[int, list[list[Points]]] = {
    0: [[_arc(0.3, 0.5, 0.28, 0.48, 95, 455)]],
    1: [[_line((0.3, 0.0), (0.3, 1.0))], [_line((0.12, 0.2), (0.34, 0.0), (0.34, 1.0))]],
    2: [[_joined(_arc(0.3, 0.28, 0.27, 0.26, 160, -40), _line((0.02, 1.0), (0.6, 1.0)))]],
    3: [[_joined(_arc(0.3, 0.26, 0.25, 0.24, 150, -90), _arc(0.3, 0.74, 0.28, 0.26, 90, -150))]],
    4: [[_line((0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68))],
        [_line((0.08, 0.0), (0.0, 0.62), (0.6, 0.62)), _line((0.45, 0.25), (0.45, 1.0))]],
    5: [[_joined(_line((0.56, 0.0), (0.12, 0.0), (0.06, 0.46)), _arc(0.3, 0.7, 0.27, 0.28, 150, -160))]],
    6: [[_joined(_arc(0.6, 0.68, 0.56, 0.66, 95, 180), _arc(0.3, 0.72, 0.26, 0.26, 180, 530))]],
    7: [[_line((0.0, 0.02), (0.6, 0.0), (0.22, 1.0))],
        [_line((0.0, 0.02), (0.6, 0.0), (0.22, 1.0)), _line((0.18, 0.52), (0.52, 0.5))]],
    8: [[_arc(0.3, 0.25, 0.22, 0.23, -90, 270), _arc(0.3, 0.73, 0.28, 0.26, 90, 450)]],
    9: [[_joined(_arc(0.3, 0.28, 0.26, 0.27, 0, 360), _line((0.56, 0.28), (0.52, 1.0)))]],
}


@attrs.frozen
class Look:
    """How one kind of picture is made; every range is drawn from uniformly.

    Attributes:
        pen: pen width as a fraction of the digit's height.
        rotation: the largest rotation, degrees either way.
        gradient: how much darker the dimmest corner of the sheet is than the brightest (0 none).
        texture: the paper's mottling, as a fraction of its brightness.
        blur: Gaussian blur, as a fraction of the digit's height.
        noise: sensor noise (standard deviation, fraction of full scale).
        jpeg: JPEG quality range, or None for no compression.
        photo: paper, coloured ink and light (True), or a clean pen on flat white or black (False).
        inverted: light ink on a dark background (drawn kinds only).
    """

    pen: tuple[float, float] = (0.07, 0.13)
    rotation: float = 6.0
    gradient: tuple[float, float] = (0.1, 0.3)
    texture: tuple[float, float] = (0.01, 0.03)
    blur: tuple[float, float] = (0.004, 0.012)
    noise: tuple[float, float] = (0.01, 0.025)
    jpeg: tuple[int, int] | None = None
    photo: bool = True
    inverted: bool = False


LOOKS: dict[str, Look] = {
    "drawn": Look(photo=False),
    "drawn_inverted": Look(photo=False, inverted=True),
    "gradient": Look(gradient=(0.5, 0.7)),
    "noise_blur": Look(blur=(0.02, 0.03), noise=(0.05, 0.08)),
    "jpeg": Look(jpeg=(10, 25), noise=(0.02, 0.04)),
    "thin_pen": Look(pen=(0.02, 0.035)),
    "thick_pen": Look(pen=(0.18, 0.24)),
    "rotated": Look(rotation=20.0),
    "textured": Look(texture=(0.06, 0.1)),
}


def _placed(rng: np.random.Generator, strokes: list[Points], canvas: tuple[int, int], look: Look) -> tuple[list[Points], float]:
    """The strokes in pixel coordinates (x, y): warped, slanted, scaled, rotated and placed off-centre; and
    the digit's height in pixels."""
    height = rng.uniform(0.4, 0.7) * canvas[0]
    frequencies = rng.normal(0.0, 1.2, size=(2, 2))
    phases = rng.uniform(0, 2 * np.pi, size=2)
    amplitude = rng.uniform(0.015, 0.03)
    slant, widen = rng.uniform(-0.25, 0.25), rng.uniform(0.85, 1.2)
    angle = np.radians(rng.uniform(-look.rotation, look.rotation))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    reach = np.minimum([0.45 * height, 0.55 * height], np.array([canvas[1], canvas[0]]) / 2)  # (x, y): stays on the canvas
    centre = rng.uniform(reach, np.array([canvas[1], canvas[0]]) - reach)
    placed = []
    for stroke in strokes:
        points = stroke - np.array([0.3, 0.5])
        points = points + amplitude * np.sin(2 * np.pi * points @ frequencies + phases)  # a smooth wobble
        points = points * np.array([widen, 1.0])
        points[:, 0] -= slant * points[:, 1]  # the top leans right when slant > 0
        placed.append(points * height @ rotation.T + centre)
    return placed, height


def _coverage(strokes: list[Points], shape: tuple[int, int], pen: float) -> npt.NDArray[np.float64]:
    """How much of each pixel a round pen of width ``pen`` pixels covers along the strokes, shape (H, W)."""
    nearest = np.full(shape, np.inf)  # each pixel's distance to the closest stroke
    limit = np.array([shape[1], shape[0]])
    for stroke in strokes:
        for a, b in zip(stroke[:-1], stroke[1:]):
            low = np.clip(np.floor(np.minimum(a, b) - pen), 0, limit).astype(int)  # the pixels the pen can reach, (x, y)
            high = np.clip(np.ceil(np.maximum(a, b) + pen), 0, limit).astype(int)
            xs = np.arange(low[0], high[0]) + 0.5
            ys = np.arange(low[1], high[1])[:, None] + 0.5
            direction = b - a
            along = np.clip(((xs - a[0]) * direction[0] + (ys - a[1]) * direction[1]) / max(direction @ direction, 1e-12), 0, 1)
            distance = np.hypot(xs - a[0] - along * direction[0], ys - a[1] - along * direction[1])
            region = nearest[low[1] : high[1], low[0] : high[0]]
            np.minimum(region, distance, out=region)
    return np.clip(pen / 2 - nearest + 0.5, 0.0, 1.0)


def _blurred(image: npt.NDArray[np.float64], sigma: float) -> npt.NDArray[np.float64]:
    """A Gaussian blur of an (H, W) or (H, W, C) image, separable, edges reflected."""
    if sigma < 0.3:
        return image
    radius = int(3 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(radius, radius) if each == axis else (0, 0) for each in range(image.ndim)]
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(image, pad, mode="reflect"), len(kernel), axis=axis)
        image = windows @ kernel
    return image


def _mottled(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> npt.NDArray[np.float64]:
    """Smooth random texture of unit standard deviation with blobs about ``scale`` pixels across, shape (H, W)."""
    field = _blurred(rng.normal(size=shape), scale)
    unit: npt.NDArray[np.float64] = (field - field.mean()) / (field.std() + 1e-12)
    return unit


def _light(rng: np.random.Generator, shape: tuple[int, int], gradient: float) -> npt.NDArray[np.float64]:
    """The light falling on the sheet, shape (H, W): brightest 1, falling by ``gradient`` across it, with a vignette."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    along = (along - along.min()) / (along.max() - along.min())
    vignette = ((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2) * rng.uniform(0.1, 0.4)
    light = (1.0 - gradient * along) * (1.0 - vignette)
    return np.asarray(light / light.max(), dtype=np.float64)


INKS = np.array([[0.06, 0.06, 0.08], [0.1, 0.14, 0.45], [0.25, 0.25, 0.28]])  # black, blue, pencil grey


def _photographed(rng: np.random.Generator, ink: npt.NDArray[np.float64], look: Look, height: float) -> Pixels:
    """Ink coverage (H, W) as an RGB photo of paper, uint8 (H, W, 3)."""
    shape = (ink.shape[0], ink.shape[1])
    texture = rng.uniform(*look.texture)
    paper = rng.uniform(0.8, 0.95) * (1 + texture * (0.7 * _mottled(rng, shape, 0.1 * height) + 0.5 * _mottled(rng, shape, 1.0)))
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.98)])
    colour = INKS[rng.integers(len(INKS))]
    reflected = paper[:, :, None] * tint * (1 - ink[:, :, None]) + colour * ink[:, :, None]
    exposure = rng.uniform(0.75, 1.0)
    image = exposure * _light(rng, shape, rng.uniform(*look.gradient))[:, :, None] * reflected
    image = _blurred(image, rng.uniform(*look.blur) * height)
    image = image + rng.normal(0.0, rng.uniform(*look.noise), size=image.shape)
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    if look.jpeg is None:
        return pixels
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(look.jpeg[0], look.jpeg[1] + 1)))
    with Image.open(buffer) as compressed:
        return np.asarray(compressed.convert("RGB"), dtype=np.uint8)


def photo_digit(rng: np.random.Generator, digit: int, kind: str) -> Pixels:
    """One generated picture of ``digit``.

    Args:
        rng: the random generator.
        digit: 0 to 9.
        kind: one of ``KINDS``.

    Returns:
        uint8 pixels: (H, W) for the drawn kinds, (H, W, 3) for the photo-like ones; H and W 100 to 320.
    """
    look = LOOKS[kind]
    height = int(rng.integers(100, 321))
    canvas = (height, int(np.clip(height * rng.uniform(0.75, 1.33), 100, 320)))
    ways = SKELETONS[digit]
    strokes, digit_height = _placed(rng, ways[int(rng.integers(len(ways)))], canvas, look)
    ink = _coverage(strokes, canvas, max(1.0, rng.uniform(*look.pen) * digit_height))
    if look.photo:
        return _photographed(rng, ink, look, digit_height)
    drawn = ink if look.inverted else 1.0 - ink
    return np.round(drawn * 255).astype(np.uint8)


def paper_photo(rng: np.random.Generator, kind: str) -> Pixels:
    """A photo of the paper alone, as ``kind`` (a photo-like one) renders it: no digit. RGB uint8 (H, W, 3)."""
    side = int(rng.integers(100, 321))
    return _photographed(rng, np.zeros((side, side)), LOOKS[kind], rng.uniform(0.4, 0.7) * side)


def digit_set(rng: np.random.Generator, kind: str, per_digit: int = 1) -> list[tuple[Pixels, int]]:
    """``per_digit`` pictures of each digit 0-9 of one kind, as (pixels, label) pairs in digit order."""
    return [(photo_digit(rng, digit, kind), digit) for _ in range(per_digit) for digit in range(10)]


def contact_sheet(rng: np.random.Generator, kinds: Sequence[str] = KINDS, cell: int = 96) -> Pixels:
    """One row per kind, digits 0 to 9 left to right, each fitted into ``cell`` pixels: RGB (rows, columns, 3)."""
    from PIL import Image

    sheet = np.full((len(kinds) * cell, 10 * cell, 3), 128, dtype=np.uint8)
    for row, kind in enumerate(kinds):
        for pixels, digit in digit_set(rng, kind):
            picture = Image.fromarray(pixels).convert("RGB")
            picture.thumbnail((cell - 4, cell - 4))
            top, left = row * cell + (cell - picture.height) // 2, digit * cell + (cell - picture.width) // 2
            sheet[top : top + picture.height, left : left + picture.width] = np.asarray(picture)
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    """Writes a contact sheet of every kind (``--out``, ``--seed``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("photo_digits.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from PIL import Image

    Image.fromarray(contact_sheet(np.random.default_rng(args.seed))).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
