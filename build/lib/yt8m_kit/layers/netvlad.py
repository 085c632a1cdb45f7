"""NetVLAD and NetRVLAD pooling of frames into K cluster descriptors (Arandjelovic et al. 2016;
Miech et al. 2017 "Learnable pooling"; Tang et al. 2018 eq. 6-7).

a_k(x) = softmax_k(w_k.x + b_k)                       soft assignment of a frame to cluster k
         or softmax_k(BN(w_k.x))                      with cluster_bn: the logits batch-normalised over the
                                                      real frames (the authors' and WILLOW's `cluster_bn`)
NetVLAD:  V(j, k) = sum_i a_k(x_i) (x_i(j) - c_k(j))  residuals to learnt centres c_k
NetRVLAD: V(j, k) = sum_i a_k(x_i) x_i(j)             no centres
Assignments are multiplied by the frame mask, so padding frames contribute nothing.
Output: intra-normalised descriptors (B, K, D) (each cluster L2 = 1); FlattenL2 then gives
the global-L2 vector (B, K*D). Kept apart so a non-local block can sit in between.
Softmax and L2 norms compute in float32 under bfloat16 and cast back.
"""

import keras
from keras import ops

from yt8m_kit.layers.assignment import SoftAssignment
from yt8m_kit.layers.numerics import l2_normalize


@keras.saving.register_keras_serializable(package="yt8m_kit")
class NetVLAD(SoftAssignment, keras.layers.Layer):
    """[frames (B, T, D), mask (B, T)] -> intra-normalised descriptors (B, K, D).

    Args:
        num_clusters: K.
        centred: True for NetVLAD (learnt centres c_k), False for NetRVLAD.
        cluster_bn: batch-normalise the assignment logits over the real frames in place of a bias (the
            default False is how layers saved before 2026-12-07 were built).
    """

    def __init__(self, num_clusters, centred=True, cluster_bn=False, **kwargs):
        super().__init__(**kwargs)
        self._init_assignment(num_clusters, cluster_bn)
        self.centred = bool(centred)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        if dim is None or dim < 1:
            raise ValueError(f"feature size ({dim}) must be known and positive; got input shape {input_shape[0]}")
        self.feature_size = int(dim)
        self._build_assignment(self.feature_size)
        if self.centred:
            self.centres = self.add_weight(
                shape=(self.num_clusters, dim), initializer=keras.initializers.RandomNormal(stddev=dim ** -0.5),
                name="centres")

    def call(self, inputs, training=None):
        frames, mask = inputs  # (B, T, D), (B, T)
        assign = self.assignments([frames, mask], training=training)
        assign = assign * ops.expand_dims(ops.cast(mask, assign.dtype), -1)
        vlad = ops.einsum("btk,btd->bkd", assign, frames)  # (B, K, D)
        if self.centred:
            mass = ops.expand_dims(ops.sum(assign, axis=1), -1)  # (B, K, 1)
            vlad = vlad - mass * ops.expand_dims(self.centres, 0)
        return l2_normalize(vlad, axis=-1)  # intra-normalisation

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_clusters, input_shape[0][-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters, "centred": self.centred, "cluster_bn": self.cluster_bn})
        return config


@keras.saving.register_keras_serializable(package="yt8m_kit")
class NetRVLAD(NetVLAD):
    """NetVLAD without cluster centres (Tang et al. eq. 7): V(j,k) = sum_i a_k(x_i) x_i(j)."""

    def __init__(self, num_clusters, **kwargs):
        kwargs.pop("centred", None)
        super().__init__(num_clusters, centred=False, **kwargs)


@keras.saving.register_keras_serializable(package="yt8m_kit")
class FlattenL2(keras.layers.Layer):
    """(B, K, D) descriptors -> (B, K*D), L2-normalised as one vector (NetVLAD's last step)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, inputs):
        shape = inputs.shape
        return l2_normalize(ops.reshape(inputs, (-1, shape[1] * shape[2])), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * input_shape[2])

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="yt8m_kit")
class L2Normalize(keras.layers.Layer):
    """L2 normalisation of the last axis (float32 inside), e.g. per modality of video features."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, inputs):
        return l2_normalize(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return super().get_config()
