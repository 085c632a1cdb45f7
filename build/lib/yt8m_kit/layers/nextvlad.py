"""NeXtVLAD pooling (Lin et al. 2018, the 3rd place of the 2nd YouTube-8M challenge).

Each frame x (N-d) is expanded to x' = W_e x + b_e (lambda*N-d) and split into G groups of
D = lambda*N / G dimensions x'_g. Each group gets an attention alpha_g(x') = sigmoid(w_g . x' + b_g)
(times the frame mask, so padding counts for nothing) and a soft assignment of its D-d vector to
K clusters, a_gk(x') = softmax_k(w_gk . x' + b_gk). The descriptor
    V(j, k) = sum_{t, g} alpha_g(x'_t) a_gk(x'_t) (x'_tg(j) - c_k(j))
is intra-normalised (each cluster's D-d column to unit L2) and flattened to K*D = lambda*N*K/G values:
G times fewer than NetVLAD on the expanded frames. With cluster_bn the frame-level assignment logits
are batch-normalised (over the real frames only: padding enters no statistics) in place of a bias, as
the authors' code; without it (layers saved before 2026-12-07) a bias.
Softmax, sigmoid and norms compute in float32 under bfloat16.
"""

import math

import keras
from keras import ops

from yt8m_kit.layers.batch_norm import MaskedBatchNorm
from yt8m_kit.layers.numerics import l2_normalize, softmax32


@keras.saving.register_keras_serializable(package="yt8m_kit")
class NeXtVLAD(keras.layers.Layer):
    """[frames (B, T, N), mask (B, T)] -> (B, K * lambda*N/G), intra-normalised per cluster, flattened.

    Args: num_clusters K, groups G, expansion lambda (lambda*N must be a whole multiple of G; the paper's
    lambda is 2, a tiny model may take less), cluster_bn (batch-normalised assignment logits; default False:
    layers saved before it)."""

    def __init__(self, num_clusters, groups=8, expansion=2.0, cluster_bn=False, **kwargs):
        super().__init__(**kwargs)
        if int(num_clusters) < 1 or int(groups) < 1 or float(expansion) <= 0:
            raise ValueError(f"clusters ({num_clusters}) and groups ({groups}) must be positive integers and the "
                             f"expansion ({expansion}) positive")
        self.num_clusters, self.groups, self.expansion = int(num_clusters), int(groups), float(expansion)
        self.cluster_bn = bool(cluster_bn)
        if self.cluster_bn:
            self.logits_bn = MaskedBatchNorm(dtype=self.dtype_policy, name="cluster_bn")

    def _widths(self, n):
        wide = None if n is None else self.expansion * n
        if wide is None or wide != int(wide) or int(wide) % self.groups:
            raise ValueError(f"expanded frame size {self.expansion} x {n} must be a whole multiple of the "
                             f"{self.groups} groups")
        return int(wide), int(wide) // self.groups

    def build(self, input_shape):
        n = input_shape[0][-1]
        wide, self.group_size = self._widths(n)
        k, g = self.num_clusters, self.groups
        # A new initializer for each weight: an unseeded one draws the same values at every call (a shared
        # one made the attention kernel a copy of the expansion's first values, the centres of the
        # assignment kernel's). The cluster weights and centres: normal with std 1/sqrt(lambda N) (the
        # authors draw every weight from TF-slim's variance scaling, std sqrt(2 / fan-in), truncated).
        def std():
            return keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(wide))

        self.expand_kernel = self.add_weight(shape=(n, wide), initializer="glorot_uniform", name="expand_kernel")
        self.expand_bias = self.add_weight(shape=(wide,), initializer="zeros", name="expand_bias")
        self.attention_kernel = self.add_weight(shape=(wide, g), initializer="glorot_uniform", name="attention_kernel")
        self.attention_bias = self.add_weight(shape=(g,), initializer="zeros", name="attention_bias")
        self.cluster_kernel = self.add_weight(shape=(wide, g * k), initializer=std(), name="cluster_kernel")
        if self.cluster_bn:
            self.logits_bn.build(((None, None, g * k), (None, None)))
        else:
            self.cluster_bias = self.add_weight(shape=(g * k,), initializer="zeros", name="cluster_bias")
        self.centres = self.add_weight(shape=(k, self.group_size), initializer=std(), name="centres")

    def _assign(self, x, mask, training):
        """Expanded frames (B, T, lambda N) -> (B, T, G, K) per-group soft assignments."""
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        logits = ops.matmul(x, self.cluster_kernel)  # (B, T, G K)
        if self.cluster_bn:
            logits = self.logits_bn([logits, mask], training=training)
        else:
            logits = logits + self.cluster_bias
        return softmax32(ops.reshape(logits, (b, t, self.groups, self.num_clusters)))

    def assignments(self, inputs, training=None):
        """[frames (B, T, N), mask (B, T)] -> (B, T, G, K): each group's soft assignment of every frame (padding
        rows included), before the attention weights them."""
        frames, mask = inputs
        return self._assign(ops.matmul(frames, self.expand_kernel) + self.expand_bias, mask, training)

    def call(self, inputs, training=None):
        frames, mask = inputs  # (B, T, N), (B, T)
        k, g, d = self.num_clusters, self.groups, self.group_size
        x = ops.matmul(frames, self.expand_kernel) + self.expand_bias  # (B, T, lambda N)
        attention = ops.sigmoid(ops.cast(ops.matmul(x, self.attention_kernel) + self.attention_bias, "float32"))
        attention = attention * ops.expand_dims(ops.cast(mask, "float32"), -1)  # (B, T, G): padding weighs 0
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        assign = self._assign(x, mask, training)  # (B, T, G, K), per group
        assign = assign * ops.cast(ops.expand_dims(attention, -1), assign.dtype)
        groups = ops.reshape(x, (b, t, g, d))  # (B, T, G, D)
        vlad = ops.einsum("btgk,btgd->bkd", assign, groups)  # (B, K, D)
        mass = ops.expand_dims(ops.sum(assign, axis=(1, 2)), -1)  # (B, K, 1)
        vlad = l2_normalize(vlad - mass * ops.expand_dims(ops.cast(self.centres, vlad.dtype), 0), axis=-1)
        return ops.reshape(vlad, (b, k * d))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_clusters * self._widths(input_shape[0][-1])[1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters, "groups": self.groups, "expansion": self.expansion,
                       "cluster_bn": self.cluster_bn})
        return config
