"""Video-level models: input {"features": (B, 1152)} (mean rgb then mean audio), output (B, 3862).

`video` is the tuned video-level model; its configuration lives in VIDEO_DEFAULTS (one place,
same keys as bench/video_search.py's Config so a winner's spec can be pasted in).
"""

import keras

from yt8m_kit import FEATURE_DIM, NUM_CLASSES, RGB_DIM
from yt8m_kit.layers import ContextGating, FeatureSlice, L2Normalize, Logistic, MixtureOfExperts
from yt8m_kit.models.registry import register_model

OUTPUT_BIAS = -7.16  # logit(3 / 3862): about 3 labels per video among 3862 classes

# The `video` model: the winner of bench/video_search.py on the real 2018 video-level data
# (bench/VIDEO_SEARCH.md: held-out GAP 0.7034 vs 0.6620 for tuned logistic regression).
# At ~29k videos, training steps mattered most; context gating and MoE learned more slowly.
VIDEO_DEFAULTS = dict(
    normalise="l2",  # "none" | "l2" (each modality to unit L2 norm, no weights)
    input_dropout=0.0,
    hidden=(1024,),  # Dense sizes, each Dense -> [BN] -> ReLU -> [Dropout]
    batch_norm=True,  # BN after each hidden Dense and on the context-gate logits
    dropout=0.5,
    context_gating=False,  # after the last hidden block
    experts=0,  # 0: logistic head; E: MoE with E experts + dummy
    video_gating=False,  # context gating on the 3862 probabilities
    video_gating_rank=None,  # None: full 3862 x 3862
    output_bias=OUTPUT_BIAS,
)
# Trainer settings it was tuned with (bench/VIDEO_SEARCH.md): `python -m yt8m_kit.train --model
# video --train ... --out ...` uses them unless told otherwise. Decay x0.85 about every epoch of
# the ~29k real videos; no clipping in the search (a huge norm keeps the trainer's clip inert).
VIDEO_TRAIN = dict(batch_size=256, epochs=12, lr=1e-3, lr_decay=0.85, lr_decay_examples=25_000, clip_norm=1e6)


def video_inputs():
    return {"features": keras.Input((FEATURE_DIM,), name="features")}


def _head(x, dtype, output_bias):
    """Logistic head in float32 (layers.Logistic). The bias starts at the logit of the mean label
    rate (3 of 3862): from zero, logistic regression reached GAP 0.21 after an epoch."""
    return Logistic(NUM_CLASSES, bias_init=output_bias, dtype=dtype, name="logistic")(x)


def _finish(inputs, p, name):
    out = keras.layers.Activation("linear", dtype="float32", name="probabilities")(p)
    return keras.Model(inputs, out, name=name)


@register_model("video", train=dict(VIDEO_TRAIN, epochs=8, lr=3e-3, lr_decay=0.8))
def video_logistic(*, name, output_bias=OUTPUT_BIAS, dtype="float32"):
    """Logistic regression: one Dense(3862, sigmoid) on the 1152 features (starter baseline).

    Trainer defaults: the best of the baseline settings tried in bench/VIDEO_SEARCH.md."""
    inputs = video_inputs()
    return _finish(inputs, _head(inputs["features"], dtype, output_bias), name)


@register_model("video")
def video_moe(*, name, num_experts=2, dtype="float32"):
    """Starter MoeModel: mixture of 2 logistic experts (+ dummy) per class on the raw features."""
    inputs = video_inputs()
    p = MixtureOfExperts(num_experts, dtype=dtype, name="moe")(inputs["features"])
    return _finish(inputs, p, name)


@register_model("video", defaults=VIDEO_DEFAULTS, train=VIDEO_TRAIN)
def video(*, name, normalise, input_dropout, hidden, batch_norm, dropout, context_gating, experts,
          video_gating, video_gating_rank, output_bias, dtype="float32"):
    """Tuned video-level model: [L2 per modality] -> hidden blocks -> [gating] -> MoE/logistic.

    Defaults in VIDEO_DEFAULTS. Batch norm only on video-level vectors (all vectors are here).
    """
    if normalise not in ("none", "l2"):
        raise ValueError(f"normalise ({normalise!r}) must be 'none' or 'l2'")
    inputs = video_inputs()
    x = inputs["features"]
    if normalise == "l2":
        rgb = L2Normalize(dtype=dtype, name="rgb_l2")(FeatureSlice(0, RGB_DIM, dtype=dtype, name="rgb")(x))
        audio = L2Normalize(dtype=dtype, name="audio_l2")(
            FeatureSlice(RGB_DIM, FEATURE_DIM, dtype=dtype, name="audio")(x))
        x = keras.layers.Concatenate(dtype=dtype, name="normalised")([rgb, audio])
    if input_dropout:
        x = keras.layers.Dropout(input_dropout, dtype=dtype, name="input_dropout")(x)
    for i, size in enumerate(hidden):
        x = keras.layers.Dense(int(size), use_bias=not batch_norm, dtype=dtype, name=f"hidden{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(dtype=dtype, name=f"hidden{i}_bn")(x)
        x = keras.layers.ReLU(dtype=dtype, name=f"hidden{i}_relu")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, dtype=dtype, name=f"hidden{i}_dropout")(x)
    if context_gating:
        x = ContextGating(batch_norm=batch_norm, dtype=dtype, name="context_gating")(x)
    if experts:
        p = MixtureOfExperts(experts, dtype=dtype, name="moe")(x)
    else:
        p = _head(x, dtype, output_bias)
    if video_gating:
        p = ContextGating(rank=video_gating_rank, float32_io=True, dtype=dtype, name="video_gating")(p)
    return _finish(inputs, p, name)
