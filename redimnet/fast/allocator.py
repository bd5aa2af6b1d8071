"""Keep freed memory in the process instead of handing it back to the kernel (glibc only); and
:func:`limit_arenas`, so that a server's threads share that memory rather than each keeping its own.

A forward pass allocates and frees many tensors of a few MB each.  glibc's
malloc serves large requests with fresh ``mmap`` pages and trims the heap when
its free top grows, so the next pass touches new pages again: every 4 KiB page
costs a page fault, a measurable part of a forward pass on CPU (figures in
``docs/performance.md``, "Keeping freed memory").  Raising the ``mmap`` threshold to
glibc's maximum and the trim threshold well above one pass's working set
makes repeated passes reuse the same pages: no faults after the first call.

The price is that memory freed after a pass stays reserved by the process (up
to ``trim_threshold_mb`` above what is in use) rather than returned to the
system.  This is a process-wide setting; :class:`redimnet.embedding.embedder.Embedder`
applies it by default (``keep_freed_memory=False`` to opt out) and so does the
command line.  Equivalent environment setting, for any process:
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=536870912``.
"""

import ctypes
import ctypes.util
import platform
from typing import Optional

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2, which is 32 MiB on 64-bit systems.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024

_applied: Optional[bool] = None


def _libc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory(trim_threshold_mb: int = 512) -> bool:
    """Make glibc's malloc reuse freed memory across forward passes (see the module docs).

    Returns True when the setting is in effect (now or from an earlier call),
    False where it does not apply (not Linux with glibc) or glibc refused it.
    """
    global _applied
    if trim_threshold_mb < 32:
        raise ValueError(f"trim_threshold_mb must be at least 32, got {trim_threshold_mb}")
    if _applied is not None:
        return _applied
    libc = _libc()
    if libc is None:
        _applied = False
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_mb) * 1024 * 1024) == 1
    _applied = ok
    return ok


def limit_arenas(count: int = 2) -> bool:
    """Let glibc's malloc keep at most ``count`` arenas for the whole process (``MALLOC_ARENA_MAX``).

    glibc gives threads arenas of their own; each keeps what its thread freed (up to the trim
    threshold :func:`keep_freed_memory` raises), so a server whose requests run in many worker threads
    holds one request's working memory per thread.  With few arenas the threads share, and reuse, the
    same freed memory.  ``redimnet serve`` calls this before its threads start (8 diarizations of 120 s
    at once: 277 MB -> 29 MB of growth, docs/service.md).  An environment that sets
    ``MALLOC_ARENA_MAX`` itself is left as it is.  Returns True when the limit is in effect.
    """
    import os

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_ARENA_MAX, int(count)) == 1
