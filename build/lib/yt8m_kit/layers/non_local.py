"""Non-local block over the K cluster descriptors (Wang et al. 2018; Tang et al. 2018 eq. 5).

Embedded Gaussian: y = softmax(theta(v) phi(v)^T) g(v); out = W y + v (residual), where
v is (B, K, D), theta/phi/g are linear maps D -> E and W maps E -> D. The embedding width E
defaults to D/2, the non-local paper's bottleneck (Tang et al. are silent on it).
g is really used: the authors' public code computed g and then reshaped phi in its place.
W is not zero-initialised (unlike the non-local paper) so that theta, phi and g receive a
gradient from the first step; the residual still keeps v's information. phi has no bias: it would
add theta_k . b to every score of row k, which the softmax over l ignores (no effect, no gradient).
"""

import keras
from keras import ops

from yt8m_kit.layers.numerics import softmax32


@keras.saving.register_keras_serializable(package="yt8m_kit")
class NonLocalBlock(keras.layers.Layer):
    """(B, K, D) -> (B, K, D): descriptors attend to each other, plus a residual.

    Args:
        embed_dim: E, width of theta/phi/g; None means D // 2.
    """

    def __init__(self, embed_dim=None, **kwargs):
        super().__init__(**kwargs)
        if embed_dim is not None and int(embed_dim) < 1:
            raise ValueError(f"non-local embedding width ({embed_dim}) must be a positive integer or None")
        self.embed_dim = None if embed_dim is None else int(embed_dim)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"non-local block expects (batch, clusters, features) with known features; "
                             f"got shape {input_shape}")
        dim = int(input_shape[-1])
        embed = self.embed_dim or max(1, dim // 2)
        self._embed = embed
        # theta and phi start with entries of std E^(-1/4): on unit-norm descriptor rows (the NetVLAD
        # intra-normalisation before this block) each affinity theta_k . phi_l then starts with std ~1,
        # so attention starts neither uniform nor one-hot. With Glorot's std ~sqrt(2 / (D + E)) the
        # affinities started at std ~0.03 (attention uniform to 1e-4 at paper size) and theta/phi got
        # ~260x less gradient than g; now ~40x at paper size (~10x at D=256, which tests/test_layers.py bounds).
        # (One initializer each: a shared one draws the same values twice, and theta = phi makes every
        # descriptor attend to itself.)
        for name in ("theta", "phi", "g"):
            init = "glorot_uniform" if name == "g" else keras.initializers.RandomNormal(stddev=embed ** -0.25)
            setattr(self, f"{name}_kernel", self.add_weight(shape=(dim, embed), initializer=init,
                                                            name=f"{name}_kernel"))
            if name != "phi":
                setattr(self, f"{name}_bias", self.add_weight(
                    shape=(embed,), initializer="zeros", name=f"{name}_bias"))
        self.out_kernel = self.add_weight(shape=(embed, dim), initializer="glorot_uniform", name="out_kernel")
        self.out_bias = self.add_weight(shape=(dim,), initializer="zeros", name="out_bias")

    def call(self, inputs):
        v = inputs  # (B, K, D)
        theta = ops.matmul(v, self.theta_kernel) + self.theta_bias  # (B, K, E)
        phi = ops.matmul(v, self.phi_kernel)  # (B, K, E)
        g = ops.matmul(v, self.g_kernel) + self.g_bias  # (B, K, E)
        attention = softmax32(ops.einsum("bke,ble->bkl", theta, phi))  # (B, K, K), rows sum to 1
        y = ops.einsum("bkl,ble->bke", attention, g)  # (B, K, E)
        return ops.matmul(y, self.out_kernel) + self.out_bias + v

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"embed_dim": self.embed_dim})
        return config
