"""Soft assignment of frames to K clusters, shared by NetVLAD / NetRVLAD and Soft-BoF:

a_k(x) = softmax_k(w_k.x + b_k), or softmax_k(BN(w_k.x)) with cluster_bn (the logits batch-normalised over
the real frames, the authors' and WILLOW's `cluster_bn`). w_k ~ N(0, 1/D) as WILLOW's initialisation.
"""

import math

import keras
from keras import ops

from yt8m_kit.layers.batch_norm import MaskedBatchNorm
from yt8m_kit.layers.numerics import softmax32


class SoftAssignment:
    """Mixin for a Keras layer whose inputs are [frames (B, T, D), mask (B, T)]: call `_init_assignment` in
    __init__ and `_build_assignment` in build; `assignments` is what ../shared/checks/init_scales.py measures."""

    def _init_assignment(self, num_clusters, cluster_bn):
        if int(num_clusters) < 1:
            raise ValueError(f"number of clusters ({num_clusters}) must be a positive integer")
        self.num_clusters = int(num_clusters)
        self.cluster_bn = bool(cluster_bn)
        if self.cluster_bn:
            self.logits_bn = MaskedBatchNorm(dtype=self.dtype_policy, name="cluster_bn")

    def _build_assignment(self, dim):
        # One initializer per weight: an unseeded Keras initializer draws the same values at every call,
        # so a shared one made NetVLAD's centres a copy of the assignment kernel's first values.
        self.cluster_kernel = self.add_weight(
            shape=(dim, self.num_clusters), initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(dim)),
            name="cluster_kernel")
        if self.cluster_bn:
            self.logits_bn.build(((None, None, self.num_clusters), (None, None)))
        else:
            self.cluster_bias = self.add_weight(shape=(self.num_clusters,), initializer="zeros", name="cluster_bias")

    def assignments(self, inputs, training=None):
        """[frames (B, T, D), mask (B, T)] -> (B, T, K) soft assignments of every frame (padding rows
        included: multiply by the mask to drop them)."""
        frames, mask = inputs
        logits = ops.matmul(frames, self.cluster_kernel)  # (B, T, K)
        if self.cluster_bn:
            logits = self.logits_bn([logits, mask], training=training)
        else:
            logits = logits + self.cluster_bias
        return softmax32(logits)
