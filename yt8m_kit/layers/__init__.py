"""Keras 3 building blocks of the six sub-models (each written once, composed in models/)."""

from yt8m_kit.layers.gating import ContextGating
from yt8m_kit.layers.gru import StackedGRU
from yt8m_kit.layers.masking import FeatureSlice, FrameMasking, frame_mask
from yt8m_kit.layers.moe import Logistic, MixtureOfExperts
from yt8m_kit.layers.netvlad import FlattenL2, L2Normalize, NetRVLAD, NetVLAD, l2_normalize
from yt8m_kit.layers.non_local import NonLocalBlock
from yt8m_kit.layers.soft_bof import SoftBoF

__all__ = [
    "ContextGating", "FeatureSlice", "FlattenL2", "FrameMasking", "L2Normalize",
    "Logistic", "MixtureOfExperts", "NetRVLAD", "NetVLAD", "NonLocalBlock", "SoftBoF", "StackedGRU",
    "frame_mask", "l2_normalize",
]
