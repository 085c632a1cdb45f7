"""The six frame-level sub-models of Tang et al. 2018 (plus plain NetVLAD), at the paper's sizes.

Inputs {"frames": (B, T, 1152) float32, "num_frames": (B,) int32}, T free; output (B, 3862)
float32 probabilities. Padding frames are zeroed at the input and masked in every pooling.
Batch norm: only on video-level vectors (the hidden layer's pre-activation, the Soft-BoF
histogram), never on per-frame activations (where WILLOW had it), so padding cannot leak
through batch statistics; NetVLAD/Soft-BoF assignments use a bias instead.
Where the paper is silent we follow WILLOW (hidden Dense -> BN -> ReLU6 -> context gating)
and the starter code (MoE: gate without bias, experts with bias).
Sizes (MiB fp32 params, ours vs Table 1): lfnl_netvlad 598 vs 593, lfnl_netrvlad 477 vs 478,
efnl_netvlad 440 vs 427, soft_bof_4k 109.5 vs 109, soft_bof_8k 143.6 vs 143, gru 242 vs 243;
all six in bfloat16: 1005 MiB < 1 GiB (paper: 995).
"""

import keras

from yt8m_kit import AUDIO_DIM, FEATURE_DIM, RGB_DIM
from yt8m_kit.layers import (ContextGating, FeatureSlice, FlattenL2, FrameMasking,
                             MixtureOfExperts, NetVLAD, NonLocalBlock, SoftBoF, StackedGRU)
from yt8m_kit.models.registry import register_model, register_variant


# Which models train XLA-compiled (bench/RESULTS.md, 2-core machine, paper size, 300 frames):
# the NetVLAD family ~2x faster (batch 16: lfnl_netvlad 9.0 -> 18.3 examples/s, lfnl_netrvlad
# 10.1 -> 17.4, efnl_netvlad 10.0 -> 15.7); Soft-BoF ~1.13x (batch 64: soft_bof_4k 13.2 -> 14.9,
# soft_bof_8k 6.4 -> 7.3); GRU is slower compiled (batch 64: 3.07 -> 2.18), so it stays uncompiled.
XLA_TRAIN = {"xla": True}


def frame_inputs():
    """The reader's frame-level keys as Keras inputs (T free)."""
    return {"frames": keras.Input((None, FEATURE_DIM), name="frames"),
            "num_frames": keras.Input((), dtype="int32", name="num_frames")}


def classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank,
               hidden_batch_norm=True):
    """Video-level vector -> [Dense -> BN -> ReLU6] -> [context gating] -> MoE -> [video gating]
    -> float32 probabilities (B, 3862)."""
    if hidden_size:
        x = keras.layers.Dense(hidden_size, use_bias=not hidden_batch_norm, dtype=dtype, name="hidden")(x)
        if hidden_batch_norm:
            x = keras.layers.BatchNormalization(dtype=dtype, name="hidden_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, dtype=dtype, name="hidden_relu6")(x)
    if hidden_gating:
        x = ContextGating(dtype=dtype, name="hidden_gating")(x)
    p = MixtureOfExperts(num_experts, dtype=dtype, name="moe")(x)
    if video_gating:
        p = ContextGating(rank=video_gating_rank, float32_io=True, dtype=dtype, name="video_gating")(p)
    return keras.layers.Activation("linear", dtype="float32", name="probabilities")(p)


def _vlad_branch(frames, mask, prefix, num_clusters, centred, non_local, non_local_dim, dtype):
    v = NetVLAD(num_clusters, centred=centred, dtype=dtype, name=f"{prefix}_vlad")([frames, mask])
    if non_local:
        v = NonLocalBlock(non_local_dim, dtype=dtype, name=f"{prefix}_non_local")(v)  # (B, K, D)
    return FlattenL2(dtype=dtype, name=f"{prefix}_flatten_l2")(v)  # (B, K*D)


def _late_fusion(name, centred, non_local, num_clusters, audio_clusters, non_local_ratio,
                 hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank, dtype):
    inputs = frame_inputs()
    frames, mask = FrameMasking(dtype=dtype, name="frame_masking")([inputs["frames"], inputs["num_frames"]])
    rgb = FeatureSlice(0, RGB_DIM, dtype=dtype, name="rgb")(frames)
    audio = FeatureSlice(RGB_DIM, FEATURE_DIM, dtype=dtype, name="audio")(frames)
    widths = [max(1, round(d * non_local_ratio)) for d in (RGB_DIM, AUDIO_DIM)]
    x = keras.layers.Concatenate(dtype=dtype, name="late_fusion")([
        _vlad_branch(rgb, mask, "rgb", num_clusters, centred, non_local, widths[0], dtype),
        _vlad_branch(audio, mask, "audio", audio_clusters, centred, non_local, widths[1], dtype)])
    out = classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank)
    return keras.Model(inputs, out, name=name)


@register_model("frame", paper_mib=593, train=XLA_TRAIN)
def lfnl_netvlad(*, name, num_clusters=64, audio_clusters=32, non_local_ratio=0.5, hidden_size=1024,
                 hidden_gating=True, num_experts=8, video_gating=True, video_gating_rank=None,
                 dtype="float32"):
    """LFNL-NetVLAD (M1): rgb and audio each NetVLAD + non-local, concatenated, hidden, MoE 8.

    Paper silent on audio clusters; WILLOW uses cluster_size/2 = 32 (69632-d fusion).
    Paper silent on the non-local width; the non-local paper's D/2 (full D: +2.1M params).
    Paper silent on placement; non-local on intra-normalised descriptors, then global L2.
    Paper silent on the hidden layer; WILLOW: Dense 1024 -> BN -> ReLU6 -> context gating.
    """
    return _late_fusion(name, True, True, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, dtype)


@register_model("frame", paper_mib=478, train=XLA_TRAIN)
def lfnl_netrvlad(*, name, num_clusters=64, audio_clusters=32, non_local_ratio=0.5, hidden_size=1024,
                  hidden_gating=True, num_experts=4, video_gating=True, video_gating_rank=None,
                  dtype="float32"):
    """LFNL-NetRVLAD (M2): as lfnl_netvlad with NetRVLAD (no centres, eq. 7) and MoE 4."""
    return _late_fusion(name, False, True, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, dtype)


@register_model("frame", train=XLA_TRAIN)
def netvlad(*, name, num_clusters=64, audio_clusters=32, non_local_ratio=0.5, hidden_size=1024,
            hidden_gating=True, num_experts=8, video_gating=True, video_gating_rank=None,
            dtype="float32"):
    """Vanilla late-fusion NetVLAD: lfnl_netvlad without the non-local blocks (paper: 0.8698 vs 0.8702)."""
    return _late_fusion(name, True, False, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, dtype)


@register_model("frame", paper_mib=427, train=XLA_TRAIN)
def efnl_netvlad(*, name, frame_gating=True, frame_gating_rank=None, num_clusters=64,
                 non_local_ratio=0.5, hidden_size=1024, hidden_gating=True, num_experts=2,
                 video_gating=True, video_gating_rank=None, dtype="float32"):
    """EFNL-NetVLAD (M3): 1152-d frames, frame-level context gating, non-local NetVLAD, MoE 2.

    Paper silent on the non-local width; D/2 = 576 as in the non-local paper.
    Frame-level gating is per frame (padding stays zero); hidden layer as lfnl_netvlad.
    """
    inputs = frame_inputs()
    frames, mask = FrameMasking(dtype=dtype, name="frame_masking")([inputs["frames"], inputs["num_frames"]])
    if frame_gating:
        frames = ContextGating(rank=frame_gating_rank, dtype=dtype, name="frame_gating")(frames)
    x = _vlad_branch(frames, mask, "frames", num_clusters, True, True,
                     max(1, round(FEATURE_DIM * non_local_ratio)), dtype)
    out = classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank)
    return keras.Model(inputs, out, name=name)


def _soft_bof(name, num_clusters, hidden_size, num_experts, dtype):
    inputs = frame_inputs()
    frames, mask = FrameMasking(dtype=dtype, name="frame_masking")([inputs["frames"], inputs["num_frames"]])
    bof = SoftBoF(num_clusters, dtype=dtype, name="soft_bof")([frames, mask])  # (B, K), sums to 1
    # Video-level BN rescales the 1/K-sized histogram; no shift (center=False): the hidden layer's own
    # batch norm removes any constant shift of its input, so a beta here would get no gradient.
    bof = keras.layers.BatchNormalization(center=hidden_size == 0, dtype=dtype, name="bof_bn")(bof)
    out = classifier(bof, dtype, hidden_size, False, num_experts, False, None)
    return keras.Model(inputs, out, name=name)


@register_model("frame", paper_mib=109, train=XLA_TRAIN)
def soft_bof_4k(*, name, num_clusters=4096, hidden_size=1024, num_experts=2, dtype="float32"):
    """Soft-BoF-4K (M4): mean soft assignment to 4096 clusters -> BN -> hidden 1024 -> MoE 2.

    Paper: mean or max pooling; we mean-pool over real frames. No context gating (size match).
    """
    return _soft_bof(name, num_clusters, hidden_size, num_experts, dtype)


@register_model("frame", paper_mib=143, train=XLA_TRAIN)
def soft_bof_8k(*, name, num_clusters=8192, hidden_size=1024, num_experts=2, dtype="float32"):
    """Soft-BoF-8K (M5): as soft_bof_4k with 8192 clusters."""
    return _soft_bof(name, num_clusters, hidden_size, num_experts, dtype)


@register_model("frame", paper_mib=243)
def gru(*, name, units=1200, num_layers=2, num_experts=2, dtype="float32"):
    """GRU (M6): 2 stacked GRU x 1200 (section 3.2), final states of both layers -> MoE 2.

    Paper silent on the classifier input; MoE over the concatenated final states (2400-d)
    matches its 243 MiB (last state alone: 137 MiB). No hidden layer, no gating.
    """
    inputs = frame_inputs()
    frames, mask = FrameMasking(dtype=dtype, name="frame_masking")([inputs["frames"], inputs["num_frames"]])
    states = StackedGRU(units, num_layers, dtype=dtype, name="gru")([frames, mask])
    out = classifier(states, dtype, 0, False, num_experts, False, None)
    return keras.Model(inputs, out, name=name)


# Tiny variants: same architecture, well under 1M parameters, for tests and the demo. What
# shrinks: clusters 64/32 -> 8/4, non-local width D/2 -> D/64, hidden 1024 -> 16, experts
# -> 2, full-rank gating (1024^2, 1152^2, 3862^2) -> rank 8/16, Soft-BoF 4K/8K -> 32/64,
# GRU 2 x 1200 -> 2 x 16. The MoE on 3862 classes dominates what is left.
_TINY_VLAD = dict(num_clusters=8, non_local_ratio=1 / 64, hidden_size=16, num_experts=2,
                  video_gating_rank=8)
TINY = {
    "lfnl_netvlad": dict(_TINY_VLAD, audio_clusters=4),
    "lfnl_netrvlad": dict(_TINY_VLAD, audio_clusters=4),
    "netvlad": dict(_TINY_VLAD, audio_clusters=4),
    "efnl_netvlad": dict(_TINY_VLAD, frame_gating_rank=16),
    "soft_bof_4k": dict(num_clusters=32, hidden_size=16),
    "soft_bof_8k": dict(num_clusters=64, hidden_size=16),
    "gru": dict(units=16),
}
# Tiny models learn fast at a higher rate than the paper's 2e-4 (measured on the demo's data:
# 300 steps at batch 32: gru_tiny GAP 0.25 at 2e-3 vs 0.43 at 1e-2; soft_bof_4k_tiny 0.54 at 1e-2).
TINY_LR = {"lfnl_netvlad": 5e-3, "lfnl_netrvlad": 5e-3, "netvlad": 5e-3, "efnl_netvlad": 5e-3,
           "soft_bof_4k": 1e-2, "soft_bof_8k": 1e-2, "gru": 1e-2}
for _base, _changes in TINY.items():
    register_variant(f"{_base}_tiny", _base, f"Tiny {_base} (same architecture): {_changes}",
                     train={"lr": TINY_LR[_base], "xla": False}, **_changes)  # compiling costs more than it saves
