"""Process-level CPU settings that matter for speed on this kind of machine."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Stop glibc from returning large freed blocks to the OS after every op.

    By default each big tensor is mmapped and unmapped, so every training step page-faults its
    whole working set again (half the CPU time went to the kernel in an early probe; fp32 steps
    ran 2.7x slower here). Returns False where glibc's mallopt is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum on 64-bit
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        ok &= libc.mallopt(_M_TOP_PAD, 256 << 20)
        return bool(ok)
    except (OSError, AttributeError):
        return False
