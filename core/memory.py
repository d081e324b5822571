"""Keep a process's resident memory close to what it uses.

Encoding allocates and frees tens of megabytes of activations per batch. glibc's malloc serves a
large block with its own mapping (returned to the system when freed), but after the first such
free it raises that threshold to the freed size, so later blocks of that size come from the heap,
where freed space is kept and fragments. ``return_large_blocks`` fixes the threshold at
``LARGE_BLOCK`` (32 MiB, the ceiling glibc's own adjustment stops at) and asks torch for
transparent huge pages (``THP_MEM_ALLOC_ENABLE``: tensors of 2 MiB or more are advised as huge
pages, so a fresh mapping faults in 2 MiB at a time); ``trim_heap`` gives the heap's freed pages
back after an encode, so they do not sit under the next step's peak.

History, measured (bench/encode_malloc.py, bench/vs_reference.py, bench/RESULTS.md): the
threshold was 4 MiB until the torch backend fused its linear layers. At 4 MiB every mid-sized
activation is mapped afresh and zeroed by the kernel: about 15 % of plain torch encode time, and
with the fused layers (whose oneDNN temporaries are malloc'd) the fused path lost its whole gain
(384 scifact abstracts on an idle machine: plain ``model.encode`` with glibc's default 16.8-17.2 s
at 949-985 MiB; fused at 4 MiB 16.3-17.0 s at 798-801 MiB; fused at 32 MiB 14.5-14.9 s at
834-875 MiB). In ``mine`` the peak is not reached while encoding but afterwards (suspicion, the
pool frame, the store write), which is why the heap is trimmed after an encode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

LARGE_BLOCK = 32 << 20
"""Blocks this large (bytes) or larger get their own mapping, returned to the system when freed."""
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"
"""torch's switch for 2 MiB-aligned, huge-page-advised large tensors (read at its first allocation)."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (once: the app calls
    this on every rerun, and finding the C library runs ``ldconfig``), and ask torch for huge
    pages for large tensors unless the environment already says otherwise.

    Returns False (and changes nothing) where the C library is not glibc, e.g. macOS or musl.
    """
    libc = _glibc()
    if libc is None:
        return False
    fixed = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if fixed:
        os.environ.setdefault(TORCH_HUGE_PAGES, "1")
    return fixed


def trim_heap() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``).

    Called after an encode: activations below ``LARGE_BLOCK`` were served from the heap, and their
    freed pages would otherwise stay resident under whatever the process does next (in ``mine``:
    the suspicion, the pool frame and the store write, where its peak is reached). Returns False
    where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
