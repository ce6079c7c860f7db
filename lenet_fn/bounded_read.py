"""Reading ``.npz`` archives without allocating more than their directory and headers announce.

An archive is inspected before any array is read: its zip directory (every member a stored or
deflated ``.npy`` file, no name twice, no member inflating beyond what deflate can produce, no more
compressed bytes than the file holds), then each member's ``.npy`` header (a bounded header, no
Python objects, and an array whose size is exactly the member's). Only then are arrays read, one
at a time, each into an array of the announced size; nothing is ever unpickled.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from collections import Counter
from typing import IO, Any

import attrs
import numpy as np
import numpy.typing as npt

DEFLATE_MAX_EXPANSION = 1032
"""The most deflate can inflate: one 258-byte match coded in 2 bits, so ``n`` bytes hold at most 1032 ``n``."""

NPY_MAX_HEADER = 10_000
"""The longest ``.npy`` header read, in bytes (NumPy's own default limit; a real one is under 200)."""

_NPY_PREFIX = 8  # the magic string and the format version
_HEADER_LENGTH_FORMAT = {(1, 0): "<H", (2, 0): "<I"}


class ArchiveError(ValueError):
    """An archive announces what it cannot hold or holds what it must not (one line, without the
    file's name: the caller adds it)."""


@attrs.frozen
class NpyMember:
    """One ``.npy`` member of an archive, as its header announces it.

    Attributes:
        key: the member's name without ``.npy`` (``c1.w``, ``velocity/c1.w``).
        info: its zip directory entry.
        dtype: the array's dtype.
        shape: the array's shape.
    """

    key: str
    info: zipfile.ZipInfo
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


def check_directory(members: list[zipfile.ZipInfo], file_size: int) -> None:
    """Refuses a zip directory listing anything but ``.npy`` members it can hold.

    Args:
        members: the archive's entries (``ZipFile.infolist()``), any number.
        file_size: the archive's size in bytes.
    """
    repeated = sorted((name, count) for name, count in Counter(info.filename for info in members).items() if count > 1)
    if repeated:
        raise ArchiveError(f"member {repeated[0][0]!r} appears {repeated[0][1]} times, expected each name once")
    for info in members:
        name = info.filename
        if not name.endswith(".npy") or info.is_dir():
            raise ArchiveError(f"member {name!r}: expected only .npy arrays, got a member of another kind")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {name!r} is encrypted, expected plain .npy arrays")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"member {name!r}: compression method {info.compress_type}, expected stored (0) or deflate (8)")
        possible = info.compress_size if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_EXPANSION * info.compress_size
        if info.file_size > possible:
            raise ArchiveError(
                f"member {name!r} announces {info.file_size:,} bytes from {info.compress_size:,} stored, more than "
                f"{'storing' if info.compress_type == zipfile.ZIP_STORED else 'deflate'} can give ({possible:,}): a forged directory"
            )
    compressed = sum(info.compress_size for info in members)
    if compressed > file_size:
        raise ArchiveError(f"the members announce {compressed:,} stored bytes, the file holds {file_size:,}: a forged directory")


def _header_bytes(stream: IO[bytes], name: str) -> tuple[tuple[int, int], bytes]:
    """The format version and the length field and header that follow it, the length checked
    before the header is read."""
    version = np.lib.format.read_magic(stream)
    length_format = _HEADER_LENGTH_FORMAT.get(version)
    if length_format is None:
        raise ArchiveError(f"member {name!r}: .npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
    length_field = stream.read(struct.calcsize(length_format))
    if len(length_field) < struct.calcsize(length_format):
        raise ArchiveError(f"member {name!r}: truncated inside its .npy header")
    (length,) = struct.unpack(length_format, length_field)
    if length > NPY_MAX_HEADER:
        raise ArchiveError(f"member {name!r}: a .npy header of {length:,} bytes, expected at most {NPY_MAX_HEADER:,}")
    return version, length_field + stream.read(length)


def read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> NpyMember:
    """Reads one member's ``.npy`` header (at most ``NPY_MAX_HEADER`` bytes) and checks the array
    it announces is plain data of exactly the member's size.

    Args:
        archive: the open archive.
        info: the member's entry, already passed by ``check_directory``.

    Returns:
        The member as announced.
    """
    name = info.filename
    try:
        with archive.open(info) as stream:
            version, header = _header_bytes(stream, name)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(io.BytesIO(header), max_header_size=NPY_MAX_HEADER)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, ArchiveError):
            raise
        raise ArchiveError(f"member {name!r}: not a readable .npy array ({' '.join(str(error).split())})") from None
    if dtype.hasobject:
        raise ArchiveError(f"member {name!r} holds Python objects (dtype {dtype}), which are never unpickled; expected numbers")
    announced = _NPY_PREFIX + len(header) + math.prod(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or announced != info.file_size:
        raise ArchiveError(
            f"member {name!r}: its header announces {dtype} of shape {shape} ({announced:,} bytes with the header), "
            f"the member holds {info.file_size:,}"
        )
    return NpyMember(key=name[: -len(".npy")], info=info, dtype=dtype, shape=tuple(shape))


def read_member(archive: zipfile.ZipFile, member: NpyMember) -> npt.NDArray[Any]:
    """Reads a member ``read_header`` passed: one array of the announced size, no pickle.

    Args:
        archive: the open archive.
        member: the member as its header announced it.

    Returns:
        The array, of ``member.shape`` and ``member.dtype``.
    """
    try:
        with archive.open(member.info) as stream:
            array: npt.NDArray[Any] = np.lib.format.read_array(stream, allow_pickle=False, max_header_size=NPY_MAX_HEADER)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ArchiveError(f"member {member.info.filename!r}: damaged data ({' '.join(str(error).split())})") from None
    return array
