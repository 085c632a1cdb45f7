"""yt8m_kit: the 4th-place system of the 2nd YouTube-8M challenge (Tang et al. 2018), as a toolkit."""

__version__ = "0.1.0"

NUM_CLASSES = 3862  # 2018 vocabulary; 2017 had 4716
NUM_CLASSES_2017 = 4716
RGB_DIM = 1024
AUDIO_DIM = 128
FEATURE_DIM = RGB_DIM + AUDIO_DIM  # 1152: rgb then audio, per frame or per video
MAX_FRAMES = 300  # readers keep at most this many frames (videos have up to 360)
TOP_K = 20  # GAP@20 and the Kaggle CSV

# TensorFlow's pooling (BFC) allocator for CPU tensors instead of malloc: batches and activations of
# tens of MB otherwise get fresh pages from the OS, page faults included, on every step. Measured on
# 2 cores (bench/RESULTS.md): training lfnl_netvlad 33.5 -> 46.8 examples/s, the frame reader
# 685 -> 2,003 videos/s. Read when TensorFlow first allocates, so this works as long as yt8m_kit is
# imported before any TensorFlow computation; set TF_CPU_ALLOCATOR_USE_BFC=0 beforehand to opt out.
import os as _os

_os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")


def _keep_freed_memory():
    """glibc malloc: serve blocks up to 32 MB from its heaps and keep up to 256 MB of freed memory,
    instead of mmap/munmap or trimming every few hundred KB. Every record the readers hold (a string
    of ~256 KiB, allocated by TensorFlow with malloc, not the BFC allocator) otherwise faulted in
    fresh pages: 37 page faults and ~120 us of system time a video, half the reader's CPU (2 cores,
    bench/README.md). Set YT8M_MALLOPT=0 beforehand to opt out; a no-op off glibc."""
    if _os.environ.get("YT8M_MALLOPT", "1") == "0":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 256 << 20)


_keep_freed_memory()
