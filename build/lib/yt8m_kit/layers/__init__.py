"""Keras 3 building blocks of the six sub-models (each written once, composed in models/)."""

from yt8m_kit.layers.batch_norm import DebiasedBatchNorm, MaskedBatchNorm
from yt8m_kit.layers.gating import ContextGating
from yt8m_kit.layers.gru import StackedGRU
from yt8m_kit.layers.masking import FeatureSlice, FrameMasking, MaskedMeanFrames
from yt8m_kit.layers.mixture import BranchMixture
from yt8m_kit.layers.moe import Logistic, MixtureOfExperts
from yt8m_kit.layers.netvlad import FlattenL2, L2Normalize, NetRVLAD, NetVLAD
from yt8m_kit.layers.nextvlad import NeXtVLAD
from yt8m_kit.layers.numerics import frame_mask, l2_normalize, masked_mean, softmax32
from yt8m_kit.layers.non_local import NonLocalBlock
from yt8m_kit.layers.soft_bof import SoftBoF

__all__ = [
    "BranchMixture", "ContextGating", "DebiasedBatchNorm", "FeatureSlice", "FlattenL2", "FrameMasking", "L2Normalize",
    "Logistic", "MaskedBatchNorm", "MaskedMeanFrames", "MixtureOfExperts", "NetRVLAD", "NetVLAD", "NeXtVLAD", "NonLocalBlock", "SoftBoF", "StackedGRU",
    "frame_mask", "l2_normalize", "masked_mean", "softmax32",
]
