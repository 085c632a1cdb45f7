"""Context gating (Miech et al. 2017): z = sigmoid(W y + b) * y, elementwise, on the last axis.

One layer for both uses:
- frame level: on (B, T, D) frames, each frame gated on its own (padding stays zero:
  sigmoid(.) * 0 = 0);
- video level: on (B, H) hidden vectors or on the (B, 3862) output probabilities.
`rank` makes W = U V low rank (D x r, r x D) so tiny variants stay small; None = full D x D.
`batch_norm` normalises the gate logits (WILLOW's option); allowed on video-level (B, H)
inputs only, never per frame, so padding cannot leak through batch statistics.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kit")
class ContextGating(keras.layers.Layer):
    """(..., D) -> (..., D): each feature scaled by a learnt sigmoid gate of all features."""

    def __init__(self, rank=None, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if rank is not None and int(rank) < 1:
            raise ValueError(f"gating rank ({rank}) must be a positive integer or None (full rank)")
        self.rank = None if rank is None else int(rank)
        self.batch_norm = bool(batch_norm)
        self.gate_norm = None
        if self.batch_norm:
            self.gate_norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="gate_bn")

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(f"context gating needs a known feature size; got shape {input_shape}")
        if self.batch_norm and len(input_shape) != 2:
            raise ValueError(f"batch norm on gate logits is for video-level (batch, features) inputs only; "
                             f"got shape {input_shape} (per-frame batch statistics would leak padding)")
        dim = int(dim)
        if self.rank is None:
            self.kernel = self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name="kernel")
        else:
            self.kernel_down = self.add_weight(
                shape=(dim, self.rank), initializer="glorot_uniform", name="kernel_down")
            self.kernel_up = self.add_weight(
                shape=(self.rank, dim), initializer="glorot_uniform", name="kernel_up")
        self.bias = self.add_weight(shape=(dim,), initializer="zeros", name="bias")
        if self.gate_norm is not None:
            self.gate_norm.build(tuple(input_shape))

    def call(self, inputs, training=None):
        if self.rank is None:
            logits = ops.matmul(inputs, self.kernel)
        else:
            logits = ops.matmul(ops.matmul(inputs, self.kernel_down), self.kernel_up)
        logits = logits + self.bias
        if self.gate_norm is not None:
            logits = self.gate_norm(logits, training=training)
        return ops.sigmoid(logits) * inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank, "batch_norm": self.batch_norm})
        return config
