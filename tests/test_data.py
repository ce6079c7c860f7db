"""MNIST files: parsing, verification, loading, downloading (against a local server), preprocessing."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_fn.data import (
    MNIST_FILES,
    TEST_LABELS,
    DatasetError,
    MnistFile,
    count_batches,
    download_mnist,
    epoch_order,
    load_mnist,
    minibatches,
    parse_idx,
    prepare_images,
    read_idx,
    repository_dataset_dir,
    standardized_range,
)


def idx_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """IDX encoding of a uint8 array (magic 0x0000 08 <ndim>, big-endian dimensions, data)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def small_file(name: str, array: np.ndarray[Any, Any]) -> MnistFile:
    content = idx_bytes(array)
    archive = gzip.compress(content)
    return MnistFile(name, array.shape, hashlib.sha256(content).hexdigest(), hashlib.md5(archive).hexdigest(), len(archive))


# --------------------------------------------------------------------------------------------
# parsing and verification


def test_parse_idx_round_trip() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(images), "x")
    np.testing.assert_array_equal(parsed, images)
    assert not parsed.flags.writeable
    np.testing.assert_array_equal(parse_idx(idx_bytes(np.array([3, 1, 4], np.uint8)), "y"), [3, 1, 4])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x00", "x: truncated: 2 bytes, too short for an IDX header"),
        (b"PK\x03\x04rest", "x: not an IDX file (magic number 0x504b0304, expected 0x00000801 or 0x00000803)"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "x: IDX data type 0x0d, expected 0x08 (unsigned byte)"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "x: truncated inside the IDX header (8 of 16 bytes)"),
        (idx_bytes(np.zeros((2, 3), np.uint8))[:-1], "x: truncated: the header announces 2x3 = 6 bytes of data, the file holds 5"),
        (idx_bytes(np.zeros((2, 3), np.uint8)) + b"\x00", "x: too long: the header announces 2x3 = 6 bytes of data, the file holds 7"),
    ],
)
def test_parse_idx_rejects_bad_content(content: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        parse_idx(content, "x")


def test_read_idx_gz_raw_and_damaged_files(tmp_path: Path) -> None:
    labels = np.array([1, 2, 3], np.uint8)
    expected = small_file("labels", labels)
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    for name in ("labels", "labels.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name, expected=expected), labels)

    (tmp_path / "cut.gz").write_bytes(gzip.compress(idx_bytes(labels))[:-6])
    with pytest.raises(DatasetError, match="cut.gz: corrupt or truncated gzip data"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "plain.gz").write_bytes(idx_bytes(labels))
    with pytest.raises(DatasetError, match="plain.gz: not a gzip file"):
        read_idx(tmp_path / "plain.gz")
    (tmp_path / "changed").write_bytes(idx_bytes(np.array([1, 2, 4], np.uint8)))
    with pytest.raises(DatasetError, match="changed: SHA-256 of the data is [0-9a-f]{64}, expected [0-9a-f]{64}: the file is corrupt"):
        read_idx(tmp_path / "changed", expected=expected)
    (tmp_path / "longer").write_bytes(idx_bytes(np.array([1, 2, 3, 4], np.uint8)))
    with pytest.raises(DatasetError, match=r"longer: expected an array of shape \(3,\) \(labels\), got \(4,\)"):
        read_idx(tmp_path / "longer", expected=expected)
    with pytest.raises(DatasetError, match="missing: cannot read the file"):
        read_idx(tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# the real dataset


def test_the_repository_holds_verified_mnist() -> None:
    dataset = load_mnist(repository_dataset_dir())
    assert dataset.train_images.shape == (60000, 28, 28) and dataset.test_images.shape == (10000, 28, 28)
    assert dataset.train_images.dtype == np.uint8
    assert np.bincount(dataset.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(dataset.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert dataset.train_images.mean() == pytest.approx(33.3184, abs=1e-4)
    assert dataset.train_images.std() == pytest.approx(78.5675, abs=1e-4)
    assert dataset.test_images.mean() == pytest.approx(33.7912, abs=1e-4)
    assert dataset.test_images.std() == pytest.approx(79.1725, abs=1e-4)


def test_load_mnist_accepts_raw_files_and_names_what_is_missing(tmp_path: Path) -> None:
    source = repository_dataset_dir()
    for file in MNIST_FILES:
        if file is TEST_LABELS:
            (tmp_path / file.name).write_bytes(gzip.decompress((source / file.archive_name).read_bytes()))
        else:
            (tmp_path / file.archive_name).symlink_to(source / file.archive_name)
    assert load_mnist(tmp_path).test_labels.shape == (10000,)
    (tmp_path / TEST_LABELS.name).unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz .or t10k-labels-idx1-ubyte. is missing"):
        load_mnist(tmp_path)
    with pytest.raises(DatasetError, match="no such directory"):
        load_mnist(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------
# downloading, against a server on 127.0.0.1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def _serve(root: Path, files: dict[str, np.ndarray[Any, Any]], *, corrupt: bool = False) -> list[MnistFile]:
    entries = []
    for name, array in files.items():
        entry = small_file(name, array)
        archive = bytearray(gzip.compress(idx_bytes(array)))
        if corrupt:
            archive[len(archive) // 2] ^= 0xFF
        (root / f"{name}.gz").write_bytes(bytes(archive))
        entries.append(entry)
    return entries


def test_download_falls_back_to_the_next_mirror(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "good").mkdir()
    files = _serve(root / "good", {"a-labels": np.array([1, 2], np.uint8), "b-images": np.ones((2, 2, 2), np.uint8)})
    progress = io.StringIO()
    target = tmp_path / "cache" / "mnist"
    download_mnist(target, mirrors=[base + "missing/", base + "good/"], files=files, progress=progress)
    for file in files:
        assert read_idx(target / file.archive_name, expected=file).shape == file.shape
    assert "checksum OK" in progress.getvalue()
    assert sorted(path.name for path in target.iterdir()) == ["a-labels.gz", "b-images.gz"]  # no temp files left
    (root / "good" / "a-labels.gz").unlink()
    download_mnist(target, mirrors=[base + "good/"], files=files, progress=None)  # present files are not fetched again


def test_download_rejects_corrupt_archives_and_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    files = _serve(root, {"a-labels": np.array([1, 2, 3], np.uint8)}, corrupt=True)
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError, match="could not download a-labels.gz .*: MD5 [0-9a-f]{32}, expected [0-9a-f]{32}"):
        download_mnist(target, mirrors=[base], files=files, progress=None)
    assert list(target.iterdir()) == []


def test_download_reports_missing_files_and_no_network(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    files = [small_file("a-labels", np.array([1], np.uint8))]
    with pytest.raises(DatasetError, match="a-labels.gz: HTTP 404"):
        download_mnist(tmp_path / "m", mirrors=[base], files=files, progress=None)
    with pytest.raises(DatasetError, match="without network, copy the four MNIST .gz files into .* or pass --dataset DIR"):
        download_mnist(tmp_path / "m", mirrors=["http://127.0.0.1:9/"], files=files, timeout=2, progress=None)


# --------------------------------------------------------------------------------------------
# preprocessing and batching


def test_prepare_images_pads_and_scales_like_the_paper() -> None:
    images = np.array([[[0, 255], [255, 0]]], np.uint8)
    prepared = prepare_images(images, pad=1)
    assert prepared.shape == (1, 1, 4, 4) and prepared.dtype == np.float32
    np.testing.assert_allclose(prepared[0, 0], [[-0.1] * 4, [-0.1, -0.1, 1.175, -0.1], [-0.1, 1.175, -0.1, -0.1], [-0.1] * 4], rtol=1e-6)
    low, high = standardized_range()
    standardized = prepare_images(np.array([[[0, 255]]], np.uint8), pad=0, low=low, high=high, dtype=np.float64)
    np.testing.assert_allclose(standardized[0, 0, 0], [-0.1307 / 0.3081, (1 - 0.1307) / 0.3081])
    with pytest.raises(TypeError, match=r"images: expected uint8 images of shape \(N, H, W\), got float32 array of shape \(1, 2, 2\)"):
        prepare_images(np.zeros((1, 2, 2), np.float32))


def test_batches_cover_every_sample_once_in_a_seeded_order() -> None:
    order = epoch_order(10, np.random.default_rng(3))
    np.testing.assert_array_equal(order, epoch_order(10, np.random.default_rng(3)))
    batches = list(minibatches(order, 4))
    assert [len(batch) for batch in batches] == [4, 4, 2] and count_batches(10, 4) == 3
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    np.testing.assert_array_equal(np.concatenate(list(minibatches(order, 4, start=1))), order[4:])
