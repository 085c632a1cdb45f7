"""The six frame-level sub-models of Tang et al. 2018 (plus plain NetVLAD), at the paper's sizes.

Inputs {"frames": (B, T, 1152) float32, "num_frames": (B,) int32}, T free; output (B, 3862)
float32 probabilities. Padding frames are zeroed at the input and masked in every pooling.
Scales (models/configs.py says why): the frames, L2-normalised, are batch-normalised over the real
frames (`input_bn`, as the authors' code and WILLOW), the NetVLAD / Soft-BoF / NeXtVLAD assignment
logits too (`cluster_bn`), and the hidden layer starts with a pre-activation std of `hidden_init` on
its unit-norm input; frame-level batch norms exclude padding from their statistics (MaskedBatchNorm).
Where the paper is silent we follow WILLOW (hidden Dense -> BN -> ReLU6 -> context gating)
and the starter code (MoE: gate without bias, experts with bias).
Configurations (defaults, and why): models/configs.py; sizes against the paper's Table 1:
`python -m yt8m_kit.models`.
"""

import keras

from yt8m_kit import AUDIO_DIM, FEATURE_DIM, NUM_CLASSES, RGB_DIM
from yt8m_kit.layers import (BranchMixture, ContextGating, DebiasedBatchNorm, FeatureSlice, FlattenL2, FrameMasking, L2Normalize, Logistic,
                             MaskedBatchNorm, MaskedMeanFrames, MixtureOfExperts, NetVLAD, NeXtVLAD, NonLocalBlock,
                             SoftBoF, StackedGRU)


def frame_inputs():
    """The reader's frame-level keys as Keras inputs (T free)."""
    return {"frames": keras.Input((None, FEATURE_DIM), name="frames"),
            "num_frames": keras.Input((), dtype="int32", name="num_frames")}


def masked_frames(inputs, frame_l2, input_bn, dtype, center=True):
    """(frames with padding zeroed, mask (B, T)); with frame_l2 each frame's 1152-d vector is scaled
    to unit L2 norm first, as the starter code, WILLOW and the authors' code feed their models; with
    input_bn each of the 1152 features is then batch-normalised over the real frames (padding frames
    stay zero), with a learned shift unless center=False (a model that reads the frames only through
    projections with a bias or a batch norm after them, where a shift is redundant and gets no gradient)."""
    frames, mask = FrameMasking(dtype=dtype, name="frame_masking")([inputs["frames"], inputs["num_frames"]])
    if frame_l2:
        frames = L2Normalize(dtype=dtype, name="frame_l2")(frames)
    if input_bn:
        # epsilon 1e-5, not Keras' 1e-3: a unit-norm frame's features have a variance of ~1/1152 = 8.7e-4
        frames = MaskedBatchNorm(epsilon=1e-5, center=center, dtype=dtype, name="input_bn")([frames, mask])
    return frames, mask


def batch_norm(debiased, **kwargs):
    """A video-level batch norm: DebiasedBatchNorm (inference statistics corrected for their initial values)
    or, for runs saved before 2026-12-07, keras.layers.BatchNormalization."""
    return (DebiasedBatchNorm if debiased else keras.layers.BatchNormalization)(**kwargs)


def hidden_initializer(hidden_init, blocks):
    """The hidden Dense's kernel initializer: normal with std hidden_init / sqrt(blocks) on an input of
    `blocks` concatenated unit-norm vectors (pre-activation std hidden_init); None: Glorot uniform."""
    if hidden_init is None:
        return "glorot_uniform"
    return keras.initializers.RandomNormal(stddev=float(hidden_init) / blocks ** 0.5)


def classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank,
               hidden_batch_norm=True, hidden_init=None, blocks=1, debiased_bn=False):
    """Video-level vector (`blocks` unit-norm vectors) -> [Dense -> BN -> ReLU6] -> [context gating] -> MoE
    -> [video gating] -> float32 probabilities (B, 3862)."""
    if hidden_size:
        x = keras.layers.Dense(hidden_size, use_bias=not hidden_batch_norm, dtype=dtype, name="hidden",
                               kernel_initializer=hidden_initializer(hidden_init, blocks))(x)
        if hidden_batch_norm:
            x = batch_norm(debiased_bn, dtype=dtype, name="hidden_bn")(x)
        x = keras.layers.ReLU(max_value=6.0, dtype=dtype, name="hidden_relu6")(x)
    if hidden_gating:
        x = ContextGating(dtype=dtype, name="hidden_gating")(x)
    p = MixtureOfExperts(num_experts, dtype=dtype, name="moe")(x)
    if video_gating:
        p = ContextGating(rank=video_gating_rank, float32_io=True, dtype=dtype, name="video_gating")(p)
    return keras.layers.Activation("linear", dtype="float32", name="probabilities")(p)


def _vlad_branch(frames, mask, prefix, num_clusters, centred, non_local, non_local_dim, cluster_bn, dtype):
    v = NetVLAD(num_clusters, centred=centred, cluster_bn=cluster_bn, dtype=dtype, name=f"{prefix}_vlad")([frames, mask])
    if non_local:
        v = NonLocalBlock(non_local_dim, dtype=dtype, name=f"{prefix}_non_local")(v)  # (B, K, D)
    return FlattenL2(dtype=dtype, name=f"{prefix}_flatten_l2")(v)  # (B, K*D)


def _late_fusion(name, centred, non_local, num_clusters, audio_clusters, non_local_ratio, hidden_size, hidden_gating,
                 num_experts, video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn, hidden_init, dtype):
    inputs = frame_inputs()
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype)
    rgb = FeatureSlice(0, RGB_DIM, dtype=dtype, name="rgb")(frames)
    audio = FeatureSlice(RGB_DIM, FEATURE_DIM, dtype=dtype, name="audio")(frames)
    widths = [max(1, round(d * non_local_ratio)) for d in (RGB_DIM, AUDIO_DIM)]
    x = keras.layers.Concatenate(dtype=dtype, name="late_fusion")([
        _vlad_branch(rgb, mask, "rgb", num_clusters, centred, non_local, widths[0], cluster_bn, dtype),
        _vlad_branch(audio, mask, "audio", audio_clusters, centred, non_local, widths[1], cluster_bn, dtype)])
    out = classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank,
                     hidden_init=hidden_init, blocks=2, debiased_bn=debiased_bn)
    return keras.Model(inputs, out, name=name)


def lfnl_netvlad(*, name, num_clusters, audio_clusters, non_local_ratio, hidden_size, hidden_gating, num_experts,
                 video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn, hidden_init, dtype):
    """LFNL-NetVLAD (M1): rgb and audio each NetVLAD + non-local, concatenated, hidden, MoE 8.

    Paper silent on placement; non-local on intra-normalised descriptors, then global L2.
    """
    return _late_fusion(name, True, True, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn,
                        hidden_init, dtype)


def lfnl_netrvlad(*, name, num_clusters, audio_clusters, non_local_ratio, hidden_size, hidden_gating, num_experts,
                  video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn, hidden_init, dtype):
    """LFNL-NetRVLAD (M2): as lfnl_netvlad with NetRVLAD (no centres, eq. 7) and MoE 4."""
    return _late_fusion(name, False, True, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn,
                        hidden_init, dtype)


def netvlad(*, name, num_clusters, audio_clusters, non_local_ratio, hidden_size, hidden_gating, num_experts,
            video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn, hidden_init, dtype):
    """Vanilla late-fusion NetVLAD: lfnl_netvlad without the non-local blocks (paper: 0.8698 vs 0.8702)."""
    return _late_fusion(name, True, False, num_clusters, audio_clusters, non_local_ratio, hidden_size,
                        hidden_gating, num_experts, video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn,
                        hidden_init, dtype)


def efnl_netvlad(*, name, frame_gating, frame_gating_rank, num_clusters, non_local_ratio, hidden_size,
                 hidden_gating, num_experts, video_gating, video_gating_rank, frame_l2, input_bn, debiased_bn, cluster_bn, hidden_init,
                 dtype):
    """EFNL-NetVLAD (M3): 1152-d frames, frame-level context gating, non-local NetVLAD, MoE 2.

    Frame-level gating is per frame (padding stays zero); hidden layer as lfnl_netvlad.
    """
    inputs = frame_inputs()
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype)
    if frame_gating:
        frames = ContextGating(rank=frame_gating_rank, dtype=dtype, name="frame_gating")(frames)
    x = _vlad_branch(frames, mask, "frames", num_clusters, True, True,
                     max(1, round(FEATURE_DIM * non_local_ratio)), cluster_bn, dtype)
    out = classifier(x, dtype, hidden_size, hidden_gating, num_experts, video_gating, video_gating_rank,
                     hidden_init=hidden_init, blocks=1, debiased_bn=debiased_bn)
    return keras.Model(inputs, out, name=name)


def soft_bof(*, name, num_clusters, hidden_size, num_experts, frame_l2, input_bn, debiased_bn, cluster_bn, pooling, hidden_init,
             dtype):
    """Soft-BoF (M4, M5): rgb soft-assigned to K clusters and audio to K/8, each sum-pooled over the real
    frames and L2-normalised (the authors' code, WILLOW's SoftDBoF), concatenated -> hidden 1024 -> MoE 2.

    Paper: mean or max pooling. No context gating (size match). pooling "mean" (runs saved before
    2026-12-07): one assignment of the 1152-d frames to K clusters, mean-pooled -> BN -> hidden.
    """
    inputs = frame_inputs()
    # the frames enter only through the assignment logits (x W, then a bias or cluster_bn): no input shift
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype, center=False)
    if pooling == "mean":
        bof = SoftBoF(num_clusters, cluster_bn=cluster_bn, dtype=dtype, name="soft_bof")([frames, mask])  # sums to 1
        # no shift (center=False): the hidden layer's own batch norm removes any constant shift of its input
        bof = batch_norm(debiased_bn, center=hidden_size == 0, dtype=dtype, name="bof_bn")(bof)
        blocks = 1
    else:
        rgb = FeatureSlice(0, RGB_DIM, dtype=dtype, name="rgb")(frames)
        audio = FeatureSlice(RGB_DIM, FEATURE_DIM, dtype=dtype, name="audio")(frames)
        bof = keras.layers.Concatenate(dtype=dtype, name="bof")([
            SoftBoF(num_clusters, cluster_bn=cluster_bn, pooling=pooling, dtype=dtype, name="rgb_soft_bof")(
                [rgb, mask]),
            SoftBoF(max(1, num_clusters // 8), cluster_bn=cluster_bn, pooling=pooling, dtype=dtype,
                    name="audio_soft_bof")([audio, mask])])  # two unit-norm blocks
        blocks = 2
    out = classifier(bof, dtype, hidden_size, False, num_experts, False, None, hidden_init=hidden_init, blocks=blocks,
                     debiased_bn=debiased_bn)
    return keras.Model(inputs, out, name=name)


def gru(*, name, units, num_layers, num_experts, frame_l2, input_bn, debiased_bn, dtype):
    """GRU (M6): 2 stacked GRU x 1200 (section 3.2), final states of both layers -> MoE 2.

    Paper silent on the classifier input; MoE over the concatenated final states (2400-d)
    matches its 243 MiB (last state alone: 137 MiB). No hidden layer, no gating. Unit-norm frames in by
    default, as the authors' (input_bn off: with it the GRU learned slower, configs.GRU says by how much).
    """
    inputs = frame_inputs()
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype)
    states = StackedGRU(units, num_layers, dtype=dtype, name="gru")([frames, mask])
    out = classifier(states, dtype, 0, False, num_experts, False, None)
    return keras.Model(inputs, out, name=name)


def _nextvlad_hidden(frames, mask, prefix, num_clusters, groups, expansion, hidden_size, gating_reduction, gating_bn,
                     dropout, cluster_bn, debiased_bn, dtype):
    """NeXtVLAD per modality (audio: K/2 clusters, G/2 groups) -> BN -> dropout -> Dense -> BN -> SE gating
    (gating_bn: squeeze without bias -> BN -> ReLU, excite without bias, as the authors' code)."""
    rgb = FeatureSlice(0, RGB_DIM, dtype=dtype, name=f"{prefix}rgb")(frames)
    audio = FeatureSlice(RGB_DIM, FEATURE_DIM, dtype=dtype, name=f"{prefix}audio")(frames)
    v_rgb = NeXtVLAD(num_clusters, groups, expansion, cluster_bn=cluster_bn, dtype=dtype,
                     name=f"{prefix}rgb_nextvlad")([rgb, mask])
    v_audio = NeXtVLAD(max(1, num_clusters // 2), max(1, groups // 2), expansion, cluster_bn=cluster_bn, dtype=dtype,
                       name=f"{prefix}audio_nextvlad")([audio, mask])
    x = keras.layers.Concatenate(dtype=dtype, name=f"{prefix}fusion")([v_rgb, v_audio])
    x = batch_norm(debiased_bn, dtype=dtype, name=f"{prefix}fusion_bn")(x)
    x = keras.layers.Dropout(dropout, dtype=dtype, name=f"{prefix}fusion_dropout")(x)
    x = keras.layers.Dense(hidden_size, use_bias=False, dtype=dtype, name=f"{prefix}hidden")(x)
    x = batch_norm(debiased_bn, dtype=dtype, name=f"{prefix}hidden_bn")(x)
    width = max(1, hidden_size // gating_reduction)
    if gating_bn:
        squeeze = keras.layers.Dense(width, use_bias=False, dtype=dtype, name=f"{prefix}gating_squeeze")(x)
        squeeze = batch_norm(debiased_bn, dtype=dtype, name=f"{prefix}gating_bn")(squeeze)
        squeeze = keras.layers.Activation("relu", dtype=dtype, name=f"{prefix}gating_relu")(squeeze)
    else:
        squeeze = keras.layers.Dense(width, activation="relu", dtype=dtype, name=f"{prefix}gating_squeeze")(x)
    gate = keras.layers.Dense(hidden_size, activation="sigmoid", use_bias=not gating_bn, dtype=dtype,
                              name=f"{prefix}gating_excite")(squeeze)
    return keras.layers.Multiply(dtype=dtype, name=f"{prefix}gating")([x, gate])


def nextvlad(*, name, frame_l2, input_bn, debiased_bn, cluster_bn, num_clusters, groups, expansion, hidden_size, gating_reduction,
             gating_bn, dropout, output_bias, dtype):
    """Lin et al. 2018's NeXtVLAD model -> logistic head (float32 probabilities)."""
    inputs = frame_inputs()
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype)
    x = _nextvlad_hidden(frames, mask, "", num_clusters, groups, expansion, hidden_size, gating_reduction, gating_bn,
                         dropout, cluster_bn, debiased_bn, dtype)
    p = Logistic(bias_init=output_bias, dtype=dtype, name="logistic")(x)
    return keras.Model(inputs, keras.layers.Activation("linear", dtype="float32", name="probabilities")(p), name=name)


def mix_nextvlad(*, name, frame_l2, input_bn, debiased_bn, cluster_bn, branches, num_clusters, groups, expansion, hidden_size,
                 gating_reduction, gating_bn, dropout, output_bias, temperature, distill_weight, dtype):
    """Lin et al. 2018's mixture: `branches` NeXtVLAD models, their logits mixed by a gate on the batch-
    normalised mean of the real frames; trained with on-the-fly distillation (layers/mixture.py). The
    model's `training_loss(labels)` is the branches' part of the loss, which the trainer adds."""
    inputs = frame_inputs()
    frames, mask = masked_frames(inputs, frame_l2, input_bn, dtype)
    logits = []
    for b in range(branches):
        x = _nextvlad_hidden(frames, mask, f"branch{b}_", num_clusters, groups, expansion, hidden_size,
                             gating_reduction, gating_bn, dropout, cluster_bn, debiased_bn, dtype)
        logits.append(keras.layers.Dense(NUM_CLASSES, dtype=dtype, name=f"branch{b}_logits",
                                         bias_initializer=keras.initializers.Constant(output_bias))(x))
    mean = MaskedMeanFrames(dtype=dtype, name="frame_mean")([frames, inputs["num_frames"]])
    mean = batch_norm(debiased_bn, dtype=dtype, name="gate_bn")(mean)
    gate = keras.layers.Dense(branches, dtype=dtype, name="gate")(mean)
    mixture = BranchMixture(temperature, distill_weight, dtype=dtype, name="mixture")([gate, *logits])
    model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32", name="probabilities")(mixture),
                        name=name)
    model.training_loss = model.get_layer("mixture").training_loss  # read by train/loop.make_train_step
    return model


# The builder of each registered name (NAME_tiny uses NAME's); configurations: models/configs.py.
BUILDERS = {"lfnl_netvlad": lfnl_netvlad, "lfnl_netrvlad": lfnl_netrvlad, "netvlad": netvlad,
            "efnl_netvlad": efnl_netvlad, "soft_bof_4k": soft_bof, "soft_bof_8k": soft_bof, "gru": gru,
            "nextvlad": nextvlad, "mix_nextvlad": mix_nextvlad}
