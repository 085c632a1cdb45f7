"""Soft bag of frames (WILLOW's SoftDBoF; Tang et al. Soft-BoF-4K/8K).

Each frame is softly assigned to K clusters, a_k(x) = softmax_k(w_k.x + b_k) (with cluster_bn:
softmax_k(BN(w_k.x)), the logits batch-normalised over the real frames as the authors' `cluster_bn`),
and the assignments are pooled over the real frames:
    pooling "sum_l2": bof = h / ||h||_2 with h_k = sum_{i<n} a_k(x_i)  (the authors' and WILLOW's SoftDBoF)
    pooling "mean":   bof_k = h_k / n, a distribution over the clusters (what layers saved before
                      2026-12-07 did; its entries ~1/K left the batch norm after it swamped by its epsilon)
The sum's L2 normalisation also makes it independent of the video's length. Padding frames contribute
nothing; a video with 0 frames gives zeros.
"""

import keras
from keras import ops

from yt8m_kit.layers.assignment import SoftAssignment
from yt8m_kit.layers.numerics import l2_normalize

POOLINGS = ("mean", "sum_l2")


@keras.saving.register_keras_serializable(package="yt8m_kit")
class SoftBoF(SoftAssignment, keras.layers.Layer):
    """[frames (B, T, D), mask (B, T)] -> (B, K) pooled soft assignment.

    Args:
        num_clusters: K.
        cluster_bn: batch-normalised logits in place of a bias (default False: layers saved before it).
        pooling: "sum_l2" or "mean" (default "mean": layers saved before 2026-12-07).
    """

    def __init__(self, num_clusters, cluster_bn=False, pooling="mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"Soft-BoF pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        self._init_assignment(num_clusters, cluster_bn)
        self.pooling = pooling

    def build(self, input_shape):
        dim = input_shape[0][-1]
        if dim is None:
            raise ValueError(f"feature size must be known; got input shape {input_shape[0]}")
        self._build_assignment(dim)

    def call(self, inputs, training=None):
        frames, mask = inputs  # (B, T, D), (B, T)
        mask32 = ops.cast(mask, "float32")
        assign = ops.cast(self.assignments([frames, mask], training=training), "float32")
        total = ops.sum(assign * ops.expand_dims(mask32, -1), axis=1)  # (B, K)
        if self.pooling == "sum_l2":
            return ops.cast(l2_normalize(total, axis=-1), self.compute_dtype)
        count = ops.maximum(ops.sum(mask32, axis=1, keepdims=True), 1.0)  # (B, 1)
        return ops.cast(total / count, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters, "cluster_bn": self.cluster_bn, "pooling": self.pooling})
        return config
