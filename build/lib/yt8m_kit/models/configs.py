"""Every registered model's configuration as data, in one place: its architecture (a dataclass per
family of models, defaults here and nowhere else) and the trainer settings it was tuned with.

    python -m yt8m_kit.models --configs      # prints all of them, without building anything

A model is built by `create_model(name, **overrides)`: the overrides replace fields of its
architecture dataclass (an unknown field is refused). Trainer settings apply where the command
line says nothing (`python -m yt8m_kit.train`); None leaves the trainer's own default
(yt8m_kit.train.config.TrainConfig: batch 64, Adam 2e-4, x0.8 every 4M examples, clip 1.0).
Where the paper (Tang et al. 2018) is silent we follow WILLOW (Miech et al.) and the starter code;
each such choice says so below.
"""

import dataclasses
from typing import Optional

OUTPUT_BIAS = -7.16  # logit(3 / 3862): about 3 labels per video among 3862 classes


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Trainer settings a model carries (TrainConfig keys); None: the trainer's default."""

    lr: Optional[float] = None
    batch_size: Optional[int] = None
    epochs: Optional[float] = None
    steps: Optional[int] = None
    lr_decay: Optional[float] = None
    lr_decay_examples: Optional[int] = None
    clip_norm: Optional[float] = None
    # XLA-compile the training step: faster at paper size for the NetVLAD family and Soft-BoF, slower
    # for GRU; tiny models compile for longer than they train (bench/README.md, "figures").
    xla: Optional[bool] = None  # None: off

    def as_dict(self):
        """The settings that are set (None dropped)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class FrameModel:
    """What every frame-level model has."""

    frame_l2: bool = True  # each frame's 1152-d vector to unit L2 norm first, as the reference code does
    # Then each of the 1152 features batch-normalised over the real frames of the batch (padding excluded),
    # as the authors' `input_bn` and WILLOW's. Why: a unit-norm frame's values are ~0.03, so every layer
    # initialised for unit-variance inputs started ~30x too small (at init the hidden layer's batch norm saw a
    # variance ~1e-5, under its epsilon 1e-3, and the soft assignments were uniform to 1e-4; the GRU's gates
    # barely moved). With it: every batch norm's output std ~1 at init (../shared/checks/init_scales.py).
    input_bn: bool = True
    # Every batch norm's inference statistics corrected for their initial values 0 and 1 (layers/batch_norm.py):
    # with inputs of variance ~1e-3, Keras' moving variance still weighed its initial 1 for the first ~500
    # steps, and inference-mode validation early in a run scored near 0. False: keras' BatchNormalization,
    # what runs saved before 2026-12-07 used (the frame-level input_bn / cluster_bn are always debiased).
    debiased_bn: bool = True
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class VLADClassifier(FrameModel):
    """The classifier the NetVLAD family shares: hidden Dense -> BN -> ReLU6 -> [context gating] ->
    MoE -> [video-level context gating]."""

    hidden_size: int = 1024  # paper silent; WILLOW: Dense 1024 -> BN -> ReLU6 -> context gating
    # The hidden Dense's kernel: normal with the std that gives its pre-activation a std of hidden_init on
    # its input, concatenated unit-norm vectors (std hidden_init / sqrt(number of vectors)). 0.2: a batch
    # variance 40x the batch norm's epsilon (output std ~0.99), and close to the authors' 1/sqrt(K) = 0.125
    # for K = 64 (ours 0.141 on the two late-fusion blocks). None: Glorot uniform, what runs saved before
    # 2026-12-07 were built with (std ~0.005 on a 69,632-d input: a pre-activation variance ~1e-5).
    hidden_init: Optional[float] = 0.2
    hidden_gating: bool = True
    num_experts: int = 8
    video_gating: bool = True
    video_gating_rank: Optional[int] = None  # None: full rank (3862 x 3862)


@dataclasses.dataclass(frozen=True)
class LateFusionVLAD(VLADClassifier):
    """lfnl_netvlad, lfnl_netrvlad, netvlad: rgb and audio each pooled by NetVLAD (+ non-local
    block), concatenated, then the classifier."""

    num_clusters: int = 64
    audio_clusters: int = 32  # paper silent; WILLOW's cluster_size / 2 (a 69,632-d fusion)
    # Assignment logits w.x batch-normalised over the real frames (the authors' and WILLOW's `cluster_bn`) in
    # place of a bias: unit-variance logits, entropy ~0.89 of uniform at K = 64 (with a bias: 0.9999).
    cluster_bn: bool = True
    non_local_ratio: float = 0.5  # non-local width / D; paper silent; the non-local paper's D/2


@dataclasses.dataclass(frozen=True)
class EarlyFusionVLAD(VLADClassifier):
    """efnl_netvlad: the 1152-d frames, frame-level context gating, one non-local NetVLAD, then the
    classifier."""

    frame_gating: bool = True
    frame_gating_rank: Optional[int] = None  # None: full rank (1152 x 1152)
    num_clusters: int = 64
    cluster_bn: bool = True  # as LateFusionVLAD
    non_local_ratio: float = 0.5  # paper silent; D/2 = 576 as in the non-local paper


@dataclasses.dataclass(frozen=True)
class SoftBoF(FrameModel):
    """soft_bof_4k, soft_bof_8k: rgb soft-assigned to K clusters, audio to K/8, each sum-pooled over the real
    frames and L2-normalised (the authors' code and WILLOW's SoftDBoF) -> hidden -> MoE."""

    num_clusters: int = 4096
    hidden_size: int = 1024
    num_experts: int = 2
    cluster_bn: bool = True  # as LateFusionVLAD (K = 4096 at init: entropy ~0.94 of uniform)
    # "sum_l2" as the authors; "mean": one 1152-d assignment, mean-pooled (a distribution, entries ~1/K) -> BN,
    # what runs saved before 2026-12-07 were built with: that BN's batch variance (~1e-9) sat under its epsilon.
    pooling: str = "sum_l2"
    hidden_init: Optional[float] = 0.2  # as VLADClassifier (two unit-norm blocks)


@dataclasses.dataclass(frozen=True)
class GRU(FrameModel):
    """gru: stacked GRUs, the final states of all layers -> MoE."""

    units: int = 1200
    num_layers: int = 2
    num_experts: int = 2
    # Unit-norm frames straight into the GRU, as the authors' (WILLOW's) GruModel: no input batch norm.
    # Measured (bench/LEARNING.md, 2026-12-07): with the input batch norm the GRU learned slower, validation GAP
    # at step 500 0.652 against 0.733 without (units 64, seed 0; 0.436 against 0.525 at units 16), and over 3
    # seeds still below the code before the change at step 2,000 (0.744 against 0.789). Its kernels are Glorot for unit-variance inputs, so batch-
    # normalised frames drive its gates into saturation, where unit-norm ones (values ~0.03) keep it near
    # linear, a running average of the frames that the MoE reads easily. The GRU has no other batch norm.
    input_bn: bool = False


@dataclasses.dataclass(frozen=True)
class NeXtVLADModel(FrameModel):
    """nextvlad: Lin et al. 2018's best single model (the 3rd place): rgb and audio each pooled by NeXtVLAD
    (audio with half the clusters and groups), concatenated -> BN -> dropout -> Dense(hidden) -> BN ->
    SE gating (x * sigmoid(W2 relu(BN(W1 x))), reduction r) -> logistic head. Their final setting: K 112,
    G 8, lambda 2, hidden 2048, r 16: 78.6M parameters (ours 78.7M). Differences from their code: a
    bias in place of BN on the frame-level assignment logits (layers/nextvlad.py, as the toolkit's
    NetVLAD) before 2026-12-07 (now `cluster_bn` as theirs); frames L2-normalised first and then batch-normalised
    (frame_l2, input_bn; their train.py has the L2 commented out: `--set frame_l2=false` feeds raw frames
    as they did; with the input batch norm after it the scale no longer matters); Glorot and 1/sqrt(fan) normal initialisations where
    they use variance scaling; no L2 penalty (theirs 1e-5 on the logistic head)."""

    num_clusters: int = 112
    groups: int = 8
    expansion: float = 2.0
    hidden_size: int = 2048
    gating_reduction: int = 16
    # The SE gating's squeeze as the authors' code (linrongc/youtube-8m nextvlad.py): W1 x -> BN -> ReLU ->
    # sigmoid(W2 .), no biases. False: W1 x + b1 -> ReLU -> sigmoid(W2 . + b2), what nextvlad runs trained
    # before this field existed were built with (LEGACY_VALUES).
    gating_bn: bool = True
    dropout: float = 0.5
    output_bias: float = OUTPUT_BIAS
    # NeXtVLAD's assignment logits batch-normalised over the real frames in place of a bias, as their code.
    cluster_bn: bool = True


@dataclasses.dataclass(frozen=True)
class MixNeXtVLAD(NeXtVLADModel):
    """mix_nextvlad: Lin et al.'s 3-branch on-the-fly distillation mixture of NeXtVLAD models (their 237M-
    parameter submission): loss = BCE(mixture) + sum BCE(branch) + distill_weight * sum KL(softmax(mixture/T)
    || softmax(branch/T)) (softmax over the classes), T = 3, weight 9 (their settings; layers/mixture.py)."""

    branches: int = 3
    temperature: float = 3.0
    distill_weight: float = 9.0


@dataclasses.dataclass(frozen=True)
class VideoLogistic:
    """video_logistic: one Dense(3862, sigmoid) on the 1152 video-level features."""

    output_bias: float = OUTPUT_BIAS  # from zero, logistic regression reached GAP 0.21 after an epoch
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class VideoMoE:
    """video_moe: the starter code's MoeModel on the raw video-level features."""

    num_experts: int = 2
    output_bias: float = OUTPUT_BIAS  # the experts' initial bias (an initial value: old checkpoints load as before)
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class Video:
    """video: [L2 per modality] -> hidden blocks -> [gating] -> MoE or logistic head. The winner of
    bench/video_search.py on the real 2018 video-level data (bench/VIDEO_SEARCH.md; same keys as its
    Config, so a winner's spec can be pasted in)."""

    normalise: str = "l2"  # "none" | "l2" (each modality to unit L2 norm, no weights)
    input_dropout: float = 0.0
    hidden: tuple = (1024,)  # Dense sizes, each Dense -> [BN] -> ReLU -> [Dropout]
    batch_norm: bool = True  # BN after each hidden Dense and on the context-gate logits
    dropout: float = 0.5
    context_gating: bool = False  # gating and MoE learned more slowly at ~29k videos
    experts: int = 0  # 0: logistic head; E: MoE with E experts + dummy
    video_gating: bool = False  # context gating on the 3862 probabilities
    video_gating_rank: Optional[int] = None  # None: full 3862 x 3862
    output_bias: float = OUTPUT_BIAS
    dtype: str = "float32"


# Architecture fields added after checkpoints were first written, with the value that reproduces what
# those checkpoints were trained with. A saved record (model.json, run.json, an ensemble member) that
# lacks one predates it and gets this value; everything written now carries every such field explicitly.
# frames were fed unnormalised before 2026-12-03; NeXtVLAD's gating squeeze had no BN before 2026-12-03 (evening);
# input_bn, cluster_bn, hidden_init and Soft-BoF's per-modality sum pooling came on 2026-12-07 (the scales fix).
LEGACY_VALUES = {"frame_l2": False, "gating_bn": False, "input_bn": False, "debiased_bn": False, "cluster_bn": False, "hidden_init": None,
                 "pooling": "mean"}

PAPER_TRAIN = TrainSettings(xla=True)  # Tang et al.'s Adam 2e-4 and the starter's decay: the trainer's defaults
# What `video` was tuned with (bench/VIDEO_SEARCH.md): decay x0.85 about every epoch of the ~29k
# real videos; no clipping in the search (a huge norm keeps the trainer's clip inert).
VIDEO_TRAIN = TrainSettings(batch_size=256, epochs=12, lr=1e-3, lr_decay=0.85, lr_decay_examples=25_000,
                            clip_norm=1e6)

# Tiny variants: same architecture, well under 1M parameters, for tests and the demo. What shrinks:
# clusters 64/32 -> 8/4, non-local width D/2 -> D/64, hidden 1024 -> 16, experts -> 2, full-rank
# gating (1024^2, 1152^2, 3862^2) -> rank 8/16, Soft-BoF 4K/8K -> 32/64, GRU 2 x 1200 -> 2 x 16.
# The MoE on 3862 classes dominates what is left.
_TINY_VLAD = dict(num_clusters=8, non_local_ratio=1 / 64, hidden_size=16, num_experts=2, video_gating_rank=8)
# Tiny models learn fast at a higher rate than the paper's 2e-4 (the demo's data, 300 steps at batch
# 32: gru_tiny GAP 0.25 at 2e-3 vs 0.43 at 1e-2); compiling them costs more than it saves.
TINY_VLAD_TRAIN = TrainSettings(lr=5e-3, xla=False)
_TINY_NEXTVLAD = dict(num_clusters=8, groups=4, expansion=0.5, hidden_size=16, gating_reduction=4)
TINY_TRAIN = TrainSettings(lr=1e-2, xla=False)

# name: (level, architecture, trainer settings, Tang et al. Table 1 size in MiB of fp32 parameters)
MODELS = {
    "lfnl_netvlad": ("frame", LateFusionVLAD(num_experts=8), PAPER_TRAIN, 593),
    "lfnl_netrvlad": ("frame", LateFusionVLAD(num_experts=4), PAPER_TRAIN, 478),
    "netvlad": ("frame", LateFusionVLAD(num_experts=8), PAPER_TRAIN, None),
    "efnl_netvlad": ("frame", EarlyFusionVLAD(num_experts=2), PAPER_TRAIN, 427),
    "soft_bof_4k": ("frame", SoftBoF(num_clusters=4096), PAPER_TRAIN, 109),
    "soft_bof_8k": ("frame", SoftBoF(num_clusters=8192), PAPER_TRAIN, 143),
    "gru": ("frame", GRU(), TrainSettings(), 243),  # GRU trains slower XLA-compiled here
    "lfnl_netvlad_tiny": ("frame", LateFusionVLAD(**_TINY_VLAD, audio_clusters=4), TINY_VLAD_TRAIN, None),
    "lfnl_netrvlad_tiny": ("frame", LateFusionVLAD(**_TINY_VLAD, audio_clusters=4), TINY_VLAD_TRAIN, None),
    "netvlad_tiny": ("frame", LateFusionVLAD(**_TINY_VLAD, audio_clusters=4), TINY_VLAD_TRAIN, None),
    "efnl_netvlad_tiny": ("frame", EarlyFusionVLAD(**_TINY_VLAD, frame_gating_rank=16), TINY_VLAD_TRAIN, None),
    "soft_bof_4k_tiny": ("frame", SoftBoF(num_clusters=32, hidden_size=16), TINY_TRAIN, None),
    "soft_bof_8k_tiny": ("frame", SoftBoF(num_clusters=64, hidden_size=16), TINY_TRAIN, None),
    "gru_tiny": ("frame", GRU(units=16), TINY_TRAIN, None),
    # Lin et al. 2018 (3rd place), beside the 4th place's members; paper size: their 78.6M parameters in MiB.
    "nextvlad": ("frame", NeXtVLADModel(), PAPER_TRAIN, 78.6e6 * 4 / 2**20),
    # expansion 0.5: the 1024 x (2 x 1024) expansion alone would be 2.1M parameters
    "nextvlad_tiny": ("frame", NeXtVLADModel(**_TINY_NEXTVLAD), TINY_VLAD_TRAIN, None),
    "mix_nextvlad": ("frame", MixNeXtVLAD(), PAPER_TRAIN, 237e6 * 4 / 2**20),  # their 3-branch mixture, ~237M
    # one tiny branch is ~0.64M parameters, most of it the 0.5 x 1024 expansion: 3 would pass 1M
    "mix_nextvlad_tiny": ("frame", MixNeXtVLAD(**dict(_TINY_NEXTVLAD, expansion=0.125, groups=2)), TINY_VLAD_TRAIN,
                          None),
    # The best of the baseline settings tried in bench/VIDEO_SEARCH.md.
    "video_logistic": ("video", VideoLogistic(), dataclasses.replace(VIDEO_TRAIN, epochs=8, lr=3e-3, lr_decay=0.8), None),
    "video_moe": ("video", VideoMoE(), VIDEO_TRAIN, None),  # video's schedule (bench/VIDEO_SEARCH.md, moe2_e12)
    "video": ("video", Video(), VIDEO_TRAIN, None),
}
