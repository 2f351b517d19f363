"""Keep freed memory in the process instead of handing it back to the kernel after every large tensor.

glibc's malloc serves every allocation above its mmap threshold (128 KiB to 32 MiB, adapting) with a fresh ``mmap``
and returns it with ``munmap`` when freed. A CPU training step allocates and frees tensors of hundreds of MiB many
times (the logits alone: 8 sequences x 300 tokens x 49,152 vocabulary x 4 bytes = 470 MiB, then their log-softmax,
entropy and gradients), so each of them is page-faulted in from zero every time: ``sif bench grpo`` on the demo's
params, on 2 cores, took 74.0 s per step in fp32 without this and 39.0 s with it (docs/RESULTS.md). With the
three settings below, large blocks come from the heap and stay there once freed, ready for the next step.

The price: the process's resident memory stays at its high-water mark until it ends (nothing is returned to the
system between stages of one kernel). Each stage runs in its own kernel, so that is one stage's peak.

Set through ``mallopt`` (glibc's own switch for exactly this), at run time, because a stage's kernel or a training
launch is already running when it opens its run; the ``MALLOC_*_`` environment variables would do the same for a
process started with them. Elsewhere (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

SETTINGS = {
    M_MMAP_MAX: 0,  # no allocation gets its own mapping: every block comes from the heap and goes back to it
    M_TRIM_THRESHOLD: -1,  # never shrink the heap ("-1 disables trimming completely", man mallopt)
    M_TOP_PAD: 1 << 28,  # grow the heap 256 MiB at a time: fewer brk calls while a step's tensors first appear
}


@functools.lru_cache(maxsize=1)
def _glibc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (and mallopt's parameter numbers)
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` to this process's malloc; True where glibc accepted every one of them."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(ctypes.c_int(key), ctypes.c_int(value)) == 1 for key, value in SETTINGS.items())
