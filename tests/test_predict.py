"""predict on generated images: both polarities, off-centre, blank, corrupt; the image readers: bit depths,
transparency, value ranges, Netpbm's limits, pixel limits checked from headers, and their peak memory."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import predict
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.digits import mnist_style
from lenet_fn.images import ImageError, read_image


@pytest.fixture(scope="module")
def digits() -> Any:
    dataset = load_mnist(repository_dataset_dir())
    return dataset.test_images[:40], dataset.test_labels[:40]


def _write_pgm(path: Path, pixels: np.ndarray[Any, Any]) -> Path:
    header = f"P5\n# written by a test\n{pixels.shape[1]} {pixels.shape[0]}\n255\n".encode()
    path.write_bytes(header + pixels.astype(np.uint8).tobytes())
    return path


def _scene(digit: np.ndarray[Any, Any], *, dark_on_light: bool, top: int, left: int, size: tuple[int, int] = (90, 120)) -> np.ndarray[Any, Any]:
    """The digit, scaled 2x, pasted off-centre on a larger canvas, in either polarity."""
    canvas = np.zeros(size)
    big = np.kron(digit.astype(float), np.ones((2, 2)))
    canvas[top : top + 56, left : left + 56] = big
    return 255 - canvas if dark_on_light else canvas


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return predict.main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_predict_reads_both_polarities_off_centre_in_every_format(digits: Any, tmp_path: Path) -> None:
    from PIL import Image

    images, labels = digits
    paths, expected = [], []
    for index in range(12):
        scene = _scene(images[index], dark_on_light=index % 2 == 0, top=5 + index, left=60 - 4 * index)
        suffix = (".pgm", ".png", ".npy", ".jpg")[index % 4]
        path = tmp_path / f"digit{index}{suffix}"
        if suffix == ".pgm":
            _write_pgm(path, scene)
        elif suffix == ".npy":
            np.save(path, scene.astype(np.uint8))
        else:
            Image.fromarray(scene.astype(np.uint8)).save(path, quality=95)
        paths.append(str(path))
        expected.append(int(labels[index]))
    status, out, err = _run(paths)
    assert status == 0 and err == ""
    predicted = [int(line.split(": ", 1)[1].split()[0]) for line in out.splitlines()]
    assert sum(p == e for p, e in zip(predicted, expected, strict=True)) >= 11  # the shipped model on real digits, re-framed
    assert "(RBF distances, the smallest wins)  0: " in out.splitlines()[0]


def test_a_blank_or_corrupt_image_gets_one_line_and_the_others_are_classified(digits: Any, tmp_path: Path) -> None:
    images, _ = digits
    good = _write_pgm(tmp_path / "good.pgm", _scene(images[0], dark_on_light=True, top=10, left=10))
    blank = _write_pgm(tmp_path / "blank.pgm", np.full((40, 40), 200))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    status, out, err = _run([str(blank), str(good), str(corrupt), str(tmp_path / "missing.pgm")])
    assert status == 1
    assert out.startswith(f"{good}: 7 ")
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"error: {blank}: no digit found")
    assert lines[1].startswith(f"error: {corrupt}: not a readable image")
    assert lines[2] == f"error: {tmp_path / 'missing.pgm'}: no such file"


def test_mnist_style_centres_by_mass_and_fits_20_pixels(digits: Any) -> None:
    images, _ = digits
    scene = _scene(images[3], dark_on_light=True, top=30, left=0)
    digit = mnist_style(scene / 255.0)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    mass = digit.astype(float)
    centre = [(mass.sum(axis=1) * np.arange(28)).sum() / mass.sum(), (mass.sum(axis=0) * np.arange(28)).sum() / mass.sum()]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.3)
    rows, columns = np.nonzero(digit > 25)
    assert max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 <= 22  # about 20 pixels, as in MNIST


def test_netpbm_variants(tmp_path: Path) -> None:
    (tmp_path / "a.pbm").write_bytes(b"P1\n# comment\n3 2\n1 0 1\n0 1 0\n")
    np.testing.assert_array_equal(read_image(tmp_path / "a.pbm"), [[0, 1, 0], [1, 0, 1]])  # 1 is black
    (tmp_path / "b.pbm").write_bytes(b"P4\n3 2\n" + bytes([0b10100000, 0b01000000]))
    np.testing.assert_array_equal(read_image(tmp_path / "b.pbm"), [[0, 1, 0], [1, 0, 1]])
    (tmp_path / "c.pgm").write_bytes(b"P2\n2 1\n10\n0 5\n")
    np.testing.assert_allclose(read_image(tmp_path / "c.pgm"), [[0, 0.5]])
    (tmp_path / "d.ppm").write_bytes(b"P6\n1 1\n255\n" + bytes([255, 0, 0]))
    np.testing.assert_allclose(read_image(tmp_path / "d.ppm"), [[0.299]])
    (tmp_path / "e.pgm").write_bytes(b"P5\n4 4\n255\n\x00\x00")
    with pytest.raises(ImageError, match="e.pgm: truncated Netpbm pixel data"):
        read_image(tmp_path / "e.pgm")
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 5)))
    with pytest.raises(ImageError, match=r"f.npy: expected a 2-D image \(H, W\) or \(H, W, channels\) with 1 to 4 channels, got shape \(2, 3, 5\)$"):
        read_image(tmp_path / "f.npy")


def test_a_bad_checkpoint_is_exit_status_2(tmp_path: Path) -> None:
    status, _, err = _run([str(tmp_path / "x.pgm"), "--checkpoint", str(tmp_path / "none.npz")])
    assert status == 2 and err == f"error: {tmp_path / 'none.npz'}: no such file\n"


# --------------------------------------------------------------------------------------------
# reading: bit depths, transparency, value ranges


def _predicted(out: str) -> list[int]:
    return [int(line.split(": ", 1)[1].split()[0]) for line in out.splitlines()]


def _big_seven(digits: Any) -> np.ndarray[Any, Any]:
    """MNIST's first test digit (a 7), 4x enlarged, ink in [0, 1], shape (112, 112)."""
    images, labels = digits
    assert labels[0] == 7
    return np.kron(images[0].astype(float) / 255, np.ones((4, 4)))


def test_a_16_bit_png_is_read_at_full_depth(digits: Any, tmp_path: Path) -> None:
    from PIL import Image

    pixels = np.round(65535 - _big_seven(digits) * 60000).astype(np.uint16)  # dark ink on white, all above 255
    Image.fromarray(pixels).save(tmp_path / "seven16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "seven16.png"), pixels / 65535)
    status, out, err = _run([str(tmp_path / "seven16.png")])
    assert status == 0 and err == "" and _predicted(out) == [7]


def _transparent(ink: np.ndarray[Any, Any], folder: Path, how: str) -> Path:
    """The digit as ink on a transparent background, written five ways; transparent pixels hold black (RGB 0)."""
    from PIL import Image

    opacity = np.round(ink * 255).astype(np.uint8)
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[:, :, 3] = opacity
    if how == "rgba_png":
        Image.fromarray(rgba).save(folder / "ink.png")
    elif how == "la_png":
        Image.fromarray(np.stack([np.zeros_like(opacity), opacity], axis=-1), mode="LA").save(folder / "ink.png")
    elif how == "palette_png":  # index 0: black and transparent, index 1: black ink
        palette = Image.frombytes("P", ink.shape[::-1], (ink > 0.5).astype(np.uint8).tobytes())
        palette.putpalette([0, 0, 0, 0, 0, 0])
        palette.save(folder / "ink.png", transparency=0)
    elif how == "white_ink_png":
        rgba[:, :, :3] = 255
        Image.fromarray(rgba).save(folder / "ink.png")
    else:
        np.save(folder / "ink.npy", rgba)
        return folder / "ink.npy"
    return folder / "ink.png"


@pytest.mark.parametrize("how", ["rgba_png", "la_png", "palette_png", "white_ink_png", "rgba_npy"])
def test_transparent_pixels_are_background_and_the_opaque_ones_ink(digits: Any, tmp_path: Path, how: str) -> None:
    path = _transparent(_big_seven(digits), tmp_path, how)
    status, out, err = _run([str(path)])
    assert status == 0 and err == "" and _predicted(out) == [7]
    gray = read_image(path)
    corner, ink = gray[0, 0], gray[_big_seven(digits) > 0.9]
    assert abs(float(corner) - float(ink.mean())) > 0.9  # background and ink at opposite ends


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([[0, 128, 255]], dtype=np.int64), np.array([[0, 128 / 255, 1]])),  # within 0-255: 8-bit
        (np.array([[0, 1000, 65535]], dtype=np.int32), np.array([[0, 1000 / 65535, 1]])),  # within 0-65535: 16-bit
        (np.array([[-10, 0, 10]], dtype=np.int16), np.array([[0, 0.5, 1]])),  # negative: minimum to maximum
        (np.array([[0, 2**20]], dtype=np.uint32), np.array([[0, 1]])),  # beyond 16 bits: minimum to maximum
        (np.array([[False, True]]), np.array([[0, 1]])),
    ],
)
def test_integer_arrays_take_their_range_from_their_values(tmp_path: Path, values: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> None:
    np.save(tmp_path / "a.npy", values)
    np.testing.assert_allclose(read_image(tmp_path / "a.npy"), expected)


def test_an_int64_array_of_a_digit_is_classified(digits: Any, tmp_path: Path) -> None:
    np.save(tmp_path / "seven.npy", np.round(_big_seven(digits) * 255).astype(np.int64))
    status, out, err = _run([str(tmp_path / "seven.npy")])
    assert status == 0 and err == "" and _predicted(out) == [7]


# --------------------------------------------------------------------------------------------
# reading: Netpbm's limits


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"P2\n2 2\n255\n0 100000000000000000000000 0 0\n", "a pixel value (16 digits or more) above the header's maximum value 255 (P2)"),
        (b"P2\n2 1\n255\n0 300\n", "a pixel value (300) above the header's maximum value 255 (P2)"),
        (b"P3\n1 1\n100\n0 0 101\n", "a pixel value (101) above the header's maximum value 100 (P3)"),
        (b"P5\n2 1\n100\n\x00\xc8", "a pixel value (200) above the header's maximum value 100 (P5)"),
        (b"P1\n2 1\n0 2\n", "a pixel value (2) above the header's maximum value 1 (P1)"),
        (b"P2\n2 1\n255\n0 -3\n", "malformed Netpbm pixel data (P2: a character that is neither a digit nor a space)"),
        (b"P5\n1000000000 1000000000\n255\n\x00", "1000000000 x 1000000000 pixels (1000000000000.0 megapixels) is more than the 25-megapixel limit"),
        (b"P5\n1000 1000\n255\n" + bytes(10), "truncated Netpbm pixel data (P5, 1000x1000 needs 1,000,000 bytes, the file holds 10)"),
        (b"P2\n1000 1000\n255\n0 0 0\n", "truncated Netpbm pixel data (P2, 1000x1000 needs 1,999,999 bytes, the file holds 6)"),
        (b"P2\n3 1\n255\n0 0                 \n", "truncated Netpbm pixel data (P2, 3x1: 2 of 3 values)"),
    ],
)
def test_netpbm_pixels_and_sizes_are_checked_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad.pnm").write_bytes(content)
    with pytest.raises(ImageError) as raised:
        read_image(tmp_path / "bad.pnm")
    assert str(raised.value) == f"{tmp_path / 'bad.pnm'}: {message}"


def test_plain_netpbm_reads_long_files_in_blocks(tmp_path: Path) -> None:
    """Numbers that straddle the reader's blocks (a million bytes each) are read whole."""
    values = np.random.default_rng(1).integers(0, 65536, size=(500, 700))
    text = "P2\n700 500\n65535\n" + "\n".join(" ".join(map(str, row)) for row in values) + "\n"
    (tmp_path / "long.pgm").write_text(text)
    np.testing.assert_array_equal(read_image(tmp_path / "long.pgm"), values / 65535)


# --------------------------------------------------------------------------------------------
# reading: pixel limits from headers, memory


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png(path: Path, width: int, height: int, row: Callable[[int], bytes] | None) -> Path:
    """An 8-bit grayscale PNG compressed a row at a time (``row(y)``: its ``width`` bytes), never whole in
    memory; without ``row``, only the header (a file that claims its size and holds no pixel)."""
    deflate = zlib.compressobj(1)
    data = b"".join(deflate.compress(b"\x00" + row(y)) for y in range(height)) + deflate.flush() if row else b""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + (_png_chunk(b"IDAT", data) if row else b"") + _png_chunk(b"IEND", b""))
    return path


def _npy_header(path: Path, shape: tuple[int, ...], data: bytes = b"") -> Path:
    with path.open("wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<f8", "fortran_order": False, "shape": shape})
        file.write(data)
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("27mp.png", "6000 x 4500 pixels (27.0 megapixels) is more than the 25-megapixel limit"),
        ("100mp.png", "10000 x 10000 pixels (100.0 megapixels) is more than the 25-megapixel limit"),  # Pillow warns
        ("200mp.png", "200.0 megapixels is more than the 25-megapixel limit"),  # Pillow refuses to open it
        ("huge.npy", "100000 x 100000 pixels (10000.0 megapixels) is more than the 25-megapixel limit"),
        ("short.npy", "the .npy header declares shape (10, 10) of float64 (800 bytes), the file holds 40 bytes of data"),
    ],
)
def test_too_many_pixels_are_refused_from_the_header(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    if name.endswith(".png"):  # the header alone: nothing past it may be read
        width, height = {"27mp.png": (6000, 4500), "100mp.png": (10000, 10000), "200mp.png": (20000, 10000)}[name]
        _write_png(path, width, height, None)
    else:
        _npy_header(path, (100000, 100000) if name == "huge.npy" else (10, 10), bytes(40))
    status, out, err = _run([str(path)])
    assert (status, out, err) == (1, "", f"error: {path}: {message}\n")


def test_a_jpeg_above_the_limit_is_decoded_at_a_smaller_scale(digits: Any, tmp_path: Path) -> None:
    from PIL import Image

    scene = np.full((4000, 7000), 255, dtype=np.uint8)
    scene[1000:3240, 2000:4240] = np.round(255 - np.kron(_big_seven(digits), np.ones((20, 20))) * 255).astype(np.uint8)
    Image.fromarray(scene).save(tmp_path / "big.jpg", quality=80)
    assert read_image(tmp_path / "big.jpg").shape == (2000, 3500)  # 28 megapixels, read at half scale
    status, out, err = _run([str(tmp_path / "big.jpg")])
    assert status == 0 and err == "" and _predicted(out) == [7]


def test_every_image_that_fails_is_one_line_and_the_others_are_classified(digits: Any, tmp_path: Path) -> None:
    good = _write_pgm(tmp_path / "good.pgm", _scene(digits[0][0], dark_on_light=True, top=10, left=10))
    huge = _write_png(tmp_path / "huge.png", 10000, 10000, lambda y: b"\xff" * 10000)
    header = _npy_header(tmp_path / "huge.npy", (100000, 100000))
    status, out, err = _run([str(huge), str(good), str(header), str(good)])
    assert status == 1
    assert _predicted(out) == [7, 7]
    assert [line.split(": ")[1] for line in err.splitlines()] == [str(huge), str(header)]


_PEAK_RSS = """import io, resource, sys
from lenet_fn import predict
status = predict.main(sys.argv[1:], stdout=io.StringIO(), stderr=io.StringIO())
print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mib(*paths: Path) -> tuple[int, int]:
    """(exit status, peak resident memory in MiB) of a fresh interpreter running predict on the files."""
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, *map(str, paths)], capture_output=True, text=True, check=True)
    status, peak = done.stdout.split()
    return int(status), int(peak)


def test_peak_memory_of_refused_and_large_images(digits: Any, tmp_path: Path) -> None:
    """A refused file costs nothing; a 12-megapixel photo under twice its float64 copy (96 MB). Before the limits,
    the 10000 x 10000 PNG took 1.6 GB and the .npy header ended in NumPy's memory error."""
    good = _write_pgm(tmp_path / "good.pgm", _scene(digits[0][0], dark_on_light=True, top=10, left=10))
    huge = _write_png(tmp_path / "huge.png", 10000, 10000, lambda y: b"\xff" * 10000)
    header = _npy_header(tmp_path / "huge.npy", (100000, 100000))
    seven = np.round(255 - _big_seven(digits)[::4, ::4] * 255).astype(np.uint8)  # 28 x 28, 100x on 4000 x 3000
    photo = _write_png(tmp_path / "photo.png", 4000, 3000, lambda y: bytes(np.repeat(seven[min(27, y // 100)], 100).tolist() + [255] * 1200))
    base_status, base = _peak_mib(good)
    refused_status, refused = _peak_mib(huge, header, good)
    photo_status, large = _peak_mib(photo)
    assert (base_status, refused_status, photo_status) == (0, 1, 0)
    assert refused - base < 20
    assert large - base < 2 * 96


@pytest.mark.parametrize("shape", [(1, 700), (2, 1300), (700, 1), (1, 1)])
def test_a_picture_a_pixel_or_two_high_is_no_digit_not_a_crash(shape: tuple[int, int]) -> None:
    with pytest.raises(ImageError, match=r"^picture: no digit found"):
        mnist_style(np.random.default_rng(0).random(shape), source="picture")


def test_plain_netpbm_numbers_longer_than_any_value_are_refused_before_they_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "long.pgm"
    path.write_bytes(b"P2 1000 1000 255\n" + b"1" * 3_000_000)  # no space: one number of 3 million digits
    with pytest.raises(ImageError, match=r"a number of more than 64 digits\)$"):
        read_image(path)
    path.write_bytes(b"P2 2 2 255\n# a comment\n1 2 # another\r3\n4 #to the end")
    np.testing.assert_allclose(read_image(path), np.array([[1, 2], [3, 4]]) / 255)
