"""Atomic file and directory writes: an interrupted run never leaves a half-written output."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories (write whatever you like at the yielded path).
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    # Keep the suffix so libraries that look at it (".weights.h5", ".keras") still work.
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix="-" + base, dir=parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield tmp
        if os.path.isdir(path) and os.path.isdir(tmp):
            old = tmp + ".old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """open() that writes to a temporary file and renames it onto `path` on success."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def read_json(path, what="file"):
    """A JSON file's content; a missing or unreadable file is a ConfigError naming it and `what` it is."""
    import json

    from yt8m_kit.errors import ConfigError

    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} {path} is not valid JSON ({e}); restore or delete it") from None


def write_json(path, obj, sort_keys=False):
    """Write `obj` as indented JSON (and a final newline), atomically."""
    import json

    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys)
        f.write("\n")


def parse_size(text):
    """Parse '1GB', '995MB', '1GiB', '500M', '1e9' or '123456' into bytes.

    Units: B=1; KB/MB/GB/TB = 10^3/10^6/10^9/10^12 (SI, as the challenge's "1 GB");
    KiB/MiB/GiB/TiB and the bare letters K/M/G/T = 2^10/2^20/2^30/2^40 (binary, as the
    paper's "M", which is MiB). Case-insensitive.
    """
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m:
        raise ValueError(f"cannot read size {text!r}: expected e.g. 1GB, 995MB, 1GiB, 500M or bytes")
    number, unit = float(m.group(1)), m.group(2).lower()
    units = {
        "": 1, "b": 1,
        "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
        "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
        "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    }
    if unit not in units:
        raise ValueError(f"cannot read size {text!r}: unknown unit {m.group(2)!r}")
    return int(round(number * units[unit]))
