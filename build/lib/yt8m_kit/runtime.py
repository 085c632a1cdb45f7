"""Process-wide settings for the command lines: applied by one explicit call, never by an import.

`configure_process()` runs at the start of every command (`errors.cli_main` calls it before the
command's main). A library user who wants the same speed calls it once, before any TensorFlow
computation. What it sets, and the opt-out of each (set beforehand):

- TF_CPU_ALLOCATOR_USE_BFC=1: TensorFlow's pooling (BFC) allocator for CPU tensors instead of
  malloc, which handed every batch-sized tensor fresh pages from the OS. TensorFlow reads it when
  it first allocates. Opt out: TF_CPU_ALLOCATOR_USE_BFC=0.
- Quiet TensorFlow: TF_CPP_MIN_LOG_LEVEL=3 (its C++ log lines are not printed: INFO, WARNING and
  ERROR, such as the GRU's harmless "oneDNN supports DT_BOOL only on platforms with AVX-512"; a
  failure that matters still raises a Python exception with its message), and the C++ lines TensorFlow prints while it is first imported, before its logging
  reads that setting (absl's "All log messages before absl::InitializeLog()", oneDNN's and the CPU
  feature notes), go to /dev/null: the first `import tensorflow` runs with file descriptor 2
  pointed there (an import hook; Python exceptions are unaffected). Opt out: YT8M_TF_LOGS=1.
- glibc malloc (mallopt): blocks up to 32 MB served from its heaps and up to 256 MB of freed
  memory kept. TensorFlow allocates each record string (~256 KiB) with malloc; without this every
  record faulted in fresh pages. Opt out: YT8M_MALLOPT=0; a no-op off glibc.

What each is worth on 2 cores: bench/README.md ("what helped").
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def configure_process():
    """Apply the settings (each unless opted out); safe to call more than once."""
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")
    if os.environ.get("YT8M_TF_LOGS", "0") != "1":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFirstImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietFirstImport())
    keep_freed_memory()


@contextlib.contextmanager
def _stderr_to_devnull():
    """Point file descriptor 2 (what C++ code writes to) at /dev/null for the block."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Runs the first `import tensorflow` with stderr's descriptor on /dev/null, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        with _stderr_to_devnull():
            self.real.exec_module(module)


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
