"""Keep a process's resident memory close to what it uses.

Encoding allocates and frees tens of megabytes of activations per batch. glibc's malloc serves a
large block with its own mapping (returned to the system when freed), but after the first such
free it raises that threshold to the freed size, so later blocks of that size come from the heap,
where freed space is kept and fragments: the process's peak resident memory grows by hundreds of
megabytes over an encode. Fixing the threshold keeps every block of ``LARGE_BLOCK`` bytes or more
mapped. The price is time: each mid-sized activation is mapped afresh and zeroed by the kernel.
Measured encoding 160 scifact abstracts at batch 32 on an idle machine (peak RSS, encode time):
glibc's default 944-984 MiB, 7.4-7.9 s; fixed at 4 MiB 790 MiB, 8.9-9.0 s (about 15 % slower);
fixed at 32 MiB 907 MiB, 7.5 s (one run). The 4 MiB default keeps the CLI's peak at or below
sentence-transformers' own ``mine_hard_negatives`` (issue 5, bench/vs_reference.py).

Most of that time is page faults: every freshly mapped block is faulted in 4 KiB at a time
(2.1 million minor faults against 1.0 million with glibc's default, 192 abstracts). So the same
call also asks torch for transparent huge pages (``THP_MEM_ALLOC_ENABLE``: tensors of 2 MiB or
more are advised as huge pages), which cuts the faults to about 0.2 million and half to all of
the threshold's extra CPU time (two runs under load: 1.07x sentence-transformers' own encode
against 1.10x without, and 0.97-1.01x against 1.10-1.14x) at the fixed threshold's peak (791 MiB
against 905-958 MiB; bench/encode_malloc.py, bench/RESULTS.md). It takes effect only where the
kernel allows ``madvise`` huge pages and torch has not allocated yet.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

LARGE_BLOCK = 4 << 20
"""Blocks this large (bytes) or larger get their own mapping, returned to the system when freed."""
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"
"""torch's switch for 2 MiB-aligned, huge-page-advised large tensors (read at its first allocation)."""


@functools.cache
def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (once: the app calls
    this on every rerun, and finding the C library runs ``ldconfig``), and ask torch for huge
    pages for large tensors unless the environment already says otherwise.

    Returns False (and changes nothing) where the C library is not glibc, e.g. macOS or musl.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    fixed = bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    if fixed:
        os.environ.setdefault(TORCH_HUGE_PAGES, "1")
    return fixed
