"""Native reader ops: frame-level records parsed straight into batches (C++, built on install).

tf's SequenceExample parser makes one heap string per frame (~450 a video) before anything is
decoded; frames.cc instead finds where the frames sit in the serialized record and copies the
sampled ones into the batch, and records.cc reads each batch's records from their files in one op
(bench/README.md has the numbers). The ops are an accelerator, never a requirement:
data.make_dataset uses them only for records of the regular layout every YouTube-8M file has and
falls back to tf's parser (which also words any error) for the rest, or when the library is missing.

    python -m yt8m_kit.native          # build (make does it); needs g++ and the TensorFlow headers
    YT8M_NATIVE=0 python ...           # do not use it

The library's name carries a hash of the sources and the TensorFlow version, so an edited source
or a new TensorFlow is rebuilt, never loaded stale.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading

_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCES = [os.path.join(_DIR, "frames.cc"), os.path.join(_DIR, "records.cc")]
_lock = threading.Lock()
_state = {}


def library_path():
    import tensorflow as tf

    h = hashlib.sha256()
    for src in SOURCES:
        with open(src, "rb") as f:
            h.update(f.read())
    h.update(tf.__version__.encode())
    digest = h.hexdigest()[:12]
    return os.path.join(_DIR, f"_frames-{digest}.so")


def build(quiet=False):
    """Compile SOURCES into library_path() (atomically) unless it is there; returns the path.

    Raises RuntimeError with the compiler's output when there is no compiler or it fails."""
    import tensorflow as tf

    path = library_path()
    if os.path.exists(path):
        return path
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler found (g++/c++; or set CXX): the native reader is not built and "
                           "frame-level reading falls back to tf's parser")
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=_DIR)
    os.close(fd)
    cmd = [cxx, "-shared", "-fPIC", "-O3", "-ffp-contract=off", "-Wno-deprecated-declarations", *SOURCES,
           "-o", tmp, *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    if not quiet:
        print(f"building the native reader ops: {os.path.basename(path)} (~15 s)", file=sys.stderr)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"compiling {' '.join(SOURCES)} failed ({' '.join(cmd)}):\n{done.stderr[-4000:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for old in os.listdir(_DIR):  # libraries of older sources or TensorFlow versions
        if old.startswith("_frames-") and old.endswith(".so") and os.path.join(_DIR, old) != path:
            os.remove(os.path.join(_DIR, old))
    return path


def ops():
    """The loaded op module (yt8m_frame_layout, yt8m_sample_rows, yt8m_gather_frames), or None when
    YT8M_NATIVE=0, or the library is not built or does not load (a warning says which, once)."""
    with _lock:
        if "ops" in _state:
            return _state["ops"]
        module, why = None, None
        if os.environ.get("YT8M_NATIVE", "1") == "0":
            why = ""
        elif not os.path.exists(library_path()):
            why = "it is not built: run `python -m yt8m_kit.native` (make does)"
        else:
            import tensorflow as tf

            try:
                module = tf.load_op_library(library_path())
            except Exception as e:  # tf.errors.NotFoundError for missing symbols, OSError, ...
                why = f"it does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__}); rebuild it"
        if why:
            print(f"yt8m_kit: not using the native frame reader: {why}. Frame-level reading falls back to "
                  "tf's parser (same batches, about 2x slower)", file=sys.stderr)
        _state["ops"] = module
        return module


def available():
    return ops() is not None


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m yt8m_kit.native", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 unless the built library loads")
    a = p.parse_args(argv)
    try:
        path = build()
    except RuntimeError as e:
        print(f"yt8m_kit: {e}", file=sys.stderr)
        return 1
    if a.check and not available():
        return 1
    print(path)
    return 0
