"""Stateless frame sampling: which frames a video gets depends only on (seed, video id, repeat index)."""

import tensorflow as tf


def _hash32(x):
    """A 32-bit integer mixer (int64 arithmetic stays below 2^63: inputs < 2^32, multiplier < 2^31)."""
    m, c = tf.constant(0xFFFFFFFF, tf.int64), tf.constant(0x45D9F3B, tf.int64)
    for _ in range(2):
        x = tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x) * c, m)
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)


def sample_base(ids, seed, repeat_index):
    """(B,) int64 in [0, 2^32): the hash of (id, seed, repeat) that sample_indices mixes per sample.
    (yt8m_kit/native/frames.cc's Yt8mSampleRows takes it from here and does the rest in C++.)"""
    repeat = tf.broadcast_to(tf.cast(repeat_index, tf.int64), tf.shape(ids))
    key = tf.strings.join([ids, tf.strings.as_string(tf.cast(seed, tf.int64)), tf.strings.as_string(repeat)], "\x1f")
    return tf.strings.to_hash_bucket_fast(key, 2**32)  # Fingerprint64, stable across platforms


def sample_indices(num_frames, ids, num_samples, seed, repeat_index):
    """(B, K) int32 frame indices, sorted, uniform with replacement in [0, num_frames)."""
    base = sample_base(ids, seed, repeat_index)
    k = tf.range(num_samples, dtype=tf.int64) * 0x9E3779B9
    x = _hash32(tf.bitwise.bitwise_and(base[:, None] + k[None, :], 0xFFFFFFFF))  # (B, K)
    u = tf.cast(x, tf.float64) / 2.0**32
    n = tf.cast(num_frames, tf.float64)[:, None]
    idx = tf.cast(tf.floor(u * n), tf.int32)
    idx = tf.clip_by_value(idx, 0, tf.maximum(tf.cast(num_frames, tf.int32) - 1, 0)[:, None])
    return tf.sort(idx, axis=1)


def sample_frames(frames, num_frames, ids, num_samples, seed, repeat_index):
    """Stateless frame sampling: frames (B,T,D), num_frames (B,), ids (B,) string -> ((B,K,D), (B,) = K).

    The chosen frames depend only on (seed, id, repeat_index); repeat_index is a scalar or (B,)
    so R test-time repeats can run as one batch of B*R rows. make_dataset(frames="sample")
    uses the same function with repeat_index = epoch.
    """
    idx = sample_indices(num_frames, ids, num_samples, seed, repeat_index)
    out = tf.gather(frames, idx, batch_dims=1)
    return out, tf.fill(tf.shape(num_frames), tf.constant(num_samples, tf.int32))


def sample_repeats(frames, num_frames, ids, num_samples, seed, repeats):
    """R sub-samples of every video as one batch: ((R*B, K, D), (R*B,) = K), repeat-major, equal to
    concatenating sample_frames(..., repeat_index=r) for r in range(R) but made by one gather from
    the flattened frames (the concat held the batch twice at its peak: 2 x 422 MiB at B=32, R=10)."""
    b, t = tf.shape(frames)[0], tf.shape(frames)[1]
    rep = tf.repeat(tf.range(repeats, dtype=tf.int32), b)
    idx = sample_indices(tf.tile(num_frames, [repeats]), tf.tile(ids, [repeats]), num_samples, seed, rep)
    rows = idx + (tf.tile(tf.range(b), [repeats]) * t)[:, None]
    out = tf.gather(tf.reshape(frames, [-1, tf.shape(frames)[2]]), rows)
    return out, tf.fill([repeats * b], tf.constant(num_samples, tf.int32))
