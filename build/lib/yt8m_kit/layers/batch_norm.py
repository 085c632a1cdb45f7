"""Batch norms for the frame-level models: unbiased moving statistics, and masked frame-level moments.

Keras' moving statistics start at mean 0, variance 1 and move by (1 - momentum) = 1% a step, so for the
first few hundred steps inference mode normalises with mostly the initial values. That did not matter
while the layers' inputs had a variance near 1; a unit-norm frame's features have a variance ~1/1152, and
at step 200 inference divided them by sqrt(0.13) instead of sqrt(0.0009): the model that scored GAP 0.51
with its statistics recomputed scored 0.003 on its moving ones. DebiasedBatchNorm also tracks the weight
w = 1 - prod(momenta) that the moving averages have given to the batches (as Adam corrects its moments)
and normalises in inference with the batches' part only:
    mean = moving_mean / w,   variance = (moving_variance - (1 - w)) / w
(w = 1 after one batch at momentum 0, so train/bn_update.py's exact averages are used as they are).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kit")
class DebiasedBatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization (axis -1, default moving initialisers) whose inference-mode statistics
    are corrected for their initial values."""

    def build(self, input_shape):
        super().build(input_shape)
        self.moving_weight = self.add_weight(shape=(), initializer="zeros", trainable=False, autocast=False,
                                             name="moving_weight")

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable:
            momentum = ops.cast(self.momentum, "float32")
            self.moving_weight.assign(self.moving_weight * momentum + (1.0 - momentum))
            return super().call(inputs, training=training, mask=mask)
        w = ops.cast(self.moving_weight, "float32")
        safe = ops.maximum(w, 1e-12)
        moving_mean = ops.cast(self.moving_mean, "float32")
        moving_var = ops.cast(self.moving_variance, "float32")
        mean = ops.where(w > 0, moving_mean / safe, moving_mean)  # never trained: the initial values
        var = ops.where(w > 0, ops.maximum((moving_var - (1.0 - w)) / safe, 0.0), moving_var)
        y = (ops.cast(inputs, "float32") - mean) * ops.rsqrt(var + self.epsilon)
        if self.scale:
            y = y * ops.cast(self.gamma, "float32")
        if self.center:
            y = y + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="yt8m_kit")
class MaskedBatchNorm(DebiasedBatchNorm):
    """[x (B, T, C), mask (B, T)] -> x batch-normalised over its channels with the moments of the real frames
    only (padding enters neither the batch moments nor the moving statistics), padding rows set to 0.

    Frame-level batch norm as the authors' `input_bn` / `cluster_bn` (YongyiTang92/youtube-8m, WILLOW), which
    normalise every row of the (B*T, C) matrix, padding included: here a short video's zero padding cannot
    pull the statistics towards 0. Arguments as keras.layers.BatchNormalization.
    """

    def build(self, input_shape):
        super().build(tuple(input_shape[0]))
        self.input_spec = None  # inputs are [x, mask]; BatchNormalization's spec is for x alone

    def call(self, inputs, training=None):
        x, mask = inputs
        y = super().call(x, training=training, mask=ops.greater(mask, 0))
        return y * ops.expand_dims(ops.cast(mask, y.dtype), -1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
