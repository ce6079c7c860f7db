"""MNIST: reading and verifying IDX files, downloading them, preprocessing and seeded mini-batches.

Every problem with a file (missing, not gzip, truncated, wrong header, wrong checksum) raises a
``DatasetError`` whose one-line message names the file and what is wrong. A file is never read
beyond what its header announces, and a header is checked before its data is read, so reading a
file takes the memory of its array, whatever the file holds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs
import numpy as np
import numpy.typing as npt

from lenet_fn.arrays import ByteArray, FloatArray, IntArray, check_float_dtype, check_int
from lenet_fn.atomic import write_atomically
from lenet_fn.bounded_read import DEFLATE_MAX_EXPANSION



class DatasetError(ValueError):
    """A dataset file is missing, unreadable or not what it should be (one-line message)."""


@attrs.frozen
class MnistFile:
    """One of the four MNIST files.

    Attributes:
        name: the raw file name (the ``.gz`` name adds the suffix).
        shape: the array it holds: (count, 28, 28) images or (count,) labels.
        sha256: SHA-256 of the decompressed IDX bytes.
        archive_md5: MD5 of the official ``.gz`` archive (for the downloader).
        archive_size: size in bytes of the official archive.
    """

    name: str
    shape: tuple[int, ...]
    sha256: str
    archive_md5: str
    archive_size: int

    @property
    def archive_name(self) -> str:
        return self.name + ".gz"


TRAIN_IMAGES = MnistFile(
    "train-images-idx3-ubyte", (60000, 28, 28),
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422,
)  # fmt: skip
TRAIN_LABELS = MnistFile(
    "train-labels-idx1-ubyte", (60000,),
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", "d53e105ee54ea40749a09fcbcd1e9432", 28881,
)  # fmt: skip
TEST_IMAGES = MnistFile(
    "t10k-images-idx3-ubyte", (10000, 28, 28),
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", "9fb629c4189551a2d022fa330f9573f3", 1648877,
)  # fmt: skip
TEST_LABELS = MnistFile(
    "t10k-labels-idx1-ubyte", (10000,),
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", "ec29112dd5afa0611ce80d1b7f02629c", 4542,
)  # fmt: skip
MNIST_FILES: tuple[MnistFile, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

MIRRORS: tuple[str, ...] = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
"""Where the official archives are, tried in this order (torchvision's order)."""

MNIST_MEAN = 0.1307
"""Mean pixel of the MNIST training set, as a fraction of 255 (33.3184 / 255)."""
MNIST_STD = 0.3081
"""Standard deviation of the MNIST training pixels, as a fraction of 255 (78.5675 / 255)."""

_IDX_UNSIGNED_BYTE = 0x08
_READ_CHUNK = 1 << 20
"""Bytes read and hashed at a time: the file's data goes straight into its array, never held twice."""


# --------------------------------------------------------------------------------------------
# reading


def _idx_dimensions(start: bytes, source: str) -> int:
    """The number of dimensions announced by the first 4 bytes of an IDX file (its magic checked)."""
    if len(start) < 4:
        raise DatasetError(f"{source}: truncated: {len(start)} bytes, too short for an IDX header")
    if start[0:2] != b"\x00\x00":
        magic = int.from_bytes(start[:4], "big")
        raise DatasetError(f"{source}: not an IDX file (magic number 0x{magic:08x}, expected 0x00000801 or 0x00000803)")
    if start[2] != _IDX_UNSIGNED_BYTE:
        raise DatasetError(f"{source}: IDX data type 0x{start[2]:02x}, expected 0x08 (unsigned byte)")
    return start[3]


def _idx_shape(head: bytes, source: str) -> tuple[int, ...]:
    """The shape announced by the IDX header at the start of ``head``."""
    ndim = _idx_dimensions(head[:4], source)
    header_size = 4 + 4 * ndim
    if len(head) < header_size:
        raise DatasetError(f"{source}: truncated inside the IDX header ({len(head)} of {header_size} bytes)")
    return tuple(int.from_bytes(head[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(ndim))


def _wrong_length(source: str, shape: tuple[int, ...], held: int | None) -> DatasetError:
    """The error for data of ``held`` bytes (``None``: more than announced) where ``shape`` is announced."""
    announced = math.prod(shape)
    what = "truncated" if held is not None and held < announced else "too long"
    return DatasetError(
        f"{source}: {what}: the header announces {'x'.join(map(str, shape))} = {announced} bytes of data, "
        f"the file holds {'more' if held is None else held}"
    )


def parse_idx(content: bytes, source: str) -> ByteArray:
    """Parses IDX bytes of unsigned bytes (MNIST's format) into a read-only array.

    Args:
        content: the decompressed file.
        source: the file's name, for error messages.

    Returns:
        A read-only uint8 array of the shape the header announces.
    """
    shape = _idx_shape(content, source)
    header_size = 4 + 4 * len(shape)
    if len(content) - header_size != math.prod(shape):
        raise _wrong_length(source, shape, len(content) - header_size)
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def _check_announced(source: str, shape: tuple[int, ...], file_size: int, *, compressed: bool, expected: MnistFile | None) -> None:
    """Refuses, before any data is read, a header ``expected`` does not announce, or one announcing
    more data than the file can hold: a raw file's size is its header and data, a gzip file
    inflates at most ``DEFLATE_MAX_EXPANSION`` times its size."""
    if expected is not None and shape != expected.shape:
        raise DatasetError(f"{source}: expected an array of shape {expected.shape} ({expected.name}), got {shape}")
    header_size = 4 + 4 * len(shape)
    if not compressed and file_size != header_size + math.prod(shape):
        raise _wrong_length(source, shape, file_size - header_size)
    if compressed and header_size + math.prod(shape) > DEFLATE_MAX_EXPANSION * file_size:
        raise DatasetError(
            f"{source}: the header announces {'x'.join(map(str, shape))} = {math.prod(shape)} bytes of data, more than "
            f"a gzip file of {file_size} bytes can inflate to (deflate expands at most {DEFLATE_MAX_EXPANSION}:1)"
        )


def _read_payload(stream: io.BufferedIOBase, head: bytes, shape: tuple[int, ...], source: str) -> tuple[ByteArray, str]:
    """Reads the data ``head`` announces into one array, then checks nothing follows; the array and
    the SHA-256 of header and data, hashed as the data streams."""
    digest = hashlib.sha256(head)
    payload = np.empty(math.prod(shape), dtype=np.uint8)
    buffer = payload.data
    held = 0
    while held < len(buffer):
        count = stream.readinto(buffer[held : held + _READ_CHUNK])
        if not count:
            raise _wrong_length(source, shape, held)
        digest.update(buffer[held : held + count])
        held += count
    if stream.read(1):
        raise _wrong_length(source, shape, None)
    payload.flags.writeable = False
    return payload.reshape(shape), digest.hexdigest()


def _read_idx_file(file: io.BufferedIOBase, source: str, *, suffix: str, expected: MnistFile | None) -> tuple[ByteArray, str]:
    """The array of an open IDX file (gzip or raw) and the SHA-256 of its IDX bytes."""
    status = os.fstat(file.fileno())
    if not stat.S_ISREG(status.st_mode):
        raise DatasetError(f"{source}: not a regular file (expected an IDX file, gzip-compressed or raw)")
    compressed = file.read(2) == b"\x1f\x8b"
    file.seek(0)
    if not compressed and suffix == ".gz":
        raise DatasetError(f"{source}: not a gzip file (it does not start with the gzip magic bytes)")
    stream = gzip.GzipFile(fileobj=file, mode="rb") if compressed else file
    start = stream.read(4)
    head = start + stream.read(4 * _idx_dimensions(start, source))
    shape = _idx_shape(head, source)
    _check_announced(source, shape, status.st_size, compressed=compressed, expected=expected)
    return _read_payload(stream, head, shape, source)


def read_idx(path: str | os.PathLike[str], *, expected: MnistFile | None = None) -> ByteArray:
    """Reads an IDX file (gzip-compressed or raw) and, given ``expected``, verifies it.

    The header is read first, and the data only once the header is possible: of
    ``expected.shape`` when given, announcing a raw file's exact size, or no more than the gzip
    file can inflate to. The data is read into one array, hashed as it streams, and a gzip file
    is refused as soon as it holds a byte more; so memory stays the size of the announced array
    whatever the file holds. Verification: the IDX magic and dimensions against
    ``expected.shape``, and the SHA-256 of the decompressed bytes against ``expected.sha256``.

    Args:
        path: the file.
        expected: what the file must hold, or ``None`` to only parse it.

    Returns:
        A read-only uint8 array, e.g. (60000, 28, 28) images or (60000,) labels.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            array, digest = _read_idx_file(file, str(path), suffix=path.suffix, expected=expected)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({error})") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the file ({error.strerror or error})") from None
    if expected is not None and digest != expected.sha256:
        raise DatasetError(f"{path}: SHA-256 of the data is {digest}, expected {expected.sha256}: the file is corrupt")
    return array


@attrs.frozen(eq=False)
class Mnist:
    """The MNIST dataset: read-only uint8 images (N, 28, 28) and labels (N,) for training and test."""

    train_images: ByteArray
    train_labels: ByteArray
    test_images: ByteArray
    test_labels: ByteArray


def find_file(root: Path, file: MnistFile) -> Path | None:
    """The ``.gz`` or raw copy of ``file`` in ``root`` (the ``.gz`` first), or ``None``."""
    for name in (file.archive_name, file.name):
        if (root / name).is_file():
            return root / name
    return None


def load_mnist(root: str | os.PathLike[str]) -> Mnist:
    """Loads and verifies the four MNIST files found in ``root`` (``.gz`` or raw names).

    Args:
        root: the directory holding the files.

    Returns:
        The dataset, every file checked (header, shape, SHA-256, label range).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory (expected a directory holding the four MNIST files)")
    arrays = []
    for file in MNIST_FILES:
        path = find_file(root, file)
        if path is None:
            raise DatasetError(f"{root}: {file.archive_name} (or {file.name}) is missing; expected the four MNIST files")
        arrays.append(read_idx(path, expected=file))
    for labels, file in ((arrays[1], TRAIN_LABELS), (arrays[3], TEST_LABELS)):
        if labels.max() > 9:
            raise DatasetError(f"{root / file.name}: labels must be digits 0-9, found {int(labels.max())}")
    return Mnist(*arrays)


# --------------------------------------------------------------------------------------------
# locating and downloading


def repository_dataset_dir() -> Path:
    """``data/mnist`` of the source tree this package runs from (present in a clone, not in a wheel)."""
    return Path(__file__).resolve().parent.parent / "data" / "mnist"


def cache_dataset_dir() -> Path:
    """Where downloads go: ``$LENET_FN_DATA``, else ``$XDG_CACHE_HOME/lenet_fn/mnist``, else ``~/.cache/lenet_fn/mnist``."""
    if os.environ.get("LENET_FN_DATA"):
        return Path(os.environ["LENET_FN_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lenet_fn" / "mnist"


def has_mnist(root: Path) -> bool:
    """Whether ``root`` holds some copy of each of the four files (not verified)."""
    return all(find_file(root, file) is not None for file in MNIST_FILES)


def default_dataset_dir() -> Path:
    """The repository's ``data/mnist`` when it holds the files, else the download cache."""
    repository = repository_dataset_dir()
    return repository if has_mnist(repository) else cache_dataset_dir()


def load_or_download_mnist(root: str | os.PathLike[str] | None = None, *, progress: IO[str] | None = sys.stderr) -> Mnist:
    """MNIST from ``root``; without one, from ``default_dataset_dir()``, downloading it there if missing.

    Args:
        root: a directory holding the four files, or ``None``.
        progress: where the download reports (``None`` for silence).

    Returns:
        The verified dataset.
    """
    if root is not None:
        return load_mnist(root)
    default = default_dataset_dir()
    if not has_mnist(default):
        if progress is not None:
            print(f"MNIST is not in {default}: downloading it", file=progress)
        download_mnist(default, progress=progress)
    return load_mnist(default)


def _report(progress: IO[str] | None, text: str, *, final: bool) -> None:
    if progress is None:
        return
    if progress.isatty():
        progress.write("\r" + text + ("\n" if final else ""))
    elif final:
        progress.write(text + "\n")
    progress.flush()


def _fetch(url: str, destination: Path, *, md5: str, size: int, timeout: float, progress: IO[str] | None) -> None:
    """Streams ``url`` to ``destination`` (atomically), which appears only if its MD5 matches."""

    def stream_and_verify(output: IO[bytes]) -> None:
        digest = hashlib.md5()
        received = 0
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or size)
            while chunk := response.read(1 << 16):
                output.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                _report(progress, f"{destination.name}: {received / 1e6:.1f} / {total / 1e6:.1f} MB", final=False)
        if digest.hexdigest() != md5:
            raise DatasetError(f"MD5 {digest.hexdigest()}, expected {md5}")
        _report(progress, f"{destination.name}: {received / 1e6:.1f} MB from {url}, checksum OK", final=True)

    write_atomically(destination, stream_and_verify)


def download_mnist(
    root: str | os.PathLike[str],
    *,
    mirrors: Sequence[str] = MIRRORS,
    files: Sequence[MnistFile] = MNIST_FILES,
    timeout: float = 30.0,
    progress: IO[str] | None = sys.stderr,
) -> Path:
    """Downloads the official MNIST archives that ``root`` lacks.

    Each archive is streamed into a temp file in ``root`` and renamed to its final name only once
    its MD5 matches; a mirror that fails (network, HTTP error, wrong checksum) passes the file to
    the next one. Progress goes to ``progress`` (stderr by default; ``None`` for silence).

    Args:
        root: the directory to fill (created if needed).
        mirrors: base URLs, tried in order.
        files: the files to fetch, with their archive MD5s.
        timeout: seconds to wait for a server.
        progress: where progress lines go.

    Returns:
        ``root``.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"{root}: cannot create the dataset directory ({error.strerror or error})") from None
    for file in files:
        if find_file(root, file) is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + file.archive_name
            try:
                _fetch(url, root / file.archive_name, md5=file.archive_md5, size=file.archive_size,
                       timeout=timeout, progress=progress)  # fmt: skip
                break
            except urllib.error.HTTPError as error:
                failures.append(f"{url}: HTTP {error.code} {error.reason}")
            except (urllib.error.URLError, OSError) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                failures.append(f"{url}: {reason}")
            except DatasetError as error:
                failures.append(f"{url}: {error}")
        else:
            raise DatasetError(
                f"could not download {file.archive_name} ({'; '.join(failures)}); without network, copy the four "
                f"MNIST .gz files into {root} or pass --dataset DIR"
            )
    return root


# --------------------------------------------------------------------------------------------
# preprocessing and batching


def prepare_images(
    images: ByteArray, *, pad: int = 2, low: float = -0.1, high: float = 1.175, dtype: npt.DTypeLike = np.float32
) -> FloatArray:
    """uint8 images to network inputs: pixel 0 -> ``low``, 255 -> ``high``, padded with ``low``.

    The defaults are LeNet-5's (LeCun et al. 1998): 28x28 padded to 32x32, background -0.1,
    foreground 1.175, i.e. ``x * 1.275 / 255 - 0.1``.

    Args:
        images: uint8, shape (N, H, W).
        pad: pixels of background added on each side.
        low: the value of a 0 pixel (and of the padding).
        high: the value of a 255 pixel.
        dtype: float32 or float64.

    Returns:
        Array of shape (N, 1, H + 2 pad, W + 2 pad).
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        got = f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"images: expected uint8 images of shape (N, H, W), got {got}")
    pad = check_int("pad", pad, minimum=0)
    float_dtype = check_float_dtype("dtype", dtype)
    n, h, w = images.shape
    out = np.full((n, 1, h + 2 * pad, w + 2 * pad), low, dtype=float_dtype)
    inner = out[:, 0, pad : pad + h, pad : pad + w]
    np.multiply(images, (high - low) / 255.0, out=inner, casting="unsafe")
    inner += low
    return out


def standardized_range() -> tuple[float, float]:
    """(low, high) for ``prepare_images`` that standardise with the MNIST training mean and std."""
    return -MNIST_MEAN / MNIST_STD, (1.0 - MNIST_MEAN) / MNIST_STD


def epoch_order(count: int, rng: np.random.Generator) -> IntArray:
    """A random order of ``count`` samples for one epoch (a permutation, from ``rng``)."""
    count = check_int("count", count, minimum=1)
    return rng.permutation(count)


def minibatches(order: IntArray, batch_size: int, *, start: int = 0) -> Iterator[IntArray]:
    """Consecutive slices of ``order`` of ``batch_size`` indices (the last may be shorter).

    Args:
        order: sample indices for the epoch, shape (N,).
        batch_size: indices per batch.
        start: the index of the first batch to yield (to resume an epoch).

    Yields:
        Index arrays of shape (batch_size,) (the last one possibly shorter).
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    for begin in range(start * batch_size, len(order), batch_size):
        yield order[begin : begin + batch_size]


def count_batches(count: int, batch_size: int) -> int:
    """The number of batches ``minibatches`` yields for ``count`` samples."""
    return -(-count // batch_size)


def subset(images: ByteArray, labels: ByteArray, limit: int | None) -> tuple[ByteArray, ByteArray]:
    """The first ``limit`` samples (all when ``limit`` is None)."""
    if limit is None:
        return images, labels
    limit = check_int("limit", limit, minimum=1)
    return images[:limit], labels[:limit]


def standard_prepare(input_shape: tuple[int, ...]) -> Callable[[ByteArray, npt.DTypeLike], FloatArray]:
    """The input preparation for MNIST digits of ``input_shape``: standardised (mean 0, variance 1
    over the training set), padded to (1, H, W) with H = W = 28 + 2 pad, or flattened to (784,)."""
    low, high = standardized_range()
    if input_shape == (784,):
        return lambda images, dtype: prepare_images(images, pad=0, low=low, high=high, dtype=dtype).reshape(images.shape[0], -1)
    if len(input_shape) == 3 and input_shape[0] == 1 and input_shape[1] == input_shape[2] >= 28 and (input_shape[1] - 28) % 2 == 0:
        pad = (input_shape[1] - 28) // 2
        return lambda images, dtype: prepare_images(images, pad=pad, low=low, high=high, dtype=dtype)
    raise ValueError(f"prepare: MNIST digits are prepared as (1, 28 + 2 pad, 28 + 2 pad) or (784,); for input_shape {input_shape} give prepare=")
