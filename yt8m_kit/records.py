"""Reading raw YouTube-8M TFRecords: file lists, format detection, record counts, and the block stream.

The readers (yt8m_kit.data) parse what this module streams. Records are read BLOCK at a time from
one file and stay in blocks (vectors) until parsing: per-record tf.data work (map, enumerate, take)
cost more than parsing itself (bench/RESULTS.md, reader). A fixed block size keeps the unshuffled
order independent of the batch size.
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

    def add(self, file, record, reason):
        with self._lock:
            if (file, record) in self._seen:
                return
            self._seen.add((file, record))
            self.count += 1
            if len(self.records) < 100:
                self.records.append((file, record, reason))

    def __str__(self):
        head = "; ".join(f"{f} record {r}: {why}" for f, r, why in self.records[:3])
        return f"skipped {self.count} bad records" + (f" (e.g. {head})" if head else "")


def list_files(pattern):
    """Sorted files matching a glob or a comma-separated list of globs; ConfigError when none match."""
    pattern = str(pattern)
    files = sorted({f for p in pattern.split(",") if p.strip() for f in glob.glob(p.strip())})
    if not files:
        raise ConfigError(f"no files match {pattern!r}; give a glob such as 'data/train*.tfrecord'")
    return files


def detect_format(files, allow_2017=False):
    """Look at the first record of files[0]: FormatInfo(level, version)."""
    path = files[0]
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as e:
        raise DataError(f"cannot read the first record: {e.message.splitlines()[0]}", file=path, record=0) from None
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
    """Count the records of one TFRecord file, checking length and CRC: (count, error or None)."""
    count = 0
    try:
        for _ in tf.data.TFRecordDataset(str(path)).batch(1):
            count += 1
    except tf.errors.OpError as e:
        return count, e.message.splitlines()[0]
    return count, None


# ---------------------------------------------------------------- the block stream

BLOCK = 64


def count_records(files, skip_bad=False):
    """Records per epoch over files; skip_bad=True counts only each file's readable prefix (what
    record_blocks(report=...) reads) instead of raising at a corrupt record."""
    total = 0
    for f in files:
        ds = tf.data.TFRecordDataset(f)
        ds = ds.ignore_errors() if skip_bad else ds
        total += int(ds.batch(4096).reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.shape(b, tf.int64)[0]).numpy())
    return total


_FRAMING = 16  # bytes around each TFRecord payload: length (8), length CRC (4), payload CRC (4)


def record_blocks(files, *, shuffle, seed, epochs, shuffle_buffer, num_parallel_reads, report=None, first_epoch=0):
    """Blocks of records: (serialized (n,), file_index (n,), record_index (n,), epoch (n,)), n <= BLOCK.

    The order depends only on (files, seed, epoch); epochs run first_epoch, first_epoch+1, ... and each
    epoch's order is independent of the ones before it (so a resumed run can start at any epoch).
    report (a SkipReport): a corrupt record or truncated tail ends its file instead of raising, and is
    added to report when the file's end is reached. No extra pass: the bytes read (payloads plus
    16 bytes of framing each) are compared with the file's size, and only a short file is scanned
    again for the error text.
    """
    files_t = tf.constant(files)
    cycle = max(1, min(num_parallel_reads or 16, len(files)))

    def check_end(i, records, nbytes):
        f = files[int(i)]
        if int(nbytes) != os.path.getsize(f):
            _, err = scan_file(f)
            report.add(f, int(records), f"unreadable from here on, rest of file skipped ({err or 'size changed'})")
        return np.int64(0)

    def one_file(i, epoch):
        records = tf.data.TFRecordDataset(tf.gather(files_t, i))
        blocks = (records.ignore_errors() if report is not None else records).batch(BLOCK)

        def tag(b, s):
            n = tf.shape(s, tf.int64)[0]
            return (s, tf.fill([n], tf.cast(i, tf.int32)), b * BLOCK + tf.range(n), tf.fill([n], epoch))

        tagged = blocks.enumerate().map(tag)
        if report is None:
            return tagged

        def account(state, block):  # running (records, bytes); the empty end marker checks the file's size
            n = tf.shape(block[0], tf.int64)[0]
            state = (state[0] + n, state[1] + tf.reduce_sum(tf.cast(tf.strings.length(block[0]), tf.int64)) + _FRAMING * n)
            done = tf.cond(n > 0, lambda: tf.constant(0, tf.int64),
                           lambda: tf.py_function(check_end, [i, state[0], state[1]], tf.int64))
            with tf.control_dependencies([done]):
                return state, tuple(tf.identity(x) for x in block)

        end = tf.data.Dataset.from_tensors((tf.zeros([0], tf.string), tf.zeros([0], tf.int32),
                                            tf.zeros([0], tf.int64), tf.zeros([0], tf.int64)))
        zero = tf.constant(0, tf.int64)
        return tagged.concatenate(end).scan((zero, zero), account).filter(lambda s, *rest: tf.shape(s)[0] > 0)

    def one_epoch(epoch):
        order = tf.range(len(files), dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            lambda i: one_file(i, epoch), cycle_length=cycle, block_length=1,
            **({"num_parallel_calls": cycle, "deterministic": True} if cycle > 1 else {}))
        if shuffle:
            # A Python-int seed: a tensor seed fails under global seed 0 (tf's get_seed compares
            # the pair with (0, 0)). The epoch still changes the order through the file order above.
            ds = ds.unbatch().shuffle(shuffle_buffer, seed=int(seed) * 1000003 + 1).batch(BLOCK)
        return ds

    last = 2**62 if epochs is None else int(epochs)
    return tf.data.Dataset.range(int(first_epoch), max(int(first_epoch), last)).flat_map(one_epoch)


# record_stream's key: epoch, file index and record index packed into one int64 (one enumerate per file
# tags every record; no per-record map).
_RECORD_BITS, _FILE_BITS = 24, 20
MAX_FILES = 1 << _FILE_BITS


def split_key(key):
    """record_stream keys (any shape, int64) -> (file_index int32, record_index int64, epoch int64)."""
    record = tf.bitwise.bitwise_and(key, (1 << _RECORD_BITS) - 1)
    file = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(key, _RECORD_BITS), MAX_FILES - 1), tf.int32)
    return file, record, tf.bitwise.right_shift(key, _RECORD_BITS + _FILE_BITS)


def record_stream(files, *, shuffle, seed, epochs, num_parallel_reads, shuffle_buffer, first_epoch=0):
    """Records one at a time: (key int64, serialized), key = split_key's (file, record, epoch).

    The same records in the same order as record_blocks(...) unbatched (files interleaved BLOCK
    records at a time, then shuffled record by record when shuffle), for a clean stream: no blocks
    are batched and then rebatched, so each record is copied once, by the reader's own batch().
    At most 2^20 files, 2^24 records a file, 2^19 epochs.
    """
    if len(files) > MAX_FILES:
        raise ConfigError(f"{len(files)} files: at most {MAX_FILES} can be read at once")
    files_t = tf.constant(files)
    cycle = max(1, min(num_parallel_reads or 16, len(files)))

    def one_epoch(epoch):
        order = tf.range(len(files), dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))

        def one_file(i):
            start = tf.bitwise.bitwise_or(tf.bitwise.left_shift(epoch, _RECORD_BITS + _FILE_BITS),
                                          tf.bitwise.left_shift(i, _RECORD_BITS))
            return tf.data.TFRecordDataset(tf.gather(files_t, i)).enumerate(start=start)

        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            one_file, cycle_length=cycle, block_length=BLOCK,
            **({"num_parallel_calls": cycle, "deterministic": True} if cycle > 1 else {}))
        if shuffle:  # the seed as in record_blocks
            ds = ds.shuffle(shuffle_buffer, seed=int(seed) * 1000003 + 1)
        return ds

    last = 2**62 if epochs is None else int(epochs)
    return tf.data.Dataset.range(int(first_epoch), max(int(first_epoch), last)).flat_map(one_epoch)


def skip_records(blocks, n):
    """Drop the first n records of a block stream: a running count trims the blocks that hold them
    (blocks may be short, e.g. a file's last), then passes the rest through untouched."""
    if n <= 0:
        return blocks

    def trim(seen, block):
        size = tf.shape(block[0], tf.int64)[0]
        drop = tf.clip_by_value(tf.constant(n, tf.int64) - seen, 0, size)
        return seen + size, tuple(x[drop:] for x in block)

    return (blocks.scan(tf.constant(0, tf.int64), trim)
            .filter(lambda s, *rest: tf.shape(s)[0] > 0))
