"""keep_freed_memory: ask the C allocator to keep what a training loop frees, for its next step.

A training step frees and allocates the same arrays every time. glibc's
malloc hands much of a step's freed memory back to the operating system
(it trims the top of its heap and unmaps large blocks), so the next step
touches fresh pages, and each first touch of a 4 KiB page is a page fault:
about 2,900 a step for an LSTM at B32 T64 H128, and 190,000 in the main demo,
each costing microseconds on a virtual machine (docs/performance.md, "Alone
or alternating"). Raising two thresholds makes malloc keep that memory:

- ``M_TRIM_THRESHOLD``: how much free memory may sit at the top of the heap
  before it is returned;
- ``M_MMAP_THRESHOLD``: the size from which a block gets its own mapping,
  unmapped when freed (32 MiB, glibc's largest, instead of a threshold that
  starts at 128 KiB).

This is a setting of the whole process: everything in it keeps its freed
memory too, so the process's resident size stays near its peak instead of
shrinking between steps. The library never calls it by itself; a program
that owns its process and trains in it (the demos, ``tinygrad-seq
train``) does, as the first thing it does.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers in glibc's malloc.h
GLIBC_MMAP_THRESHOLD_MAX = 32 << 20  # HEAP_MAX_SIZE / 2 on 64-bit: mallopt refuses more


def keep_freed_memory(trim_threshold: int = 1 << 30, mmap_threshold: int = GLIBC_MMAP_THRESHOLD_MAX) -> bool:
    """Raise glibc malloc's trim and mmap thresholds (bytes) for this process; True if it took both.

    False, with nothing changed, where the C library is not glibc (macOS,
    Windows, musl): their allocators have no such settings to change.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  only glibc has it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    took_trim = mallopt(M_TRIM_THRESHOLD, trim_threshold)
    took_mmap = mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    return bool(took_trim and took_mmap)
