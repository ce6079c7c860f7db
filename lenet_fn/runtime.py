"""Process-level settings that make CPU training fast: BLAS threads and the reuse of freed memory.

NumPy does not expose either, so both are reached through ``ctypes``, best effort:

- ``set_blas_threads``: the thread count of the OpenBLAS that NumPy loaded (its wheels bundle
  one). Data-parallel training runs one BLAS thread per worker; nested BLAS threads would fight
  over the cores.
- ``reuse_freed_memory``: asks glibc to keep freed memory for reuse instead of returning large
  blocks to the system. NumPy allocates every intermediate afresh; by default glibc serves blocks
  above a threshold with ``mmap``, and every such allocation page-faults its memory in again
  (the docs' speed page has what it saves).

Neither is applied on import: the training and benchmark commands call them, and scripts may.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

_OPENBLAS_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 1024 * 1024 * 1024


@attrs.frozen
class BlasLibrary:
    """A loaded BLAS whose thread count can be read and set."""

    path: str
    set_threads: Callable[[int], None]
    get_threads: Callable[[], int]


def _candidate_libraries() -> list[str]:
    """Shared libraries that may be NumPy's BLAS: from /proc/self/maps on Linux, else NumPy's bundle."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        paths = {line.split()[-1] for line in maps.read_text().splitlines() if "/" in line}
        return sorted(path for path in paths if "blas" in Path(path).name.lower())
    bundle = Path(np.__file__).resolve().parent
    candidates = [*bundle.parent.glob("numpy.libs/*blas*"), *bundle.glob(".dylibs/*blas*")]
    return sorted(str(path) for path in candidates)


@functools.cache
def find_blas() -> BlasLibrary | None:
    """NumPy's OpenBLAS, or ``None`` when none can be found (MKL, Accelerate, another platform)."""
    for path in _candidate_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(library, set_name) and hasattr(library, get_name):
                setter, getter = getattr(library, set_name), getattr(library, get_name)
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return BlasLibrary(path=path, set_threads=setter, get_threads=getter)
    return None


def set_blas_threads(threads: int) -> int | None:
    """Sets the BLAS thread count; returns the previous one (``None``: not controllable, nothing done)."""
    library = find_blas()
    if library is None:
        return None
    previous = int(library.get_threads())
    library.set_threads(threads)
    return previous


@functools.cache
def reuse_freed_memory() -> bool:
    """Asks glibc's allocator to reuse freed blocks (up to 32 MB) rather than ``mmap`` them anew.

    Idempotent; returns whether it applied (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
