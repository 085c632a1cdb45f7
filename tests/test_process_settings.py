"""What `import yt8m_kit` sets for the process: TensorFlow's BFC allocator for CPU tensors and glibc
malloc serving record-sized blocks from its heap (yt8m_kit/__init__.py), each with its opt-out."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# How many blocks glibc hands out by mmap for a 4 MB malloc (mmap = fresh pages, faulted in on
# every use: what made each ~256 KiB record cost ~37 page faults in the reader), and the BFC setting.
_PROBE = r"""
import ctypes, os
import yt8m_kit
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(libc.mallinfo2().hblks - before, os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"))
"""


def _run(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("YT8M_MALLOPT", "TF_CPU_ALLOCATOR_USE_BFC")}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                         env=dict(base, PYTHONPATH=ROOT, **env)).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_import_sets_malloc_and_allocator_with_opt_outs():
    assert _run() == (0, "1")  # from the heap, reused when freed
    assert _run(YT8M_MALLOPT="0") == (1, "1")  # glibc's default: an mmap
    assert _run(TF_CPU_ALLOCATOR_USE_BFC="0") == (0, "0")
