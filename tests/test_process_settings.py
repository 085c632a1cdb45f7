"""Process settings (yt8m_kit/runtime.py): TensorFlow's BFC allocator for CPU tensors and glibc malloc
serving record-sized blocks from its heap. Applied by configure_process(), which every command line
calls (errors.cli_main), each with its opt-out; `import yt8m_kit` alone changes nothing."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# How many blocks glibc hands out by mmap for a 4 MB malloc (mmap = fresh pages, faulted in on
# every use: what made each ~256 KiB record cost ~37 page faults in the reader), and the BFC setting.
_PROBE = r"""
import ctypes, os, sys
import yt8m_kit, yt8m_kit.data.dataset, yt8m_kit.train.cli, yt8m_kit.kaggle.inference_job
if sys.argv[1] == "configure":
    from yt8m_kit.runtime import configure_process
    configure_process()
elif sys.argv[1] == "cli":
    from yt8m_kit.errors import cli_main
    cli_main(lambda argv: 0)()
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


def _run(how, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("YT8M_MALLOPT", "TF_CPU_ALLOCATOR_USE_BFC")}
    out = subprocess.run([sys.executable, "-c", _PROBE, how], capture_output=True, text=True, check=True,
                         env=dict(base, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", **env)).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_importing_changes_nothing_the_explicit_call_sets_both_with_opt_outs():
    assert _run("import") == (1, "None")  # glibc's default (an mmap); the allocator untouched
    assert _run("configure") == (0, "1")  # from the heap, reused when freed
    assert _run("cli") == (0, "1")  # every command line applies them
    assert _run("configure", YT8M_MALLOPT="0") == (1, "1")
    assert _run("configure", TF_CPU_ALLOCATOR_USE_BFC="0") == (0, "0")
