"""Video-level models: input {"features": (B, 1152)} (mean rgb then mean audio), output (B, 3862).

`video` is the tuned video-level model. Configurations (defaults, and why): models/configs.py.
"""

import keras

from yt8m_kit import FEATURE_DIM, NUM_CLASSES, RGB_DIM
from yt8m_kit.layers import ContextGating, FeatureSlice, L2Normalize, Logistic, MixtureOfExperts

def video_inputs():
    return {"features": keras.Input((FEATURE_DIM,), name="features")}


def _head(x, dtype, output_bias):
    """Logistic head in float32 (layers.Logistic). The bias starts at the logit of the mean label
    rate (3 of 3862): from zero, logistic regression reached GAP 0.21 after an epoch."""
    return Logistic(NUM_CLASSES, bias_init=output_bias, dtype=dtype, name="logistic")(x)


def _finish(inputs, p, name):
    out = keras.layers.Activation("linear", dtype="float32", name="probabilities")(p)
    return keras.Model(inputs, out, name=name)


def video_logistic(*, name, output_bias, dtype):
    """Logistic regression: one Dense(3862, sigmoid) on the 1152 features (starter baseline)."""
    inputs = video_inputs()
    return _finish(inputs, _head(inputs["features"], dtype, output_bias), name)


def video_moe(*, name, num_experts, output_bias, dtype):
    """Starter MoeModel: mixture of 2 logistic experts (+ dummy) per class on the raw features; the
    experts' biases start at `output_bias` (the starter's 0 left every class at p = 1/3 for thousands of
    steps: GAP 0.44 after 12 epochs on the real 23k videos, 0.66 with the prior)."""
    inputs = video_inputs()
    p = MixtureOfExperts(num_experts, expert_bias=output_bias, dtype=dtype, name="moe")(inputs["features"])
    return _finish(inputs, p, name)


def video(*, name, normalise, input_dropout, hidden, batch_norm, dropout, context_gating, experts,
          video_gating, video_gating_rank, output_bias, dtype):
    """Tuned video-level model: [L2 per modality] -> hidden blocks -> [gating] -> MoE/logistic.

    Batch norm only on video-level vectors (all vectors are here).
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


BUILDERS = {"video_logistic": video_logistic, "video_moe": video_moe, "video": video}
