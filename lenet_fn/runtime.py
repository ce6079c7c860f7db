"""Process-level settings that make CPU training fast: BLAS threads and the reuse of freed memory.

- ``set_blas_threads``: the thread count of every BLAS that NumPy loaded (OpenBLAS in its wheels,
  MKL, BLIS, ...), through threadpoolctl. Data-parallel training runs one BLAS thread per worker;
  nested BLAS threads would fight over the cores.
- ``reuse_freed_memory``: asks glibc to keep freed memory for reuse instead of returning large
  blocks to the system (through ``ctypes``: nothing else reaches it). NumPy allocates every
  intermediate afresh; by default glibc serves blocks above a threshold with ``mmap``, and every
  such allocation page-faults its memory in again (the docs' speed page has what it saves).

Neither is applied on import: the training and benchmark commands call them, and scripts may.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

from threadpoolctl import ThreadpoolController

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded when first asked (NumPy's among them)."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def blas_threads() -> int | None:
    """The BLAS thread count (of the first BLAS loaded), or ``None`` when no BLAS can be controlled."""
    libraries = blas_libraries()
    return int(libraries[0].get_num_threads()) if libraries else None


def set_blas_threads(threads: int) -> int | None:
    """Sets the thread count of every loaded BLAS; returns the previous one (``None``: no BLAS
    can be controlled, nothing done)."""
    previous = blas_threads()
    for library in blas_libraries():
        library.set_num_threads(threads)
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
