"""Parsing, checking and decoding a batch of serialized YouTube-8M records (yt8m_kit.data.dataset's core).

parse_batch parses a (B,) batch of records with tf's parser and checks each record in the graph
(id, frame counts, byte lengths, label range): per record, the reason and value of the first
failed check, or "". finish_batch turns parsed parts into the README "Reader batches" dict,
decoding and dequantising only the frames it keeps.
"""

import numpy as np
import tensorflow as tf

from yt8m_kit import AUDIO_DIM, MAX_FRAMES, RGB_DIM
from yt8m_kit.data import quantization as features
from yt8m_kit.data.sampling import sample_base, sample_indices

_MIN = float(np.float32(features.OFFSET))


def dequantize(q):
    """uint8 (numpy or tf) -> float32: q*4/255 - 2 + 4/512 (yt8m_kit.data.quantization).

    Tensors go through tf's one-pass dequantize op (MIN_COMBINED: min + q*(max-min)/255), the same
    float32 values as the three-op cast*scale+offset (tests compare with the numpy formula bit for bit).
    """
    if tf.is_tensor(q):
        return tf.quantization.dequantize(tf.bitcast(q, tf.quint8), _MIN, _MIN + 4.0, mode="MIN_COMBINED")
    return features.dequantize(q)


def _ragged_bad(ragged_strings, expected):
    """Per row, the first byte length that is not `expected`, or -1."""
    lengths = tf.ragged.map_flat_values(tf.strings.length, ragged_strings)
    bad = tf.ragged.map_flat_values(lambda n: tf.where(n != expected, n, -1), lengths)
    return tf.maximum(tf.reduce_max(bad, axis=1), -1)


def _first(conds_reasons_values, batch):
    """Per row, the reason/value of the first failing check (empty reason when all pass)."""
    reason, value = tf.fill([batch], ""), tf.fill([batch], "")
    for cond, text, val in reversed(conds_reasons_values):
        reason = tf.where(cond, text, reason)
        value = tf.where(cond, tf.strings.as_string(val) if val.dtype != tf.string else val, value)
    return reason, value


class Checks:
    """Per-record checks of a parsed batch: .bad (B,) bool; .first() -> (index, reason, value) of the
    first bad record (scalars, a few small ops, no strings per record); .explain() -> (reason, value)
    (B,) strings, each record's first failed check ("" when none), to build only when something is
    bad (in a branch). Check values are integers."""

    def __init__(self, checks, batch):
        self._checks, self._batch = checks, batch
        self.bad = tf.zeros([batch], tf.bool)
        for cond, _, _ in checks:
            self.bad = self.bad | cond

    def explain(self):
        return _first(self._checks, self._batch)

    def first(self):
        b = tf.argmax(tf.cast(self.bad, tf.int32), output_type=tf.int32)
        conds = tf.stack([tf.gather(c, b) for c, _, _ in self._checks])
        which = tf.argmax(tf.cast(conds, tf.int32), output_type=tf.int32)
        values = tf.stack([tf.cast(tf.gather(v, b), tf.int64) for _, _, v in self._checks])
        texts = tf.constant([t for _, t, _ in self._checks])
        return b, tf.gather(texts, which), tf.strings.as_string(tf.gather(values, which))

    @staticmethod
    def explained(reason, value):
        """Checks whose reasons are already computed (parse_batch's)."""
        return _Explained(reason, value)


class _Explained(Checks):
    def __init__(self, reason, value):  # noqa: super().__init__ not called: nothing to combine
        self.bad, self._reason, self._value = reason != "", reason, value

    def explain(self):
        return self._reason, self._value

    def first(self):
        b = tf.argmax(tf.cast(self.bad, tf.int32), output_type=tf.int32)
        return b, tf.gather(self._reason, b), tf.gather(self._value, b)


def _one_per_frame(rt):
    """(B, T, values) ragged bytes -> (B, T) ragged: one string per frame (several are joined, so
    their length flags the frame as bad; none gives "", length 0)."""
    per_frame = rt.values  # (frames, values)
    flat = tf.cond(tf.reduce_all(per_frame.row_lengths() == 1), lambda: per_frame.flat_values,
                   lambda: tf.strings.reduce_join(per_frame, axis=1))
    return tf.RaggedTensor.from_row_splits(flat, rt.row_splits, validate=False)


def _context(c, info, B, *, require_labels):
    """id (B,), multi-hot labels (B, C) and the id/label checks of parsed context features c."""
    ids, labels = c[info.id_key], c["labels"]
    n_ids = ids.row_lengths()
    vid = tf.where(n_ids > 0, ids.to_tensor("", shape=[None, 1])[:, 0], "")
    out_of_range = tf.ragged.map_flat_values(lambda v: (v < 0) | (v >= info.num_classes), labels)
    # A flag apart from the value (-1 is a bad label too); the value reported is the record's largest bad one.
    bad_label = tf.reduce_max(tf.ragged.map_flat_values(
        lambda v: tf.where((v < 0) | (v >= info.num_classes), v, tf.int64.min), labels), axis=1)
    # One rule for every command: an id must be valid UTF-8 and usable as a Kaggle CSV field (not empty,
    # no comma, quote or line break); otherwise the record is bad (refused, or left out by --skip-bad).
    id_bytes = tf.strings.length(vid)
    utf8 = tf.equal(tf.strings.unicode_transcode(vid, "UTF-8", "UTF-8", errors="replace",
                                                 replacement_char=0xFFFD), vid)
    csv_safe = tf.strings.regex_full_match(vid, '[^,"\r\n]+')
    head = [(n_ids != 1, f"has this many values under key '{info.id_key}' (expected 1; a 2017 file? "
             "see allow_2017)", n_ids),
            (~utf8, "video id is not valid UTF-8; its length in bytes", id_bytes),
            (~csv_safe, "video id is empty or holds a comma, quote or line break, so it cannot be a Kaggle CSV "
             "field; its length in bytes", id_bytes)]
    tail = [(tf.reduce_any(out_of_range, axis=1), f"label out of range 0..{info.num_classes - 1}", bad_label)]
    if require_labels:
        tail.append((labels.row_lengths() == 0, "has no labels in a labelled set (require_labels=False "
                     "for test data)", labels.row_lengths()))
    valid = (labels.flat_values >= 0) & (labels.flat_values < info.num_classes)
    idx = tf.stack([tf.cast(labels.value_rowids(), tf.int64), tf.clip_by_value(labels.flat_values, 0, info.num_classes - 1)], 1)
    multi_hot = tf.scatter_nd(idx, tf.cast(valid, tf.float32), tf.stack([tf.cast(B, tf.int64), info.num_classes]))
    return vid, tf.minimum(multi_hot, 1.0), head, tail


def _context_spec(info):
    return {info.id_key: tf.io.RaggedFeature(tf.string), "labels": tf.io.RaggedFeature(tf.int64)}


def parse_batch(serialized, info, *, require_labels):
    """Parse a batch of serialized records: (parts dict, reason (B,), value (B,))."""
    B = tf.shape(serialized)[0]
    ctx = _context_spec(info)
    if info.level == "frame":
        seq = {"rgb": tf.io.RaggedFeature(tf.string), "audio": tf.io.RaggedFeature(tf.string)}
        c, s, _ = tf.io.parse_sequence_example(serialized, context_features=ctx, sequence_features=seq)
        parts = {"rgb": _one_per_frame(s["rgb"]), "audio": _one_per_frame(s["audio"])}
    else:
        feats = dict(ctx, mean_rgb=tf.io.RaggedFeature(tf.float32), mean_audio=tf.io.RaggedFeature(tf.float32))
        c = tf.io.parse_example(serialized, feats)
        parts = {"mean_rgb": c["mean_rgb"], "mean_audio": c["mean_audio"]}
    parts["id"], parts["labels"], checks, tail = _context(c, info, B, require_labels=require_labels)
    if info.level == "frame":
        n_rgb, n_audio = parts["rgb"].row_lengths(), parts["audio"].row_lengths()
        checks += [(n_rgb == 0, "frame-level video has 0 frames", n_rgb),
                   (n_rgb != n_audio, "rgb and audio frame counts differ; audio frames", n_audio)]
        bad_rgb, bad_audio = _ragged_bad(parts["rgb"], RGB_DIM), _ragged_bad(parts["audio"], AUDIO_DIM)
        checks += [(bad_rgb >= 0, f"rgb frame has the wrong byte length (expected {RGB_DIM})", bad_rgb),
                   (bad_audio >= 0, f"audio frame has the wrong byte length (expected {AUDIO_DIM})", bad_audio)]
    else:
        for key, dim in (("mean_rgb", RGB_DIM), ("mean_audio", AUDIO_DIM)):
            n = parts[key].row_lengths()
            checks.append((n != dim, f"{key} has the wrong number of floats (expected {dim})", n))
    reason, value = _first(checks + tail, B)
    return parts, reason, value


def parse_native(ops, serialized, layout, info, *, require_labels):
    """parse_batch for frame-level records whose frames have the regular layout (ops.yt8m_frame_layout
    said so for every record): only the context goes through tf's parser (as an Example: the same
    field number), the frame checks hold by construction. (parts, Checks); parts: id, labels,
    serialized, offsets, frames."""
    B = tf.shape(serialized)[0]
    c = tf.io.parse_example(serialized, _context_spec(info))
    vid, labels, head, tail = _context(c, info, B, require_labels=require_labels)
    offsets, frames, _ = layout
    parts = {"id": vid, "labels": labels, "serialized": serialized, "offsets": offsets, "frames": frames}
    return parts, Checks(head + tail, B)


def decode_frames(rgb, audio):
    """Raw rgb/audio frame strings (any shape S) -> (S..., 1152) uint8, rgb then audio."""
    return tf.concat([tf.io.decode_raw(rgb, tf.uint8, fixed_length=RGB_DIM),
                      tf.io.decode_raw(audio, tf.uint8, fixed_length=AUDIO_DIM)], axis=-1)


def gather_frames(flat_rgb, flat_audio, rows, quantized=False):
    """Frames at flat indices rows (B, K) -> (B, K, 1152) float32, or uint8 as stored when quantized.
    Decodes and dequantises each real frame once, then gathers float rows, when there are fewer real
    frames than samples (short videos, many samples: dequantising is the costly part); else gathers
    the K strings per video first (long videos, few samples). The same values either way."""
    if quantized:
        return decode_frames(tf.gather(flat_rgb, rows), tf.gather(flat_audio, rows))

    def decode_then_gather():
        return tf.gather(dequantize(decode_frames(flat_rgb, flat_audio)), rows)

    def gather_then_decode():
        return dequantize(decode_frames(tf.gather(flat_rgb, rows), tf.gather(flat_audio, rows)))

    return tf.cond(tf.size(flat_rgb) <= tf.size(rows), decode_then_gather, gather_then_decode)


def dequantize_table():
    """(256,) float32: dequantize(q) for every byte q (native gathers look values up here)."""
    return dequantize(np.arange(256, dtype=np.uint8))


def finish_native(ops, parts, epoch, *, frames, num_samples, seed, pad_to_max, quantized=False):
    """finish_batch for parse_native's parts: the native ops copy the chosen frames into the batch."""
    n = tf.cast(tf.minimum(parts["frames"], MAX_FRAMES), tf.int32)
    if frames == "sample":
        rows = ops.yt8m_sample_rows(sample_base(parts["id"], seed, epoch), n, num_samples=num_samples)
        num_frames = tf.fill(tf.shape(n), tf.constant(num_samples, tf.int32))
    else:
        T = MAX_FRAMES if pad_to_max else tf.reduce_max(tf.concat([n, [0]], 0))
        t = tf.range(T, dtype=tf.int32)[None, :]
        rows, num_frames = tf.where(t < n[:, None], t, -1), n
    x = ops.yt8m_gather_frames(parts["serialized"], parts["offsets"], parts["frames"], rows,
                               tf.constant(dequantize_table()), T=tf.uint8 if quantized else tf.float32)
    return {"id": parts["id"], "frames": x, "num_frames": num_frames, "labels": parts["labels"]}


def finish_batch(parts, info, epoch, *, frames, num_samples, seed, pad_to_max, quantized=False):
    """Dense batch dict of the README contract from parsed parts (frames uint8 when quantized)."""
    if info.level == "video":
        feats = tf.concat([parts["mean_rgb"].to_tensor(shape=[None, RGB_DIM]),
                           parts["mean_audio"].to_tensor(shape=[None, AUDIO_DIM])], axis=1)
        return {"id": parts["id"], "features": feats, "labels": parts["labels"]}
    # Decode only real frames (flat (N,) strings), never the padding: ~3x less work than dense decoding.
    rgb, audio = parts["rgb"], parts["audio"]
    if frames == "sample":  # index the flat strings directly: no copy of the (B, <=300) ragged slice
        num_frames = tf.cast(tf.minimum(rgb.row_lengths(), MAX_FRAMES), tf.int32)
        idx = sample_indices(num_frames, parts["id"], num_samples, seed, epoch)  # (B, K)
        rows = tf.cast(rgb.row_starts(), tf.int32)[:, None] + idx
        x = gather_frames(rgb.values, audio.values, rows, quantized)  # (B, K, 1152)
        num_frames = tf.fill(tf.shape(num_frames), tf.constant(num_samples, tf.int32))
    else:
        rgb, audio = rgb[:, :MAX_FRAMES], audio[:, :MAX_FRAMES]
        num_frames = tf.cast(rgb.row_lengths(), tf.int32)
        x = tf.RaggedTensor.from_row_splits(dequantize(decode_frames(rgb.values, audio.values)), rgb.row_splits,
                                            validate=False)
        x = x.to_tensor(0.0, shape=[None, MAX_FRAMES, None] if pad_to_max else None)  # (B, T, 1152), zero padded
    return {"id": parts["id"], "frames": x, "num_frames": num_frames, "labels": parts["labels"]}
