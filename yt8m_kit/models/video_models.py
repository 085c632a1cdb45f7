"""Video-level models: input {"features": (B, 1152)} (mean rgb then mean audio), output (B, 3862).

`video` is the tuned video-level model; its configuration lives in VIDEO_DEFAULTS (one place,
same keys as bench/video_search.py's Config so a winner's spec can be pasted in).
"""

import keras

from yt8m_kit import FEATURE_DIM, NUM_CLASSES, RGB_DIM
from yt8m_kit.layers import ContextGating, FeatureSlice, L2Normalize, MixtureOfExperts
from yt8m_kit.models.registry import register_model

# The `video` model's defaults. Provisional (hidden 1024 + context gating + MoE 2, as the
# starter/WILLOW); to be replaced by the winner of bench/video_search.py.
VIDEO_DEFAULTS = dict(
    normalise="l2",  # "none" | "l2" (each modality to unit L2 norm)
    input_dropout=0.0,
    hidden=(1024,),  # Dense sizes, each Dense -> [BN] -> ReLU -> [Dropout]
    batch_norm=True,  # BN after each hidden Dense and on the context-gate logits
    dropout=0.5,
    context_gating=True,  # after the last hidden block
    experts=2,  # 0: logistic head; E: MoE with E experts + dummy
    video_gating=False,  # context gating on the 3862 probabilities
    video_gating_rank=None,  # None: full 3862 x 3862
)


def video_inputs():
    return {"features": keras.Input((FEATURE_DIM,), name="features")}


def _sigmoid32(logits):
    """Sigmoid in float32: bfloat16 probabilities would tie often, and ties cost GAP."""
    return keras.layers.Activation("sigmoid", dtype="float32", name="sigmoid32")(logits)


def _finish(inputs, p, name):
    out = keras.layers.Activation("linear", dtype="float32", name="probabilities")(p)
    return keras.Model(inputs, out, name=name)


@register_model("video")
def video_logistic(*, name, dtype="float32"):
    """Logistic regression: one Dense(3862, sigmoid) on the 1152 features (starter baseline)."""
    inputs = video_inputs()
    logits = keras.layers.Dense(NUM_CLASSES, dtype=dtype, name="logistic")(inputs["features"])
    return _finish(inputs, _sigmoid32(logits), name)


@register_model("video")
def video_moe(*, name, num_experts=2, dtype="float32"):
    """Starter MoeModel: mixture of 2 logistic experts (+ dummy) per class on the raw features."""
    inputs = video_inputs()
    p = MixtureOfExperts(num_experts, dtype=dtype, name="moe")(inputs["features"])
    return _finish(inputs, p, name)


@register_model("video", defaults=VIDEO_DEFAULTS)
def video(*, name, normalise, input_dropout, hidden, batch_norm, dropout, context_gating, experts,
          video_gating, video_gating_rank, dtype="float32"):
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
        p = _sigmoid32(keras.layers.Dense(NUM_CLASSES, dtype=dtype, name="logistic")(x))
    if video_gating:
        p = ContextGating(rank=video_gating_rank, float32_io=True, dtype=dtype, name="video_gating")(p)
    return _finish(inputs, p, name)
