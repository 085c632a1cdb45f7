"""Reading raw YouTube-8M TFRecords: file lists, format detection, record counts, and the record stream.

The readers (yt8m_kit.data.dataset) parse what this module streams: one record at a time, tagged by a single
enumerate per file, batched (the only copy of a record) by the reader; or, with the native ops,
each record's place in its file, read a batch at a time by read_records. bench/README.md has the
designs measured (blocks of records per file, rebatched, cost 30% more CPU than this).
"""

import glob
import os
import threading
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from yt8m_kit import NUM_CLASSES, NUM_CLASSES_2017
from yt8m_kit.errors import ConfigError, DataError


@dataclass(frozen=True)
class FormatInfo:
    level: str  # "frame" | "video"
    version: int  # 2018 | 2017

    @property
    def id_key(self):
        return "video_id" if self.version == 2017 else "id"

    @property
    def num_classes(self):
        return NUM_CLASSES_2017 if self.version == 2017 else NUM_CLASSES


class SkipReport:
    """What skip_bad=True dropped: .count distinct records (a record met again in a later epoch
    counts once), .records the first 100 (file, record, reason)."""

    def __init__(self):
        self.count, self.records, self._seen, self._lock = 0, [], set(), threading.Lock()

    def add(self, file, record, reason, lost=1):
        """lost: records the reader loses there (a corrupt record can end its file: all that follow)."""
        with self._lock:
            if (file, record) in self._seen:
                return
            self._seen.add((file, record))
            self.count += lost
            if len(self.records) < 100:
                self.records.append((file, record, reason))

    def __str__(self):
        head = "; ".join(f"{f} record {r}: {why}" for f, r, why in self.records[:3])
        return f"skipped {self.count} bad records" + (f" (e.g. {head})" if head else "")


def records_after(path, offset):
    """(records, exact): how many records the file holds from byte `offset` on, walking their length
    headers (payload CRCs are not needed for that). exact is False when a header is damaged or the
    file ends inside a record: then the count is a lower bound (the broken record counts as one)."""
    size, count, pos = os.path.getsize(path), 0, int(offset)
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else None
            count += 1
            if length is None or pos + _FRAMING + length > size:
                return count, False
            pos += _FRAMING + length
    return count, True


def list_files(pattern):
    """Sorted files matching a glob or a comma-separated list of globs; ConfigError when none match."""
    pattern = str(pattern)
    files = sorted({f for p in pattern.split(",") if p.strip() for f in glob.glob(p.strip())})
    if not files:
        raise ConfigError(f"no files match {pattern!r}; give a glob such as 'data/train*.tfrecord'")
    return files


def data_signature(pattern):
    """Names, sizes and mtimes of the files the pattern matches: changes when the data does."""
    import hashlib

    h = hashlib.sha256()
    for f in list_files(pattern):
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def op_error_text(error, path=None):
    """A TensorFlow OpError's first line without its graph-function name and op tag, in the user's terms: a
    file that does not start like a TFRecord is named as such (a Kaggle CSV by its header)."""
    import re

    text = (error.message if hasattr(error, "message") else str(error)).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip()
    if "Is this even a TFRecord file?" in text:
        head = b""
        if path is not None:
            try:
                with open(path, "rb") as f:
                    head = f.read(64)
            except OSError:
                pass
        kind = " (it is a Kaggle CSV)" if head.lstrip(b"\xef\xbb\xbf").startswith(b"VideoId,") else ""
        return f"not a TFRecord file{kind}: " + text.replace(" (Is this even a TFRecord file?)", "")
    return text


def detect_format(files, allow_2017=False):
    """Look at the first record of files[0]: FormatInfo(level, version)."""
    path = files[0]
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as e:
        raise DataError(f"cannot read the first record: {op_error_text(e, path)}", file=path, record=0) from None
    if first is None:
        raise DataError("file has no records", file=path)
    try:
        seq = tf.train.SequenceExample.FromString(first.numpy())
    except Exception as e:  # protobuf DecodeError
        raise DataError(f"not a tf.train.Example/SequenceExample ({e})", file=path, record=0) from None
    keys, lists = set(seq.context.feature), set(seq.feature_lists.feature_list)
    if {"rgb", "audio"} <= lists:
        level = "frame"
    elif "mean_rgb" in keys:
        level = "video"
    else:
        raise DataError("neither frame-level (feature_lists rgb/audio) nor video-level (mean_rgb)",
                        file=path, record=0, value=sorted(keys | lists))
    if "video_id" in keys and "id" not in keys:
        if not allow_2017:
            raise DataError("this is a 2017 YouTube-8M file (key 'video_id', 4716 classes); this toolkit "
                            "targets 2018 (key 'id', 3862 classes). Pass allow_2017=True (--allow-2017) "
                            "to read it anyway", file=path, record=0)
        return FormatInfo(level, 2017)
    if "id" not in keys:
        raise DataError("record has no 'id'", file=path, record=0, value=sorted(keys))
    return FormatInfo(level, 2018)


def scan_file(path):
    """Count the records of one TFRecord file, checking length and CRC: (count, error or None).

    Also flags a tail too short for a record header, which TFRecordDataset ends the file at silently."""
    count, nbytes = 0, 0
    try:
        for n in tf.data.TFRecordDataset(str(path)).map(tf.strings.length).batch(1):
            count, nbytes = count + 1, nbytes + int(n[0]) + _FRAMING
    except tf.errors.OpError as e:
        return count, op_error_text(e, path)
    size = tf.io.gfile.stat(str(path)).length
    if nbytes != size:
        return count, (f"{size - nbytes} bytes after the last whole record: the file ends inside a record "
                       "header (truncated file)")
    return count, None


# ---------------------------------------------------------------- the record stream

BLOCK = 64  # records parsed together when skipping bad ones (data._good_records)


def count_records(files, skip_bad=False):
    """Records per epoch over files; skip_bad=True counts only each file's readable prefix (what
    record_stream(report=...) reads) instead of raising at a corrupt record."""
    total = 0
    for f in files:
        ds = tf.data.TFRecordDataset(f)
        ds = ds.ignore_errors() if skip_bad else ds
        total += int(ds.batch(4096).reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.shape(b, tf.int64)[0]).numpy())
    return total


_FRAMING = 16  # bytes around each TFRecord payload: length (8), length CRC (4), payload CRC (4)

# The stream's key: epoch, file index and record index packed into one int64, so one enumerate per
# file tags every record (no per-record map).
_RECORD_BITS, _FILE_BITS = 24, 20
MAX_FILES = 1 << _FILE_BITS


def read_records(ops, files_t, key, where):
    """A batch of index-mode record_stream elements -> their serialized records (string [B])."""
    f, r, _ = split_key(key)
    return ops.yt8m_read_records(files_t, f, r, where)


def split_key(key):
    """record_stream keys (any shape, int64) -> (file_index int32, record_index int64, epoch int64)."""
    record = tf.bitwise.bitwise_and(key, (1 << _RECORD_BITS) - 1)
    file = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(key, _RECORD_BITS), MAX_FILES - 1), tf.int32)
    return file, record, tf.bitwise.right_shift(key, _RECORD_BITS + _FILE_BITS)


def record_stream(files, *, shuffle, seed, epochs, shuffle_buffer, num_parallel_reads, report=None, first_epoch=0,
                  index=None):
    """Records one at a time: (key int64, serialized), key = split_key's (file, record, epoch).

    index (yt8m_kit.data.native's ops, not with report): (key, where int64[2]) instead, where = the
    record's payload offset and length in its file (from the file's headers, read when the file is
    opened); ops.yt8m_read_records reads a batch of them (read_records). Same keys, same order.

    Files are read num_parallel_reads (default up to 16) at a time, interleaved record by record (as
    TFRecordDataset(files, num_parallel_reads=...) does); shuffle shuffles the file order per epoch
    and then records through a buffer. The order depends only on (files, seed, epoch); epochs run
    first_epoch, first_epoch+1, ... and each epoch's order is independent of the ones before it (so
    a resumed run can start at any epoch). Records are not copied until the reader's batch().
    report (a SkipReport): a corrupt record or truncated tail ends its file instead of raising, and is
    added to report when the file's end is reached. No extra pass: the bytes read (payloads plus 16
    bytes of framing each) are compared with the file's size, and only a short file is scanned again
    for the error text. At most 2^20 files, 2^24 records a file, 2^19 epochs.
    """
    if len(files) > MAX_FILES:
        raise ConfigError(f"{len(files)} files: at most {MAX_FILES} can be read at once")
    if index is not None and report is not None:
        raise ConfigError("record_stream: index and report cannot be combined")
    files_t = tf.constant(files)
    cycle = max(1, min(num_parallel_reads or 16, len(files)))

    def check_end(i, records, nbytes):
        f = files[int(i)]
        if int(nbytes) != os.path.getsize(f):
            _, err = scan_file(f)
            lost, exact = records_after(f, int(nbytes))
            report.add(f, int(records), f"unreadable from here on, rest of file skipped: {lost}"
                       f"{'' if exact else ' or more'} record(s) lost ({err or 'size changed'})", lost=lost)
        return np.int64(0)

    def one_file(i, epoch):
        start = tf.bitwise.bitwise_or(tf.bitwise.left_shift(epoch, _RECORD_BITS + _FILE_BITS),
                                      tf.bitwise.left_shift(i, _RECORD_BITS))
        if index is not None:  # keys made in one op, not by enumerate (one dataset less per record)
            where = index.yt8m_record_index(tf.gather(files_t, i))
            return tf.data.Dataset.from_tensor_slices((start + tf.range(tf.shape(where, tf.int64)[0]), where))
        records = tf.data.TFRecordDataset(tf.gather(files_t, i))
        if report is None:
            return records.enumerate(start=start)

        def account(state, rec):  # running (records, bytes); the end marker (key -1) checks the file's size
            key, s = rec
            end = key < 0
            n, nbytes = state[0] + tf.cast(~end, tf.int64), state[1] + tf.cast(~end, tf.int64) * (
                tf.cast(tf.strings.length(s), tf.int64) + _FRAMING)
            done = tf.cond(end, lambda: tf.py_function(check_end, [i, n, nbytes], tf.int64),
                           lambda: tf.constant(0, tf.int64))
            with tf.control_dependencies([done]):
                return (n, nbytes), (tf.identity(key), tf.identity(s))

        marker = tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), tf.constant("")))
        zero = tf.constant(0, tf.int64)
        return (records.ignore_errors().enumerate(start=start).concatenate(marker).scan((zero, zero), account)
                .filter(lambda key, s: key >= 0))

    def one_epoch(epoch):
        order = tf.range(len(files), dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            lambda i: one_file(i, epoch), cycle_length=cycle, block_length=1,
            # Parallel even for the index's tiny elements (~4 us more CPU a record than sequential): the
            # next files' headers are then read in the background, not while the reader waits.
            **({"num_parallel_calls": cycle, "deterministic": True} if cycle > 1 else {}))
        if shuffle:
            # A Python-int seed: a tensor seed fails under global seed 0 (tf's get_seed compares
            # the pair with (0, 0)). The epoch still changes the order through the file order above.
            ds = ds.shuffle(shuffle_buffer, seed=int(seed) * 1000003 + 1)
        return ds

    if epochs is not None and int(epochs) == first_epoch + 1:  # one epoch: no flat_map around it
        return one_epoch(tf.constant(int(first_epoch), tf.int64))
    last = 2**62 if epochs is None else int(epochs)
    return tf.data.Dataset.range(int(first_epoch), max(int(first_epoch), last)).flat_map(one_epoch)
