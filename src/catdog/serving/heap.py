"""Handing freed heap memory back to the OS.

glibc keeps the pages of freed memory for reuse: after a large upload or a parsed model they
stay resident though nothing uses them, and the service's memory budget counts them. Every
process of the service calls this after work that freed a lot.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# Work that freed more bytes than this hands them back.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_free_memory() -> None:
    """Return every arena's free pages to the OS (a no-op where libc has no malloc_trim)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
