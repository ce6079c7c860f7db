"""Small hostile files stay small in memory: every reader checks what a file announces (IDX
header, file size, zip directory, .npy headers, metadata) before it allocates, and refuses in one
line. Peak memory is measured in a fresh interpreter (``ru_maxrss`` of the child), against the
baseline of one that only imports lenet_fn."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from lenet_fn.checkpoint import CheckpointError, load_checkpoint
from lenet_fn.data import TRAIN_IMAGES, TRAIN_LABELS, DatasetError, read_idx, repository_dataset_dir

REPOSITORY = Path(__file__).resolve().parents[1]
WEIGHTS = REPOSITORY / "lenet_fn" / "weights" / "lenet5.npz"
MIB = 1 << 20
GIB = 1 << 30
_ZEROS = bytes(16 * MIB)


# --------------------------------------------------------------------------------------------
# making hostile files (also used by benchmarks/hostile_files.py)


def idx_header(shape: tuple[int, ...]) -> bytes:
    """The IDX header of unsigned bytes of ``shape`` (magic 0x0000 08 <ndim>, big-endian sizes)."""
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(size.to_bytes(4, "big") for size in shape)


def deflated_zeros(prefix: bytes, total: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``prefix`` then zeros, ``total`` bytes once inflated, and its CRC-32.

    Each 16 MiB of zeros is compressed once and repeated: a full flush ends every block on a byte
    boundary with the compressor's history cleared, so repeated blocks stay a valid stream.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(total - len(prefix), len(_ZEROS))
    end = compressor.compress(bytes(rest)) + compressor.flush()
    crc = zlib.crc32(prefix)
    for _ in range(blocks):
        crc = zlib.crc32(_ZEROS, crc)
    return start + block * blocks + end, zlib.crc32(bytes(rest), crc)


def gzip_bomb(path: Path, shape: tuple[int, ...], total: int) -> Path:
    """A gzip file of an IDX header announcing ``shape``, then zeros up to ``total`` bytes inflated."""
    stream, crc = deflated_zeros(idx_header(shape), total)
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no flags, no time, max compression, unix
    path.write_bytes(gzip_header + stream + struct.pack("<II", crc, total & 0xFFFFFFFF))
    return path


def sparse_idx(path: Path, shape: tuple[int, ...], total: int) -> Path:
    """A raw IDX file announcing ``shape`` made ``total`` bytes long by a hole (no disk used)."""
    path.write_bytes(idx_header(shape))
    os.truncate(path, total)
    return path


@attrs.frozen
class ZipMember:
    """One entry of a hand-written zip archive.

    Attributes:
        name: the member's name.
        data: the bytes stored (deflated when ``method`` is 8).
        method: 0 (stored) or 8 (deflate), or any number a test wants the directory to say.
        crc: CRC-32 of the inflated bytes.
        size: the inflated size the directory announces.
        compressed_size: the stored size the directory announces.
    """

    name: str
    data: bytes
    method: int
    crc: int
    size: int
    compressed_size: int


def stored(name: str, data: bytes) -> ZipMember:
    return ZipMember(name, data, zipfile.ZIP_STORED, zlib.crc32(data), len(data), len(data))


def deflated_member(name: str, prefix: bytes, total: int) -> ZipMember:
    data, crc = deflated_zeros(prefix, total)
    return ZipMember(name, data, zipfile.ZIP_DEFLATED, crc, total, len(data))


def write_zip(path: Path, members: Sequence[ZipMember]) -> Path:
    """A zip archive written field by field, so its directory says whatever the members say."""
    directory = []
    with path.open("wb") as out:
        for member in members:
            offset, name = out.tell(), member.name.encode()
            sizes = struct.pack("<HIII", member.method, 0x00210000, member.crc, member.compressed_size) + struct.pack("<I", member.size)
            out.write(b"PK\x03\x04" + struct.pack("<HH", 20, 0) + sizes + struct.pack("<HH", len(name), 0) + name + member.data)
            directory.append(b"PK\x01\x02" + struct.pack("<HHH", 20, 20, 0) + sizes + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name)
        start = out.tell()
        out.write(b"".join(directory))
        out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), out.tell() - start, start, 0))
    return path


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """The .npy header (format 1.0) announcing an array of ``descr`` and ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def checkpoint_members(source: Path = WEIGHTS, *, metadata: str | None = None) -> list[ZipMember]:
    """The members of a real checkpoint, with its metadata replaced by ``metadata`` when given."""
    with zipfile.ZipFile(source) as archive:
        members = [stored(info.filename, archive.read(info)) for info in archive.infolist()]
    if metadata is None:
        return members
    return [member for member in members if member.name != "metadata.npy"] + [stored("metadata.npy", npy_bytes(np.array(metadata)))]


def deep_metadata(depth: int) -> str:
    return '{"format": "lenet_fn.checkpoint", "model": "lenet5", "deep": ' + "[" * depth + "]" * depth + "}"


# --------------------------------------------------------------------------------------------
# measuring a fresh interpreter


_MEASURE_BEFORE = """
import lenet_fn, lenet_fn.checkpoint, lenet_fn.data
def _megabytes(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
_resident = _megabytes("VmRSS")
with open("/proc/self/clear_refs", "w") as _refs:
    _refs.write("5")  # the high-water mark restarts from the current size
"""
_MEASURE_AFTER = """
print(_resident, _megabytes("VmHWM"))
"""


@attrs.frozen
class Measured:
    """What a fresh interpreter did: resident MiB once lenet_fn is imported, its peak afterwards, its output."""

    resident: float
    peak: float
    printed: str

    @property
    def growth(self) -> float:
        return self.peak - self.resident


def measure(code: str, *args: str, package_root: Path = REPOSITORY) -> Measured:
    """Runs ``code`` in a fresh interpreter importing lenet_fn from ``package_root``, measuring its
    peak resident memory (VmHWM, reset once lenet_fn is imported)."""
    environment = {**os.environ, "PYTHONPATH": str(package_root)}
    done = subprocess.run([sys.executable, "-c", _MEASURE_BEFORE + code + _MEASURE_AFTER, *args],
                          capture_output=True, text=True, cwd="/", env=environment, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    *printed, sizes = done.stdout.strip().splitlines()
    resident, peak = map(float, sizes.split())
    return Measured(resident, peak, "\n".join(printed))


READ_IDX = """
import sys
from lenet_fn.data import MNIST_FILES, DatasetError, read_idx
expected = {file.name: file for file in MNIST_FILES}.get(sys.argv[2])
try:
    read_idx(sys.argv[1], expected=expected)
except DatasetError as error:
    print(error)
"""

LOAD_CHECKPOINT = """
import sys
from lenet_fn.checkpoint import CheckpointError, load_checkpoint
try:
    load_checkpoint(sys.argv[1])
except CheckpointError as error:
    print(error)
"""

IMAGES_MIB = 60000 * 28 * 28 / MIB
measures_memory = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures memory through Linux's /proc")


# --------------------------------------------------------------------------------------------
# IDX files


@measures_memory
@pytest.mark.parametrize("expected", [TRAIN_IMAGES.name, "none"])
def test_a_gzip_bomb_is_refused_a_byte_past_its_announced_data(tmp_path: Path, expected: str) -> None:
    bomb = gzip_bomb(tmp_path / "bomb-idx3-ubyte.gz", (60000, 28, 28), 512 * MIB)
    run = measure(READ_IDX, str(bomb), expected)
    assert run.growth < 1.25 * IMAGES_MIB, f"{run.growth:.0f} MiB to refuse a file announcing {IMAGES_MIB:.0f} MiB"
    assert run.printed == f"{bomb}: too long: the header announces 60000x28x28 = 47040000 bytes of data, the file holds more"


@measures_memory
def test_a_header_of_another_shape_is_refused_before_its_data(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "labels.gz", (512 * MIB - 8,), 512 * MIB)
    run = measure(READ_IDX, str(bomb), TRAIN_LABELS.name)
    assert run.growth < 8, f"{run.growth:.0f} MiB to refuse a header"
    assert run.printed == f"{bomb}: expected an array of shape (60000,) ({TRAIN_LABELS.name}), got ({512 * MIB - 8},)"


def test_a_gzip_header_announcing_more_than_deflate_can_give_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(idx_header((100000, 1000, 1000)) + bytes(1000)))
    size = path.stat().st_size
    with pytest.raises(DatasetError) as raised:
        read_idx(path)
    assert str(raised.value) == (
        f"{path}: the header announces 100000x1000x1000 = 100000000000 bytes of data, more than a gzip file of {size} bytes "
        "can inflate to (deflate expands at most 1032:1)"
    )


@measures_memory
@pytest.mark.parametrize("expected", [TRAIN_IMAGES.name, "none"])
def test_a_sparse_raw_file_is_refused_by_its_size(tmp_path: Path, expected: str) -> None:
    sparse = sparse_idx(tmp_path / "sparse-idx3-ubyte", (60000, 28, 28), 2 * GIB)
    try:
        run = measure(READ_IDX, str(sparse), expected)
    finally:
        sparse.unlink()
    assert run.growth < 8, f"{run.growth:.0f} MiB to refuse a file by its size"
    assert run.printed == f"{sparse}: too long: the header announces 60000x28x28 = 47040000 bytes of data, the file holds {2 * GIB - 16}"


def test_a_short_raw_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(idx_header((60000, 28, 28)) + bytes(1000))
    with pytest.raises(DatasetError) as raised:
        read_idx(path, expected=TRAIN_IMAGES)
    assert str(raised.value) == f"{path}: truncated: the header announces 60000x28x28 = 47040000 bytes of data, the file holds 1000"


def test_a_directory_or_device_is_not_an_idx_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"^{tmp_path}: cannot read the file .Is a directory.$"):
        read_idx(tmp_path)
    with pytest.raises(DatasetError, match=r"^/dev/null: not a regular file \(expected an IDX file, gzip-compressed or raw\)$"):
        read_idx("/dev/null")  # a device's size says nothing of what it holds (/dev/zero never ends)


# --------------------------------------------------------------------------------------------
# checkpoints: the zip directory and the .npy headers


@measures_memory
def test_a_deflated_member_of_512_mib_is_refused_from_the_directory(tmp_path: Path) -> None:
    junk = deflated_member("junk.npy", npy_header("|u1", (512 * MIB - 128,)), 512 * MIB)
    path = write_zip(tmp_path / "extra.npz", [*checkpoint_members(), junk])
    size = path.stat().st_size
    run = measure(LOAD_CHECKPOINT, str(path))
    announced = 512 * MIB + sum(member.size for member in checkpoint_members())
    assert run.growth < 8, f"{run.growth:.0f} MiB to refuse a checkpoint from its directory"
    assert run.printed == (
        f"{path}: its members announce {announced:,} bytes in a file of {size:,}, expected at most {16 * MIB:,} "
        "(a checkpoint's arrays take at most 8 times its size): not a lenet_fn checkpoint"
    )


def _forged(name: str, data: bytes, *, method: int = zipfile.ZIP_STORED, size: int | None = None, compressed: int | None = None) -> ZipMember:
    return ZipMember(name, data, method, zlib.crc32(data), len(data) if size is None else size, len(data) if compressed is None else compressed)


FLOATS = npy_bytes(np.zeros(4, np.float32))
HOSTILE_MEMBERS = [
    (_forged("junk.npy", FLOATS, size=2 * GIB, compressed=2 * GIB),
     "the members announce {stored:,} stored bytes, the file holds {size:,}: a forged directory"),
    (_forged("junk.npy", FLOATS, method=zipfile.ZIP_DEFLATED, size=2 * GIB),
     "member 'junk.npy' announces 2,147,483,648 bytes from 144 stored, more than deflate can give (148,608): a forged directory"),
    (_forged("notes.txt", b"hello"), "member 'notes.txt': expected only .npy arrays, got a member of another kind"),
    (_forged("c1.w.npy", FLOATS), "member 'c1.w.npy' appears 2 times, expected each name once"),
    (_forged("junk.npy", FLOATS, method=zipfile.ZIP_BZIP2), "member 'junk.npy': compression method 12, expected stored (0) or deflate (8)"),
    (_forged("junk.npy", npy_header("<f4", (1000, 1000)) + bytes(16)),
     "member 'junk.npy': its header announces float32 of shape (1000, 1000) (4,000,128 bytes with the header), the member holds 144"),
    (_forged("junk.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 * GIB) + bytes(100)),
     "member 'junk.npy': a .npy header of 2,147,483,648 bytes, expected at most 10,000"),
    (_forged("junk.npy", b"\x93NUMPY\x03\x00" + bytes(100)), "member 'junk.npy': .npy format version 3.0, expected 1.0 or 2.0"),
]


@pytest.mark.parametrize(("member", "message"), HOSTILE_MEMBERS,
                         ids=["stored-beyond-the-file", "beyond-deflate", "not-npy", "twice", "bzip2", "header-too-large", "header-length", "version-3"])  # fmt: skip
def test_a_directory_or_header_that_cannot_be_true_is_refused(tmp_path: Path, member: ZipMember, message: str) -> None:
    members = [*checkpoint_members(), member]
    path = write_zip(tmp_path / "forged.npz", members)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    stored_bytes = sum(entry.compressed_size for entry in members)
    assert str(raised.value) == f"{path}: not a readable .npz checkpoint: " + message.format(stored=stored_bytes, size=path.stat().st_size)


UNFIT_ENTRIES = [
    (stored("c1.w.npy", npy_bytes(np.array(["weights"]))), "c1.w: expected an array of numbers, got dtype <U7"),
    (stored("velocity/.npy", FLOATS), "member 'velocity/.npy': expected a name of the form path.npy or namespace/path.npy"),
    (stored("metadata.npy", npy_bytes(np.zeros(3))), "the metadata entry: expected a JSON string (a 0-d unicode array), got float64 of shape (3,)"),
]


@pytest.mark.parametrize(("member", "message"), UNFIT_ENTRIES, ids=["text-weights", "empty-name", "metadata-not-text"])
def test_entries_a_checkpoint_cannot_hold_are_refused(tmp_path: Path, member: ZipMember, message: str) -> None:
    members = [existing for existing in checkpoint_members() if existing.name != member.name]
    path = write_zip(tmp_path / "unfit.npz", [*members, member])
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == f"{path}: {message}"


# --------------------------------------------------------------------------------------------
# checkpoints: the metadata


def test_metadata_nested_100000_deep_is_one_line(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "deep.npz", checkpoint_members(metadata=deep_metadata(100_000)))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == f"{path}: the metadata entry nests deeper than 64 levels, expected a few (config, history)"


@pytest.mark.parametrize("opened", ["[" * 100_000, "{\"a\": " * 100_000, "[]" * 10 + "[" * 100])
def test_metadata_opened_deep_and_never_closed_is_one_line(tmp_path: Path, opened: str) -> None:
    path = write_zip(tmp_path / "open.npz", checkpoint_members(metadata='{"format": "lenet_fn.checkpoint", "model": "lenet5", "x": ' + opened))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == f"{path}: the metadata entry nests deeper than 64 levels, expected a few (config, history)"


def test_metadata_depth_counts_brackets_outside_strings_only(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "64.npz", checkpoint_members(metadata=deep_metadata(63)))  # the outer object is level 1
    assert load_checkpoint(path).model == "lenet5"
    with pytest.raises(CheckpointError, match="nests deeper than 64 levels"):
        load_checkpoint(write_zip(tmp_path / "65.npz", checkpoint_members(metadata=deep_metadata(64))))
    text = '\\"[{' * 1000
    quoted = write_zip(tmp_path / "quoted.npz", checkpoint_members(metadata=deep_metadata(1)[:-1] + f', "note": "{text}"}}'))
    assert load_checkpoint(quoted).metadata["note"] == '"[{' * 1000


def test_metadata_longer_than_4_mi_characters_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "long.npz", checkpoint_members(metadata=" " * (4 * MIB + 1)))
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == f"{path}: the metadata entry holds 4,194,305 characters, expected at most 4,194,304"


# --------------------------------------------------------------------------------------------
# files that are no checkpoint at all


def _not_a_zip(path: Path, what: str) -> str:
    return f"{path}: not a lenet_fn .npz checkpoint: expected a .npz (zip) archive written by lenet_fn, got {what}"


def test_files_that_are_not_checkpoints_say_so(tmp_path: Path) -> None:
    cases = {
        "empty.npz": (b"", "an empty file"),
        "array.npz": (npy_bytes(np.zeros(3)), "a .npy array (np.save), not an archive of arrays"),
        "pickle.npz": (pickle.dumps({"c1.w": [1.0]}), "a pickle, which lenet_fn never loads"),
        "text.npz": (b"hello", "a file starting with b'hello'"),
        "gzip.npz": (gzip.compress(b"hello", mtime=0), "a file starting with b'\\x1f\\x8b\\x08\\x00\\x00\\x00\\x00\\x00'"),
    }
    for name, (content, what) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as raised:
            load_checkpoint(tmp_path / name)
        assert str(raised.value) == _not_a_zip(tmp_path / name, what), name
        assert "allow_pickle" not in str(raised.value)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(WEIGHTS.read_bytes()[: WEIGHTS.stat().st_size // 2])
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(cut)
    assert str(raised.value) == f"{cut}: not a readable .npz checkpoint: a truncated or damaged zip archive (File is not a zip file)"
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tmp_path)
    assert str(raised.value) == f"{tmp_path}: is a directory, expected a .npz checkpoint file"


# --------------------------------------------------------------------------------------------
# good files: memory near their size


@measures_memory
def test_legitimate_reads_take_about_their_data() -> None:
    mnist = measure(f"from lenet_fn.data import load_mnist\nload_mnist({str(repository_dataset_dir())!r})")
    data_mib = sum(np.prod(file.shape) for file in (TRAIN_IMAGES, TRAIN_LABELS)) / MIB + (10000 * 28 * 28 + 10000) / MIB
    assert mnist.growth < 1.25 * data_mib, f"load_mnist: {mnist.growth:.0f} MiB for {data_mib:.0f} MiB of data"
    weights = measure(f"from pathlib import Path\nfrom lenet_fn.checkpoint import load_model\nload_model(Path({str(WEIGHTS)!r}))")
    assert weights.growth < 8, f"load_model: {weights.growth:.0f} MiB for {WEIGHTS.stat().st_size / MIB:.2f} MiB of weights"
