"""Prediction files (h5): the scores a checkpoint gave a data set, cached for the planner.

Layout (README "Prediction files"):
  ids            (N,)      utf-8 strings
  scores         (N, 3862) float32, chunked + gzip
  label_indptr   (N+1,)    int64 CSR row pointers of the true labels (labelled data only)
  label_indices  (nnz,)    int32 class indices
  attrs: checkpoint, checkpoint_fingerprint, data, repeats, seed, precision (+ anything else)

Files are written atomically; `PredictionWriter` streams batches so N can be large
(1.13M test videos x 3862 float32 is 17 GB: never hold it in memory).
"""

import json
import os

import h5py
import numpy as np

from yt8m_kit import NUM_CLASSES
from yt8m_kit.errors import DataError
from yt8m_kit.fileio import atomic_path

_STR = h5py.string_dtype("utf-8")
_ROWS_PER_CHUNK = 256  # 256 x 3862 x 4 B = ~4 MB per chunk: gzip-friendly, cheap to slice


def _attr_value(key, value):
    """h5 attributes hold str/int/float/bool; None and containers go in as JSON text."""
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return value
    if value is None or isinstance(value, (list, tuple, dict)):
        return "json:" + json.dumps(value, sort_keys=True)
    raise TypeError(f"prediction attribute {key!r} has unsupported type {type(value).__name__}")


def _read_attr(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.generic):
        return value.item()
    return value


def _label_rows(labels, n):
    """Labels as a list of index arrays, from either multi-hot (n, C) or a list of lists."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.shape[0] != n:
            raise ValueError(f"labels have {labels.shape[0]} rows for {n} ids")
        return [np.flatnonzero(row > 0.5) for row in labels]
    rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in labels]
    if len(rows) != n:
        raise ValueError(f"labels have {len(rows)} rows for {n} ids")
    return rows


class _NeverFails:
    """The file object h5py writes through. HDF5 must never see a write fail: after a failed write it
    crashed the process (SIGSEGV) when closing the file, or later at exit. So the first write that fails
    (a full disk) is recorded in `failed` and, like every later write, kept in memory instead (reads see
    it), and HDF5 goes on as if all were well; the writer then checks `failed`, closes the file normally
    and deletes it. Only what is written between the failure and that check is held: a batch and the
    closing metadata, a few MB."""

    def __init__(self, raw):
        self.raw, self.failed = raw, None
        self.overlay = {}  # offset -> bytes, written after the failure

    def write(self, data):
        data = bytes(data)
        if self.failed is None:
            start = self.raw.tell()
            try:
                return self.raw.write(data)
            except OSError as e:
                self.failed = e
                self.raw.seek(start)
        self.overlay[self.raw.tell()] = data
        self.raw.seek(len(data), 1)
        return len(data)

    def read(self, size=-1):
        start = self.raw.tell()
        data = bytearray(self.raw.read(size))
        if self.overlay:
            end = start + (size if size >= 0 else len(data))
            data.extend(bytes(max(0, end - start - len(data))))
            for offset, chunk in self.overlay.items():
                lo, hi = max(offset, start), min(offset + len(chunk), end)
                if lo < hi:
                    data[lo - start:hi - start] = chunk[lo - offset:hi - offset]
            self.raw.seek(end)
        return bytes(data)

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def flush(self):
        if self.failed is None:
            try:
                self.raw.flush()
            except OSError as e:
                self.failed = e

    def truncate(self, size=None):
        return self.raw.truncate(size) if self.failed is None else size

    def __getattr__(self, name):  # seek, tell, close, ...
        return getattr(self.raw, name)


class PredictionWriter:
    """Streaming, atomic writer: `with PredictionWriter(path, attrs) as w: w.add(ids, scores, labels)`.

    The file appears at `path` only when the block ends without an exception. Pass labels
    to every add() or to none of them.
    """

    def __init__(self, path, attrs=None, num_classes=NUM_CLASSES):
        self.path, self.attrs, self.num_classes = os.fspath(path), dict(attrs or {}), num_classes
        self._ctx = self._file = self._raw = self._ds = None
        self._rows = 0
        self._nnz = 0
        self._labelled = None

    def __enter__(self):
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        try:
            # h5py over a Python file object: a failed write (a full disk) raises OSError here, where
            # HDF5's own file driver crashed the process (SIGSEGV) on ENOSPC.
            self._raw = _NeverFails(open(tmp, "w+b"))
            f = self._file = h5py.File(self._raw, "w")
            c = self.num_classes
            self._ds = {"ids": f.create_dataset("ids", (0,), maxshape=(None,), dtype=_STR, chunks=(4096,)),
                        "scores": f.create_dataset("scores", (0, c), maxshape=(None, c), dtype="float32",
                                                   chunks=(_ROWS_PER_CHUNK, c), compression="gzip",
                                                   compression_opts=4, shuffle=True)}
            for key, value in self.attrs.items():
                f.attrs[key] = _attr_value(key, value)
        except BaseException:
            self._abort()
            raise
        return self

    def add(self, ids, scores, labels=None):
        """Append a batch: ids (B,) str/bytes, scores (B, C), labels multi-hot (B, C) or lists."""
        ids = [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in np.asarray(ids).reshape(-1)]
        scores = np.asarray(scores, dtype=np.float32)
        b = len(ids)
        if scores.shape != (b, self.num_classes):
            raise ValueError(f"scores shape {scores.shape} does not match {b} ids x {self.num_classes} classes")
        if self._labelled is None:
            self._labelled = labels is not None
            if self._labelled:
                self._ds["label_indptr"] = self._file.create_dataset(
                    "label_indptr", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,))
                self._ds["label_indices"] = self._file.create_dataset(
                    "label_indices", (0,), maxshape=(None,), dtype="int32", chunks=(4096,))
        elif self._labelled != (labels is not None):
            raise ValueError("pass labels to every add() call or to none of them")
        # Dataset handles are kept (self._ds), not made per call: a handle freed while a failed write
        # unwinds makes HDF5 flush again and print an error from h5py's deallocator.
        f, n = self._ds, self._rows
        f["ids"].resize((n + b,))
        f["ids"][n:] = ids
        f["scores"].resize((n + b, self.num_classes))
        f["scores"][n:] = scores
        if self._labelled:
            rows = _label_rows(labels, b)
            counts = np.array([len(r) for r in rows], dtype=np.int64)
            indptr = self._nnz + np.cumsum(counts)
            flat = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
            f["label_indptr"].resize((n + b + 1,))
            f["label_indptr"][n + 1:] = indptr
            f["label_indices"].resize((self._nnz + len(flat),))
            f["label_indices"][self._nnz:] = flat
            self._nnz += len(flat)
        self._rows += b
        self._check_writes()  # a full disk: raised here, after h5py finished its calls undisturbed

    def _close(self):
        try:
            if self._file is not None:
                self._file.close()
        finally:
            self._file = self._ds = None
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    def _abort(self):
        try:
            self._close()
        except (OSError, RuntimeError):
            pass  # the file is removed anyway
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def _check_writes(self):
        if self._raw is not None and self._raw.failed is not None:
            raise self._raw.failed

    def write_failure(self):
        """The OSError of the first write that failed (e.g. ENOSPC), whatever h5py raised instead."""
        return None if self._raw is None else self._raw.failed

    def abort(self):
        """Give up (e.g. the disk is full): close and remove the temporary file; nothing appears."""
        if self._ctx is not None:
            self._abort()
            self._ctx = None

    def __exit__(self, exc_type, exc, tb):
        if self._ctx is None:  # aborted
            return False
        if exc_type is not None:
            self._abort()
            return False
        raw = self._raw
        try:
            self._file.attrs["num_videos"] = self._rows
            self._close()
            if raw.failed is not None:
                raise raw.failed
        except BaseException:
            self._abort()
            raise
        self._ctx.__exit__(None, None, None)
        return False


def save_predictions(path, ids, scores, labels=None, attrs=None):
    """Write one prediction file atomically (all rows in memory; use PredictionWriter for big N)."""
    scores = np.asarray(scores, dtype=np.float32)
    with PredictionWriter(path, attrs, num_classes=scores.shape[1] if scores.ndim == 2 else NUM_CLASSES) as w:
        w.add(ids, scores, labels)
    return os.fspath(path)


def read_attrs(path):
    """Only the attributes of a prediction file (cheap: the planner's cache check)."""
    try:
        with h5py.File(path, "r") as f:
            return {k: _read_attr(v) for k, v in f.attrs.items()}
    except OSError as e:
        raise DataError(f"cannot open as a prediction h5 file ({e}); delete it and rerun", file=path) from e


def load_predictions(path):
    """Read a prediction file: {"ids": list[str], "scores": (N, C) float32,
    "labels": list of int arrays or None, "attrs": dict}."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"cannot open as a prediction h5 file ({e}); delete it and rerun", file=path) from e
    with f:
        for key in ("ids", "scores"):
            if key not in f:
                raise DataError(f"not a prediction file: dataset '{key}' is missing", file=path)
        ids = [i.decode("utf-8") if isinstance(i, bytes) else i for i in f["ids"][:]]
        scores = f["scores"][:]
        labels = None
        if "label_indptr" in f:
            indptr, indices = f["label_indptr"][:], f["label_indices"][:]
            labels = [indices[indptr[i]:indptr[i + 1]] for i in range(len(ids))]
        attrs = {k: _read_attr(v) for k, v in f.attrs.items()}
    return {"ids": ids, "scores": scores, "labels": labels, "attrs": attrs}


def labels_to_multihot(labels, num_classes=NUM_CLASSES):
    """CSR-style list of index arrays -> (N, C) float32 multi-hot."""
    out = np.zeros((len(labels), num_classes), np.float32)
    for row, idx in enumerate(labels):
        out[row, idx] = 1.0
    return out
