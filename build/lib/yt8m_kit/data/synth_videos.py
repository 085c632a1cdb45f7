"""What a generated video's frames are (yt8m_kit.synth's docstring says why): the classes' prototype
"visual words", video lengths, and the frames of a plain or a relational video, all drawn from the numpy
Generator given."""

import numpy as np

from yt8m_kit import FEATURE_DIM, RGB_DIM

WORDS_PER_CLASS = 3
# Scales chosen near the real video-level statistics (mean_rgb std ~0.26, mean_audio ~0.6).
RGB_OFFSET, RGB_NOISE, RGB_PROTO = 0.2, 0.45, 0.3
AUDIO_OFFSET, AUDIO_NOISE, AUDIO_PROTO = 0.4, 0.5, 0.6


def _background(rng, num_frames):
    """(num_frames, 1152) float32: per-frame noise around a per-video offset (draws in this order)."""
    x = rng.standard_normal((num_frames, FEATURE_DIM), dtype=np.float32)
    x[:, :RGB_DIM] *= RGB_NOISE
    x[:, RGB_DIM:] *= AUDIO_NOISE
    offset = rng.standard_normal(FEATURE_DIM, dtype=np.float32)
    offset[:RGB_DIM] *= RGB_OFFSET
    offset[RGB_DIM:] *= AUDIO_OFFSET
    return x + offset


def class_world(seed, class_ids):
    """Per-class prototypes (C, WORDS, 1152) float32; 20% of classes audio-only."""
    rng = np.random.default_rng([seed, 0])
    c = len(class_ids)
    protos = rng.standard_normal((c, WORDS_PER_CLASS, FEATURE_DIM), dtype=np.float32)
    protos[:, :, :RGB_DIM] *= RGB_PROTO
    protos[:, :, RGB_DIM:] *= AUDIO_PROTO
    audio_only = rng.random(c) < 0.2
    protos[audio_only, :, :RGB_DIM] = 0.0
    return protos, audio_only


def video_length(rng, max_frames, min_frames=None):
    if min_frames is not None:
        return int(rng.integers(min_frames, max_frames + 1))
    u = rng.random()
    if u < 0.10:
        n = rng.integers(1, 6)
    elif u < 0.15:
        n = rng.integers(250, 361)
    else:
        # Median 70 frames, scaled down for short max_frames so small fixtures still vary.
        n = int(round(rng.lognormal(np.log(min(70.0, max(6.0, max_frames / 4))), 0.6)))
        n = max(n, 6)
    return int(min(max(n, 1), max_frames))


def plain_video(rng, num_frames, label_pos, protos, distractor_pos):
    """(num_frames, 1152) float32 frame features for one video."""
    x = _background(rng, num_frames)
    segments = [(p, rng.uniform(0.2, 0.7)) for p in label_pos]
    if distractor_pos is not None:
        segments.append((distractor_pos, 0.05))
    for pos, fraction in segments:
        length = max(1, int(round(fraction * num_frames)))
        start = rng.integers(0, num_frames - length + 1)
        words = rng.integers(0, WORDS_PER_CLASS, size=length)
        x[start:start + length] += protos[pos, words]
    return x


def relational_world(seed, c):
    """Per-class pairs of parts (C, 2, WORDS, 1152) float32, rgb and audio."""
    rng = np.random.default_rng([seed, 7])
    parts = rng.standard_normal((c, 2, WORDS_PER_CLASS, FEATURE_DIM), dtype=np.float32)
    parts[..., :RGB_DIM] *= RGB_PROTO
    parts[..., RGB_DIM:] *= AUDIO_PROTO
    return parts


def relational_video(rng, num_frames, label_pos, parts, num_classes):
    """(num_frames, 1152) frames: both parts of each label, and Poisson(2) decoy parts of other classes."""
    x = _background(rng, num_frames)
    shown = [(p, k) for p in label_pos for k in (0, 1)]
    others = np.setdiff1d(np.arange(num_classes), label_pos)
    decoys = rng.choice(others, size=min(int(rng.poisson(2.0)), len(others)), replace=False)
    shown += [(int(d), int(rng.integers(0, 2))) for d in decoys]  # distinct classes, one part each: never a pair
    for pos, k in shown:
        length = max(1, int(round(rng.uniform(0.1, 0.35) * num_frames)))
        start = rng.integers(0, num_frames - length + 1)
        words = rng.integers(0, WORDS_PER_CLASS, size=length)
        x[start:start + length] += parts[pos, k, words]
    return x
