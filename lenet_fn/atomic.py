"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

TEMPORARY_SUFFIX = ".tmp"


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Calls ``write(stream)`` on a temp file beside ``path``, then renames it over ``path``.

    If ``write`` raises, the temp file is removed and an existing ``path`` is left as it was.
    The file gets the usual permissions (``0666`` less the umask). An ``OSError`` (a full disk, a
    directory where the file should be, a parent that is a file) names ``path``, not the temp file.
    """
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        _make_parent(path)
        handle, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(temporary, path)
    except OSError as error:
        if error.errno is None or error.filename not in (None, temporary_name):
            raise  # not the file system's (a download's network error, say)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    finally:
        temporary.unlink(missing_ok=True)


def _make_parent(path: Path) -> None:
    """Creates ``path``'s directory; a ``NotADirectoryError`` when some part of it is a file."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{ancestor} is a file, not a directory", str(path))
            break
    path.parent.mkdir(parents=True, exist_ok=True)


def remove_temporaries(directory: Path, names: Iterable[str]) -> list[Path]:
    """Removes the temp files that writes of ``names`` in ``directory`` left when the process was
    killed mid-write (``.last.npz.k3j9.tmp``); returns them."""
    if not directory.is_dir():
        return []
    removed = [leftover for name in names for leftover in directory.glob(f".{glob.escape(name)}.*{TEMPORARY_SUFFIX}")]
    for leftover in removed:
        leftover.unlink(missing_ok=True)
    return removed


def _umask() -> int:
    """The process's umask, read from /proc where Linux shows it: setting it to read it back (the
    only other way) would, for a moment, give files that other threads create no umask at all."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0)
    os.umask(current)
    return current
