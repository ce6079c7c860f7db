"""predict on generated images: both polarities, off-centre, blank, corrupt; the image readers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn import predict
from lenet_fn.data import load_mnist, repository_dataset_dir
from lenet_fn.images import ImageError, mnist_style, read_image


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
    with pytest.raises(ImageError, match="e.pgm: truncated or malformed Netpbm pixel data"):
        read_image(tmp_path / "e.pgm")
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 5)))
    with pytest.raises(ImageError, match=r"f.npy: expected a 2-D image \(H, W\) or \(H, W, channels\), got shape \(2, 3, 5\)"):
        read_image(tmp_path / "f.npy")


def test_a_bad_checkpoint_is_exit_status_2(tmp_path: Path) -> None:
    status, _, err = _run([str(tmp_path / "x.pgm"), "--checkpoint", str(tmp_path / "none.npz")])
    assert status == 2 and err == f"error: {tmp_path / 'none.npz'}: no such file\n"
