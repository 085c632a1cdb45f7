"""Numerics shared by the layers (and the ensemble), each written once.

Numerically delicate steps (softmax, L2 norms) compute in float32 under bfloat16 and cast back,
as Keras' own normalisation layers do.
"""

from keras import ops


def l2_normalize(x, axis=-1, epsilon=1e-12):
    """x / max(||x||_2, sqrt(eps)) along `axis`, computed in float32, returned in x's dtype."""
    dtype = x.dtype
    x32 = ops.cast(x, "float32")
    norm_sq = ops.sum(ops.square(x32), axis=axis, keepdims=True)
    return ops.cast(x32 * ops.rsqrt(ops.maximum(norm_sq, epsilon)), dtype)


def softmax32(logits, axis=-1):
    """Softmax in float32, returned in the logits' dtype."""
    return ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=axis), logits.dtype)


def frame_mask(num_frames, max_frames, dtype="float32"):
    """(B,) real-frame counts -> (B, T) mask: 1 for frames i < num_frames, else 0."""
    positions = ops.arange(max_frames, dtype="int32")  # (T,)
    counts = ops.reshape(ops.cast(num_frames, "int32"), (-1, 1))  # (B, 1)
    return ops.cast(ops.less(ops.expand_dims(positions, 0), counts), dtype)  # (B, T)


def masked_mean(frames, num_frames):
    """(B, T, D) frames, (B,) counts -> (B, D) mean over each video's real frames only (a video
    with no frames gives zeros). The video-level features of a frame-level batch."""
    mask = ops.expand_dims(frame_mask(num_frames, ops.shape(frames)[1], frames.dtype), -1)  # (B, T, 1)
    count = ops.expand_dims(ops.maximum(ops.cast(num_frames, frames.dtype), 1.0), -1)  # (B, 1)
    return ops.sum(frames * mask, axis=1) / count
