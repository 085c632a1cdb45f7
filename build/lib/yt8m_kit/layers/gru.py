"""Stacked GRU encoder honouring the frame mask (Tang et al.: 2 layers x 1200 units).

Keras' GRU keeps its state unchanged at masked steps, so padding (rows past num_frames,
right-padded) changes nothing. Returns the concatenation of every layer's final state,
(B, num_layers * units): with 2 x 1200 and MoE 2 this matches the paper's 243 MiB.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kit")
class Orthogonal32(keras.initializers.Orthogonal):
    """Orthogonal initializer computed in float32 (TF's QR has no bfloat16 kernel), then cast."""

    def __call__(self, shape, dtype=None):
        return ops.cast(super().__call__(shape, dtype="float32"), dtype or "float32")


@keras.saving.register_keras_serializable(package="yt8m_kit")
class StackedGRU(keras.layers.Layer):
    """[frames (B, T, D), mask (B, T)] -> (B, num_layers * units) final states."""

    def __init__(self, units, num_layers=2, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1 or int(num_layers) < 1:
            raise ValueError(f"GRU units ({units}) and layers ({num_layers}) must be positive integers")
        self.units, self.num_layers = int(units), int(num_layers)
        self.cells = [
            keras.layers.GRU(self.units, return_sequences=True, return_state=True,
                             recurrent_initializer=Orthogonal32(), dtype=self.dtype_policy, name=f"gru_{i}")
            for i in range(self.num_layers)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape[0])
        for cell in self.cells:
            cell.build(shape)
            shape = shape[:2] + (self.units,)

    def call(self, inputs, training=None):
        x, mask = inputs  # (B, T, D), (B, T)
        keep = ops.greater(mask, 0)  # (B, T) bool
        states = []
        for cell in self.cells:
            x, state = cell(x, mask=keep, training=training)  # (B, T, U), (B, U)
            states.append(state)
        return ops.concatenate(states, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units * self.num_layers)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "num_layers": self.num_layers})
        return config
