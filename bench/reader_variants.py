"""Reader experiments: ways to turn frame-level records into sampled batches, timed in one process.

    python bench/reader_variants.py [--videos 1000] [--runs 5]

Not part of the toolkit: this records why yt8m_kit.data.dataset reads the way it does (bench/README.md,
"What helped, and what did not"). All variants read the same real-size generated records
(synth min_frames=120, max_frames=330: ~225 frames, ~263 KB a video, as the real data) and
produce the trainer's batch (64 videos x 300 sampled frames x 1152), checked equal to the
reader's before timing; the variants are timed interleaved so load changes hit all alike.

- raw: TFRecordDataset of the files, batched (the issue's reference), with the reader's tf.data options.
- stream: the reader's record stream alone (records.record_stream, batched), nothing parsed.
- reader: data.make_dataset(frames="sample", quantized=True): the native ops, uint8 out (what the
  trainer reads); reader_float32: the same dequantised; tf_parser: native=False (the fallback).
- reader_tfrecord: the reader with native_read=False: records streamed through
  TFRecordDataset and batched (two copies), instead of read by the native op, one batch at a time.
- shuffled, shuffled_tfrecord: the same two with shuffle=True (the trainer's 1,024-record buffer).
- reader_uint8: tf's parser, sampled frames left as uint8 (no dequantise).
- wire_numpy: a hand-written wire-format walk in Python (numpy checks the fixed 1033/137-byte
  frame stride), sampled rows gathered with np.take, uint8 out; ids and labels still through
  tf's parser, sample indices the reader's own (sampling.sample_indices).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from yt8m_kit import MAX_FRAMES
from yt8m_kit.runtime import configure_process  # noqa: E402
from yt8m_kit.data import dataset as data
from yt8m_kit.data import parsing
from yt8m_kit.data import synth  # noqa: E402
from yt8m_kit.data.sampling import sample_indices  # noqa: E402

import tensorflow as tf  # noqa: E402

SAMPLES, BATCH = 300, 64


def _varint(buf, pos):
    result, shift = 0, 0
    while True:
        b = buf[pos]
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7


def _field(buf, pos):
    tag, pos = _varint(buf, pos)
    length, pos = _varint(buf, pos)
    return tag, pos, pos + length


def _frame_header(dim):
    """The 9 bytes before each frame's payload in a FeatureList: Feature, BytesList, value tags and lengths."""
    def enc(n):
        return bytes([0x80 | (n & 0x7F), n >> 7]) if n >= 128 else bytes([n])
    value = b"\x0a" + enc(dim)
    blist = b"\x0a" + enc(dim + len(value))
    feature = b"\x0a" + enc(dim + len(value) + len(blist))
    head = feature + blist + value
    return np.frombuffer(head, np.uint8), len(head) + dim


HEADERS = {b"rgb": _frame_header(1024), b"audio": _frame_header(128)}


def walk(rec):
    """{b"rgb": (payload offset, frames), b"audio": ...} of a SequenceExample whose frame lists have
    the regular layout, else None (a real reader would fall back to tf's parser)."""
    pos, lists = 0, {}
    while pos < len(rec):
        tag, start, end = _field(rec, pos)
        if tag == 0x12:  # feature_lists: map entries {key, FeatureList}
            p = start
            while p < end:
                _, e_start, e_end = _field(rec, p)
                _, k_start, k_end = _field(rec, e_start)
                _, v_start, v_end = _field(rec, k_end)
                key = bytes(rec[k_start:k_end])
                if key in HEADERS:
                    head, stride = HEADERS[key]
                    n, rem = divmod(v_end - v_start, stride)
                    rows = np.frombuffer(rec, np.uint8, count=n * stride, offset=v_start).reshape(n, stride)
                    if rem or not (rows[:, :head.size] == head).all():
                        return None
                    lists[key] = (v_start, n)
                p = e_end
        pos = end
    return lists if len(lists) == 2 and lists[b"rgb"][1] == lists[b"audio"][1] > 0 else None


def layouts(records):
    """(B, 3) int64: rgb payload offset, audio payload offset, frames; ValueError when irregular."""
    out = np.zeros((len(records), 3), np.int64)
    for b, rec in enumerate(records):
        lists = walk(rec)
        if lists is None:
            raise ValueError(f"record {b}: not the regular frame layout")
        out[b] = lists[b"rgb"][0], lists[b"audio"][0], lists[b"rgb"][1]
    return out


def gather_frames(records, layout, idx):
    """(B,) serialized records, layouts(records), (B, K) frame indices -> (B, K, 1152) uint8."""
    out = np.empty(idx.shape + (1152,), np.uint8)
    for b, rec in enumerate(records):
        col, n = 0, int(layout[b, 2])
        for j, key in enumerate((b"rgb", b"audio")):
            head, stride = HEADERS[key]
            rows = np.frombuffer(rec, np.uint8, count=n * stride, offset=int(layout[b, j])).reshape(n, stride)
            out[b, :, col:col + stride - head.size] = rows.take(idx[b], axis=0)[:, head.size:]
            col += stride - head.size
    return out


def variants(pattern, files):
    stream = data.record_stream(files, shuffle=False, seed=0, epochs=1, shuffle_buffer=1,
                                num_parallel_reads=None).batch(BATCH)
    info = data.detect_format(files)

    def uint8_parse(key, s):
        e = data.split_key(key)[2]
        parts, _, _ = parsing.parse_batch(s, info, require_labels=False)
        rgb, audio = parts["rgb"], parts["audio"]
        idx = sample_indices(tf.cast(tf.minimum(rgb.row_lengths(), MAX_FRAMES), tf.int32), parts["id"], SAMPLES, 0, e)
        rows = tf.cast(rgb.row_starts(), tf.int32)[:, None] + idx
        return {"id": parts["id"], "frames": parsing.decode_frames(tf.gather(rgb.values, rows), tf.gather(audio.values, rows))}

    def wire(key, s):
        e = data.split_key(key)[2]
        ctx, _, _ = tf.io.parse_sequence_example(s, context_features={"id": tf.io.RaggedFeature(tf.string)})
        ids = ctx["id"].to_tensor("", shape=[None, 1])[:, 0]
        layout = tf.ensure_shape(tf.numpy_function(layouts, [s], tf.int64, stateful=False), [None, 3])
        idx = sample_indices(tf.cast(tf.minimum(layout[:, 2], MAX_FRAMES), tf.int32), ids, SAMPLES, 0, e)
        x = tf.numpy_function(gather_frames, [s, layout, idx], tf.uint8, stateful=False)
        return {"id": ids, "frames": tf.ensure_shape(x, [None, SAMPLES, 1152])}

    par = dict(num_parallel_calls=data.PARALLEL_PARSES, deterministic=True)
    options = tf.data.Options()
    options.autotune.enabled = False  # as the reader's (data.make_dataset)

    def sample(**kw):
        return data.make_dataset(pattern, BATCH, level="frame", frames="sample", num_samples=SAMPLES, **kw)

    out = {
        "raw": tf.data.TFRecordDataset(files, num_parallel_reads=len(files)).batch(BATCH).prefetch(2),
        "stream": stream.map(lambda key, s: s).prefetch(2),
        "reader": sample(quantized=True),
        "reader_tfrecord": sample(quantized=True, native_read=False),
        "shuffled": sample(quantized=True, shuffle=True),
        "shuffled_tfrecord": sample(quantized=True, shuffle=True, native_read=False),
        "reader_float32": sample(),
        "tf_parser": sample(native=False),
        "reader_uint8": stream.map(uint8_parse, **par).prefetch(2),
        "wire_numpy": stream.map(wire, **par).prefetch(2),
    }
    return {k: d.with_options(options) for k, d in out.items()}


def main(argv=None):
    configure_process()  # the commands' process settings (yt8m_kit.runtime), as the toolkit reads
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        synth.generate(work, "frame", a.videos, seed=0, shards=4, min_frames=120, max_frames=330,
                       split_videos={"train": a.videos, "validate": 1, "test": 1})
        pattern = os.path.join(work, "train*.tfrecord")
        files = data.list_files(pattern)
        ds = variants(pattern, files)
        want = next(iter(ds["reader_float32"]))["frames"].numpy()
        assert np.array_equal(next(iter(ds["tf_parser"]))["frames"].numpy(), want)
        for name in ("reader", "reader_uint8", "wire_numpy"):
            got = next(iter(ds[name]))["frames"]
            assert np.array_equal(data.dequantize(got).numpy(), want), f"{name} differs from the reader"

        def count(d):
            return sum(int(tf.shape(b["id"] if isinstance(b, dict) else b)[0]) for b in d)

        times = {k: [] for k in ds}
        for d in ds.values():
            assert count(d) == a.videos  # also warms caches and autotuning
        for _ in range(a.runs):
            for k, d in ds.items():
                t0 = time.perf_counter()
                count(d)
                times[k].append(a.videos / (time.perf_counter() - t0))
        raw = statistics.median(times["raw"])
        kib = sum(os.path.getsize(f) for f in files) / a.videos / 1024
        print(f"{a.videos} videos, {kib:.0f} KiB each, batch {BATCH}, {SAMPLES} sampled frames; videos/s, "
              f"median (min-max) of {a.runs} interleaved runs; ratio = median / raw median")
        for k, v in times.items():
            m = statistics.median(v)
            print(f"{k:13s} {m:8.0f} ({min(v):.0f}-{max(v):.0f})  ratio {m / raw:.2f}")


if __name__ == "__main__":
    main()
