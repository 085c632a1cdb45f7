"""Process-wide settings for the command lines: applied by one explicit call, never by an import.

`configure_process()` runs at the start of every command (`errors.cli_main` calls it before the
command's main). A library user who wants the same speed calls it once, before any TensorFlow
computation. What it sets, and the opt-out of each (set beforehand):

- TF_CPU_ALLOCATOR_USE_BFC=1: TensorFlow's pooling (BFC) allocator for CPU tensors instead of
  malloc, which handed every batch-sized tensor fresh pages from the OS. TensorFlow reads it when
  it first allocates. Opt out: TF_CPU_ALLOCATOR_USE_BFC=0.
- glibc malloc (mallopt): blocks up to 32 MB served from its heaps and up to 256 MB of freed
  memory kept. TensorFlow allocates each record string (~256 KiB) with malloc; without this every
  record faulted in fresh pages. Opt out: YT8M_MALLOPT=0; a no-op off glibc.

What each is worth on 2 cores: bench/README.md ("what helped").
"""

import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def configure_process():
    """Apply both settings (each unless opted out); safe to call more than once."""
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")
    keep_freed_memory()


def keep_freed_memory():
    """glibc malloc: serve blocks up to 32 MB from the heap, keep up to 256 MB of freed memory."""
    if os.environ.get("YT8M_MALLOPT", "1") == "0":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 256 << 20)
