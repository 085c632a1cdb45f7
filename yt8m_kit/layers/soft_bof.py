"""Soft bag of frames (WILLOW's SoftDBoF; Tang et al. Soft-BoF-4K/8K).

Each frame is softly assigned to K clusters, a_k(x) = softmax_k(w_k.x + b_k), and the
assignments are MEAN-pooled over the real frames: bof_k = sum_{i<n} a_k(x_i) / n, so the
result is a distribution over clusters whatever the video's length (the paper allows mean
or max; mean is smooth, and max of a masked softmax would still need the mask for
all-negative cases). Padding frames contribute nothing; a video with 0 frames gives zeros.
"""

import math

import keras
from keras import ops

from yt8m_kit.layers.numerics import softmax32


@keras.saving.register_keras_serializable(package="yt8m_kit")
class SoftBoF(keras.layers.Layer):
    """[frames (B, T, D), mask (B, T)] -> (B, K) mean soft assignment."""

    def __init__(self, num_clusters, **kwargs):
        super().__init__(**kwargs)
        if int(num_clusters) < 1:
            raise ValueError(f"number of clusters ({num_clusters}) must be a positive integer")
        self.num_clusters = int(num_clusters)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        if dim is None:
            raise ValueError(f"feature size must be known; got input shape {input_shape[0]}")
        init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(dim))
        self.cluster_kernel = self.add_weight(shape=(dim, self.num_clusters), initializer=init,
                                              name="cluster_kernel")
        self.cluster_bias = self.add_weight(shape=(self.num_clusters,), initializer="zeros",
                                            name="cluster_bias")

    def call(self, inputs):
        frames, mask = inputs  # (B, T, D), (B, T)
        logits = ops.matmul(frames, self.cluster_kernel) + self.cluster_bias  # (B, T, K)
        mask32 = ops.cast(mask, "float32")
        assign = ops.cast(softmax32(logits), "float32") * ops.expand_dims(mask32, -1)
        count = ops.maximum(ops.sum(mask32, axis=1, keepdims=True), 1.0)  # (B, 1)
        return ops.cast(ops.sum(assign, axis=1) / count, self.compute_dtype)  # (B, K)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters})
        return config
