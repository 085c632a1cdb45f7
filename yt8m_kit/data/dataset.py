"""tf.data readers for YouTube-8M TFRecords (2018 schema; 2017 on request), frame and video level.

    ds = make_dataset("data/train*.tfrecord", 64, frames="sample", shuffle=True, epochs=None)
    for batch in iterate(ds):      # errors become DataError naming file, record and value
        ...

Batches follow the README "Reader batches" contract. Choices made here:
- frames="all": T is the longest video of the batch (at most 300), rows past num_frames are
  zero; pad_to_max=True pads every batch to T=300 instead (fixed shapes, e.g. for XLA).
- frames="sample": num_samples frames drawn uniformly with replacement from the real frames,
  sorted in time; which frames depends only on (seed, video id, repeat index), where the
  repeat index is the epoch number in training (see sample_frames).
- Records are validated in the graph (ids, frame counts, byte lengths, label range). A bad
  record stops iteration with an InvalidArgumentError whose text names file and record;
  iterate(ds) turns it (and CRC/truncation errors) into DataError. skip_bad=True drops bad
  records instead and counts them in ds.skip_report (a SkipReport), corrupt file tails included
  (found while reading, not by an extra pass; see records.record_stream).
- start_example=n skips n raw serialized records (no parsing) after shuffling, so a resumed
  run sees exactly the stream it would have seen; whole epochs are skipped by count, not read.
- With yt8m_kit.data.native built (and not skip_bad, not remote paths), the stream carries each
  record's place in its file and one native op per batch reads the records (records.cc); the
  same records in the same order as TFRecordDataset, with both CRCs checked.
Raw record streaming and format detection live in yt8m_kit.data.records, parsing, checks and decoding
of a batch of records in yt8m_kit.data.parsing, sampling in yt8m_kit.data.sampling (re-exported here).
"""

import os

import numpy as np
import tensorflow as tf

from yt8m_kit import FEATURE_DIM, MAX_FRAMES
from yt8m_kit.data import quantization as features
from yt8m_kit.errors import ConfigError, DataError
from yt8m_kit.data.parsing import Checks, dequantize, finish_batch, finish_native, parse_batch, parse_native  # noqa: F401
from yt8m_kit.data.records import (BLOCK, FormatInfo, SkipReport, count_records, detect_format, list_files,  # noqa: F401
                              op_error_text, read_records, record_stream, scan_file, split_key)
from yt8m_kit.data.sampling import sample_frames, sample_indices, sample_repeats  # noqa: F401

_MARK_OPEN, _MARK_CLOSE, _SEP = "<<YT8M||", "||YT8M>>", "||"
PREFETCH = 2  # batches
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
PARALLEL_PARSES = min(4, max(2, _CORES))  # batches parsed at once

quantize = features.quantize


def _error_text(files_t, file_idx, rec_idx, checks):
    """The marked text to_data_error reads back: file, record, reason and value of the first bad record."""
    b, reason, value = checks.first()
    return tf.strings.join([_MARK_OPEN, tf.gather(files_t, tf.gather(file_idx, b)), _SEP,
                            tf.strings.as_string(tf.gather(rec_idx, b)), _SEP, reason, _SEP, value, _MARK_CLOSE])


# ---------------------------------------------------------------- public readers

def make_dataset(pattern, batch_size, *, level=None, frames="all", num_samples=300, seed=0, shuffle=False,
                 shuffle_buffer=1024, epochs=1, start_example=0, allow_2017=False, skip_bad=False,
                 drop_remainder=False, num_parallel_reads=None, require_labels=False, pad_to_max=False,
                 quantized=False, native=None, native_read=True):
    """A tf.data.Dataset of batch dicts (README "Reader batches"); see the module docstring.

    quantized=True (frames="sample" only) leaves frames uint8 as stored, 4x fewer bytes to move;
    dequantize(frames) gives the float32 batch bit for bit (the trainer does it inside its step).
    native: use yt8m_kit.data.native's ops for regular records (None: when built; False: never; True: required).
    native_read: with the native ops, also read each batch's records in one op (False: records stream
    through TFRecordDataset and only the parsing is native; the same batches either way).

    Attached attributes: ds.yt8m_files (list), ds.yt8m_format (FormatInfo), ds.skip_report (SkipReport).
    """
    if frames not in ("all", "sample"):
        raise ConfigError(f"frames must be 'all' or 'sample', got {frames!r}")
    if quantized and frames != "sample":
        raise ConfigError("quantized=True needs frames='sample' (padded rows of uint8 frames would not dequantise to 0)")
    if batch_size < 1 or num_samples < 1 or start_example < 0:
        raise ConfigError(f"batch_size ({batch_size}) and num_samples ({num_samples}) must be >= 1, "
                          f"start_example ({start_example}) >= 0")
    files = list_files(pattern)
    info = detect_format(files, allow_2017=allow_2017)
    if level is not None and level != info.level:
        raise ConfigError(f"{files[0]} holds {info.level}-level records but level={level!r} was asked for")
    report, files_t = SkipReport(), tf.constant(files)
    first_epoch = 0
    if start_example and epochs != 1:  # start at the right epoch instead of reading all the earlier ones
        per_epoch = count_records(files, skip_bad=skip_bad)
        first_epoch, start_example = divmod(start_example, per_epoch) if per_epoch else (0, start_example)
    stream = dict(shuffle=shuffle, seed=seed, epochs=epochs, shuffle_buffer=shuffle_buffer,
                  num_parallel_reads=num_parallel_reads, first_epoch=first_epoch)
    ops = _native_ops(native) if info.level == "frame" else None
    finish = dict(frames=frames, num_samples=num_samples, seed=seed, quantized=quantized)
    if skip_bad:
        raw = record_stream(files, report=report, **stream).skip(start_example).batch(BLOCK)
        ds = _good_records(raw, info, files, report, ops, require_labels=require_labels, **finish,
                           pad_to_max=pad_to_max or (info.level == "frame" and frames == "all"))
        ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
        if info.level == "frame" and frames == "all" and not pad_to_max:  # T back to the batch's longest video
            ds = ds.map(lambda b: dict(b, frames=b["frames"][:, :tf.reduce_max(b["num_frames"])]))
        ds = ds.prefetch(PREFETCH)
    else:
        def stop_at_bad(parts, checks, f, r, e):
            # A few scalars, no per-record reason strings in a cond: that cost ~45 us a video (bench/README.md)
            ok = tf.debugging.Assert(tf.reduce_all(~checks.bad), [_error_text(files_t, f, r, checks)])
            with tf.control_dependencies([ok]):  # tf's parser's parts could fail to finish when bad: all wait
                gated = ["id"] if "serialized" in parts else list(parts)
                return dict(parts, **{k: tf.identity(parts[k]) for k in gated}), e

        # Native: the stream carries where each record is, and one op per batch reads them (no
        # copy of every record through tf.data, a shuffle buffer of small tuples). Not for remote files.
        index = ops if ops is not None and native_read and not any("://" in f for f in files) else None

        def parse(key, s):
            if index is not None:
                s = read_records(index, files_t, key, s)
            return _parse_and_finish(s, *split_key(key), info, ops, stop_at_bad, require_labels=require_labels,
                                     pad_to_max=pad_to_max, **finish)

        ds = record_stream(files, index=index, **stream).skip(start_example).batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(parse, num_parallel_calls=PARALLEL_PARSES, deterministic=True).prefetch(PREFETCH)
    # Fixed parallelism and buffers instead of tf.data's autotuning, which on 2 cores left the reader
    # at 0.6x of this for the first thousands of records, half the runs (bench/README.md). Downstream
    # AUTOTUNE values then mean "one per core"; ds.with_options() can turn autotuning back on.
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = ds.with_options(options)
    ds.yt8m_files, ds.yt8m_format, ds.skip_report = files, info, report
    return ds


def _native_ops(native):
    from yt8m_kit.data import native as native_lib

    if native is False:
        return None
    ops = native_lib.ops()
    if native and ops is None:
        raise ConfigError("native=True but the native reader ops are not available: run `python -m yt8m_kit.native`")
    return ops


def _parse_and_finish(s, f, r, e, info, ops, on_bad, *, require_labels, **finish):
    """Parse a block, let on_bad(parts, checks, f, r, e) stop or drop bad records (checks: parsing.Checks), finish the rest
    into a batch dict. With native ops, blocks whose records all have the regular frame layout go the
    native way, the others through tf's parser; both give the same batch."""
    def with_tf(s, f, r, e):
        parts, reason, value = parse_batch(s, info, require_labels=require_labels)
        parts, e2 = on_bad(parts, Checks.explained(reason, value), f, r, e)
        return finish_batch(parts, info, e2, **finish)

    if ops is None:
        return with_tf(s, f, r, e)
    layout = ops.yt8m_frame_layout(s)

    def fast():
        parts, e2 = on_bad(*parse_native(ops, s, layout, info, require_labels=require_labels), f, r, e)
        return finish_native(ops, parts, e2, **finish)

    # The tf parser's graph as a cond branch cost ~40% more CPU per batch even when never taken
    # (bench/README.md), so irregular blocks, which real data does not have, run it eagerly instead.
    slow_graph = tf.function(with_tf)
    T = finish["num_samples"] if finish["frames"] == "sample" else MAX_FRAMES if finish["pad_to_max"] else None
    like = ({"frames": tf.TensorSpec([None, T, FEATURE_DIM], tf.uint8 if finish.get("quantized") else tf.float32),
             "id": tf.TensorSpec([None], tf.string), "labels": tf.TensorSpec([None, info.num_classes], tf.float32),
             "num_frames": tf.TensorSpec([None], tf.int32)})

    def slow():
        specs = tf.nest.flatten(like)
        out = tf.py_function(lambda *a: tf.nest.flatten(slow_graph(*a)), [s, f, r, e], [t.dtype for t in specs])
        for t, spec in zip(out, specs):
            t.set_shape(spec.shape)
        return tf.nest.pack_sequence_as(like, out)

    return tf.cond(tf.reduce_all(layout[2]), fast, slow)


def _good_records(blocks, info, files, report, ops, *, require_labels, **finish):
    """skip_bad: parse each block once, log its bad records in report and drop them, finish the rest
    into dense per-record tensors (frames padded to 300 when frames="all"), ready to rebatch."""
    def log_bad(f, r, why):
        for fi, ri, w in zip(f.numpy(), r.numpy(), why.numpy()):
            report.add(files[fi], int(ri), w.decode())
        return np.int64(0)

    def drop_bad(parts, checks, f, r, e):
        bad = checks.bad

        def log():  # the reasons are built only here, when a record is bad
            why = tf.strings.join([*checks.explain()], ": ")
            return tf.py_function(log_bad, [tf.boolean_mask(f, bad), tf.boolean_mask(r, bad), tf.boolean_mask(why, bad)],
                                  tf.int64)

        logged = tf.cond(tf.reduce_any(bad), log, lambda: tf.constant(0, tf.int64))
        good = tf.logical_not(bad)

        def keep(x):
            with tf.control_dependencies([logged]):
                return tf.ragged.boolean_mask(x, good) if isinstance(x, tf.RaggedTensor) else tf.boolean_mask(x, good)

        return {k: keep(v) for k, v in parts.items()}, keep(e)

    def parse_good(key, s):
        return _parse_and_finish(s, *split_key(key), info, ops, drop_bad, require_labels=require_labels, **finish)

    return (blocks.map(parse_good, num_parallel_calls=PARALLEL_PARSES, deterministic=True)
            .filter(lambda b: tf.shape(b["id"])[0] > 0))


def to_data_error(err, files):
    """Turn a tf error raised while iterating into a DataError naming file, record and value."""
    msg = err.message
    if _MARK_OPEN in msg:
        body = msg[msg.index(_MARK_OPEN) + len(_MARK_OPEN):]
        body = body[:body.index(_MARK_CLOSE)] if _MARK_CLOSE in body else body
        file, record, reason, value = (body.split(_SEP) + ["", "", "", ""])[:4]
        return DataError(reason, file=file, record=int(record) if record.isdigit() else record, value=value)
    if isinstance(err, tf.errors.DataLossError):
        for f in files or []:
            n, bad = scan_file(f)
            if bad:
                return DataError(f"corrupt record (CRC mismatch or truncated file): {bad}; re-download the "
                                 "file, or pass skip_bad=True to skip the rest of it", file=f, record=n)
    first = op_error_text(err)
    where = f" in {files[0]}..{files[-1]}" if files else ""
    return DataError(f"cannot read the records{where}: {first}; run `python -m yt8m_kit.inspect PATTERN` "
                     "to locate the bad file and record")


def iterate(ds, files=None):
    """Iterate a dataset from make_dataset, turning tf errors into DataError (file, record, value).

    files defaults to ds.yt8m_files (needed to locate CRC/truncation errors); pass it when ds
    was transformed after make_dataset.
    """
    files = files if files is not None else getattr(ds, "yt8m_files", None)
    it = iter(ds)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            raise to_data_error(e, files) from None
        yield batch


def read_ids_and_labels(pattern, allow_2017=False):
    """(ids list[str], labels list[np.ndarray int64]) in sorted-file order, parsing only id and labels.

    Raises DataError for unreadable records, a missing id, labels out of range and duplicate ids.
    """
    files = list_files(pattern)
    info = detect_format(files, allow_2017=allow_2017)
    spec = {info.id_key: tf.io.RaggedFeature(tf.string), "labels": tf.io.RaggedFeature(tf.int64)}
    files_t = tf.constant(files)

    def one_file(i):
        return tf.data.TFRecordDataset(tf.gather(files_t, i)).map(lambda s: (s, tf.cast(i, tf.int32)))

    # Example parsing reads a SequenceExample's context too (same field number): one path for both levels.
    ds = (tf.data.Dataset.range(len(files)).flat_map(one_file).batch(4096)
          .map(lambda s, f: (tf.io.parse_example(s, spec), f)).prefetch(2))
    ids, labels, seen = [], [], {}
    per_file = np.zeros(len(files), np.int64)
    try:
        for batch, fidx in ds:
            vids, labs, fidx = batch[info.id_key], batch["labels"], fidx.numpy()
            n_ids = vids.row_lengths().numpy()
            records = np.empty(len(fidx), np.int64)
            for j, fi in enumerate(fidx):  # record index within its file
                records[j] = per_file[fi]
                per_file[fi] += 1
            bad = np.flatnonzero(n_ids != 1)
            if bad.size:
                j = bad[0]
                raise DataError(f"expected one '{info.id_key}'", file=files[fidx[j]], record=int(records[j]),
                                value=int(n_ids[j]))
            flat = labs.flat_values.numpy()
            rows = np.split(flat, np.cumsum(labs.row_lengths().numpy())[:-1])
            out = (flat < 0) | (flat >= info.num_classes)
            if out.any():
                j = int(labs.value_rowids().numpy()[np.flatnonzero(out)[0]])
                raise DataError(f"label out of range 0..{info.num_classes - 1}", file=files[fidx[j]],
                                record=int(records[j]), value=int(flat[np.flatnonzero(out)[0]]))
            for j, vid in enumerate(vids.flat_values.numpy()):
                vid = vid.decode("utf-8", "replace")
                if vid in seen:
                    raise DataError(f"duplicate video id (first seen in {seen[vid][0]} record {seen[vid][1]})",
                                    file=files[fidx[j]], record=int(records[j]), value=vid)
                seen[vid] = (files[fidx[j]], int(records[j]))
                ids.append(vid)
            labels.extend(r.astype(np.int64) for r in rows)
    except tf.errors.OpError as e:
        raise to_data_error(e, files) from None
    return ids, labels
