"""Context gating (Miech et al. 2017): z = sigmoid(W y + b) * y, elementwise, on the last axis.

One layer for both uses:
- frame level: on (B, T, D) frames, each frame gated on its own (padding stays zero:
  sigmoid(.) * 0 = 0);
- video level: on (B, H) hidden vectors or on the (B, 3862) output probabilities.
`rank` makes W = U V low rank (D x r, r x D) so tiny variants stay small; None = full D x D.
`batch_norm` normalises the gate logits (WILLOW's option); allowed on video-level (B, H)
inputs only, never per frame, so padding cannot leak through batch statistics.
`float32_io=True` (used on the output probabilities) takes and returns float32 whatever the
weights' dtype: bfloat16 probabilities keep ~3 significant digits, and the ties that makes
cost GAP (measured: -0.005 on the demo's models).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kit")
class ContextGating(keras.layers.Layer):
    """(..., D) -> (..., D): each feature scaled by a learnt sigmoid gate of all features."""

    def __init__(self, rank=None, batch_norm=False, float32_io=False, **kwargs):
        self.float32_io = bool(float32_io)
        if self.float32_io:
            kwargs["autocast"] = False  # keep float32 probabilities float32 under a bfloat16 policy
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
        dtype = "float32" if self.float32_io else self.compute_dtype
        inputs = ops.cast(inputs, dtype)
        w = (lambda v: ops.cast(v, dtype))
        if self.rank is None:
            logits = ops.matmul(inputs, w(self.kernel))
        else:
            logits = ops.matmul(ops.matmul(inputs, w(self.kernel_down)), w(self.kernel_up))
        logits = logits + w(self.bias)
        if self.gate_norm is not None:
            logits = ops.cast(self.gate_norm(logits, training=training), dtype)
        return ops.sigmoid(logits) * inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank, "batch_norm": self.batch_norm, "float32_io": self.float32_io})
        return config
