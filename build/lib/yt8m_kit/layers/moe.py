"""Mixture of experts (Jordan & Jacobs 1994), as the YouTube-8M starter code's MoeModel.

For each class c: a softmax gate over E logistic experts plus one "dummy" expert that always
outputs 0; p_c = sum_{e<E} gate_{c,e} * sigmoid(expert_{c,e}). Gate: H -> C*(E+1), no bias
(as the starter); experts: H -> C*E with bias. Parameters: H*C*(2E+1) + C*E.
The gate softmax and the expert sigmoids compute in float32 under bfloat16, and the output
stays float32: bfloat16 probabilities would tie often, and ties cost GAP.
"""

import keras
from keras import ops

from yt8m_kit import NUM_CLASSES


@keras.saving.register_keras_serializable(package="yt8m_kit")
class MixtureOfExperts(keras.layers.Layer):
    """(B, H) -> (B, C) probabilities in [0, 1]."""

    def __init__(self, num_experts=2, num_classes=NUM_CLASSES, expert_bias=0.0, **kwargs):
        super().__init__(**kwargs)
        self.expert_bias_init = float(expert_bias)  # initial expert logit (the starter's: 0)
        if int(num_experts) < 1:
            raise ValueError(f"number of experts ({num_experts}) must be a positive integer")
        if int(num_classes) < 1:
            raise ValueError(f"number of classes ({num_classes}) must be a positive integer")
        self.num_experts = int(num_experts)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None or len(input_shape) != 2:
            raise ValueError(f"mixture of experts expects (batch, features) with known features; "
                             f"got shape {input_shape}")
        c, e = self.num_classes, self.num_experts
        self.gate_kernel = self.add_weight(shape=(dim, c * (e + 1)), initializer="glorot_uniform",
                                           name="gate_kernel")
        self.expert_kernel = self.add_weight(shape=(dim, c * e), initializer="glorot_uniform",
                                             name="expert_kernel")
        self.expert_bias = self.add_weight(shape=(c * e,), initializer=keras.initializers.Constant(self.expert_bias_init),
                                           name="expert_bias")

    def call(self, inputs):
        c, e = self.num_classes, self.num_experts
        gate_logits = ops.reshape(ops.matmul(inputs, self.gate_kernel), (-1, c, e + 1))  # (B, C, E+1)
        expert_logits = ops.reshape(ops.matmul(inputs, self.expert_kernel) + self.expert_bias, (-1, c, e))
        gates = ops.softmax(ops.cast(gate_logits, "float32"), axis=-1)[..., :e]  # dummy expert dropped
        experts = ops.sigmoid(ops.cast(expert_logits, "float32"))
        return ops.sum(gates * experts, axis=-1)  # (B, C) float32 whatever the policy

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_experts": self.num_experts, "num_classes": self.num_classes,
                       "expert_bias": self.expert_bias_init})
        return config


@keras.saving.register_keras_serializable(package="yt8m_kit")
class Logistic(keras.layers.Layer):
    """(B, H) -> (B, C) sigmoid(x W + b), computed in float32 whatever the weights' dtype.

    Under bfloat16 weights a bfloat16 matmul would round the logits to 8 bits of mantissa
    (steps of 0.03 near the initial bias of -7), so many probabilities would tie.
    """

    def __init__(self, num_classes=NUM_CLASSES, bias_init=0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"number of classes ({num_classes}) must be a positive integer")
        self.num_classes, self.bias_init = int(num_classes), float(bias_init)

    def build(self, input_shape):
        if input_shape[-1] is None or len(input_shape) != 2:
            raise ValueError(f"logistic head expects (batch, features) with known features; got {input_shape}")
        self.kernel = self.add_weight(shape=(input_shape[-1], self.num_classes), initializer="glorot_uniform",
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.num_classes,), name="bias",
                                    initializer=keras.initializers.Constant(self.bias_init))

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        logits = ops.matmul(x, ops.cast(self.kernel, "float32")) + ops.cast(self.bias, "float32")
        return ops.sigmoid(logits)  # (B, C) float32

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "bias_init": self.bias_init})
        return config
