"""The on-the-fly distillation mixture of branches (Lin et al. 2018, `mix_nextvlad`).

M branches each give class logits z_m (B, C); a gate g = softmax(W BN(mean of the real frames)) (B, M)
mixes them: z = sum_m g_m z_m, and the model outputs sigmoid(z). Training adds, per video,
    sum_m BCE(labels, sigmoid(z_m)) + lambda * sum_m KL(softmax(z / T) || softmax(z_m / T))
(the softmax over the classes, as the authors' code: it compares the branches' rankings of the classes
with the mixture's; gradients reach both sides, so the mixture and its gate learn from it too), T = 3 and
lambda = 9 as the authors; the trainer adds it to the mixture's own BCE through `training_loss(labels)`,
which reads the logits of the last call made in the same step (train/loop.make_train_step).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kit")
class BranchMixture(keras.layers.Layer):
    """[gate logits (B, M), z_1 ... z_M (B, C) logits] -> (B, C) float32 probabilities of the mixture."""

    def __init__(self, temperature=3.0, distill_weight=9.0, **kwargs):
        super().__init__(**kwargs)
        if float(temperature) <= 0 or float(distill_weight) < 0:
            raise ValueError(f"temperature ({temperature}) must be positive and the distillation weight "
                             f"({distill_weight}) not negative")
        self.temperature, self.distill_weight = float(temperature), float(distill_weight)
        self._last = None

    def call(self, inputs):
        gate_logits, branches = inputs[0], inputs[1:]
        gate = ops.softmax(ops.cast(gate_logits, "float32"), axis=-1)  # (B, M)
        stacked = ops.stack([ops.cast(z, "float32") for z in branches], axis=1)  # (B, M, C)
        mixed = ops.sum(ops.expand_dims(gate, -1) * stacked, axis=1)  # (B, C)
        self._last = (mixed, stacked)
        return ops.sigmoid(mixed)

    def training_loss(self, labels):
        """(B,) the branches' BCE plus the weighted KL from the mixture, for the logits of the last call."""
        mixed, stacked = self._last
        labels = ops.expand_dims(ops.cast(labels, "float32"), 1)  # (B, 1, C)

        def bce(target, logits):
            # on the logits, stable for any logit: its gradient sigmoid(z) - target never vanishes on a miss
            # (before 2026-12-07 sigmoid(z) was clipped to [1e-6, 1 - 1e-6]: zero gradient past the clip)
            target = ops.broadcast_to(target, ops.shape(logits))  # (B, 1, C) labels against (B, M, C) branches
            return ops.sum(ops.binary_crossentropy(target, logits, from_logits=True), axis=-1)

        # The KL between the class distributions softmax(z / T) (a ranking of the classes, as GAP scores
        # them), gradients through both sides: the authors' code (linrongc/youtube-8m nextvlad.py). A binary
        # KL per class, the mixture's side held fixed, collapsed the gate onto one branch (bench/README.md).
        log_teacher = ops.log_softmax(mixed / self.temperature, axis=-1)[:, None, :]  # (B, 1, C)
        log_student = ops.log_softmax(stacked / self.temperature, axis=-1)  # (B, M, C)
        kl = ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)  # (B, M)
        return ops.sum(bce(labels, stacked), axis=1) + self.distill_weight * ops.sum(kl, axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "distill_weight": self.distill_weight})
        return config
