"""Building blocks against NumPy references, masking, serialisation and bfloat16 behaviour."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from yt8m_kit.layers import (ContextGating, FeatureSlice, FlattenL2, FrameMasking,  # noqa: E402
                             MixtureOfExperts, NetRVLAD, NetVLAD, NonLocalBlock, SoftBoF,
                             StackedGRU, frame_mask)

RNG = np.random.default_rng(0)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def l2n(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-6)


def frames_and_mask(b=3, t=6, d=5, counts=(6, 3, 1)):
    x = RNG.normal(size=(b, t, d)).astype("float32")
    m = (np.arange(t)[None] < np.array(counts)[:, None]).astype("float32")
    return x, m


def test_frame_mask_and_masking_zero_padding_even_nan():
    m = keras.ops.convert_to_numpy(frame_mask(np.array([3, 0, 5]), 5))
    np.testing.assert_array_equal(m, [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    x = RNG.normal(size=(2, 4, 3)).astype("float32")
    x[0, 2:] = np.nan
    out, mask = FrameMasking()([x, np.array([2, 4], "int32")])
    out = keras.ops.convert_to_numpy(out)
    assert np.all(out[0, 2:] == 0) and np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], x[1])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(mask), [[1, 1, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("centred", [True, False])
def test_netvlad_matches_numpy_reference(centred):
    x, m = frames_and_mask()
    layer = NetVLAD(4, centred=centred) if centred else NetRVLAD(4)
    out = keras.ops.convert_to_numpy(layer([x, m]))
    w, b = (keras.ops.convert_to_numpy(v) for v in (layer.cluster_kernel, layer.cluster_bias))
    a = softmax(x @ w + b) * m[..., None]  # (B, T, K)
    v = np.einsum("btk,btd->bkd", a, x)
    if centred:
        v -= a.sum(1)[..., None] * keras.ops.convert_to_numpy(layer.centres)[None]
    np.testing.assert_allclose(out, l2n(v), rtol=1e-4, atol=1e-5)
    assert len(layer.weights) == (3 if centred else 2)
    flat = keras.ops.convert_to_numpy(FlattenL2()(out))
    assert flat.shape == (3, 4 * 5)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0, rtol=1e-5)


def test_netvlad_padding_contributes_nothing():
    x, m = frames_and_mask()
    layer = NetVLAD(4)
    base = keras.ops.convert_to_numpy(layer([x, m]))
    garbage = x.copy()
    garbage[m == 0] = 100 * RNG.normal(size=garbage[m == 0].shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([garbage, m])), base, atol=1e-6)


def test_non_local_matches_reference_and_g_gets_gradient():
    import tensorflow as tf

    v = RNG.normal(size=(2, 4, 6)).astype("float32")
    layer = NonLocalBlock(3)
    out = keras.ops.convert_to_numpy(layer(v))
    w = {x.path.split("/")[-1]: keras.ops.convert_to_numpy(x) for x in layer.weights}
    th, ph, g = (v @ w[f"{n}_kernel"] + w.get(f"{n}_bias", 0.0) for n in ("theta", "phi", "g"))
    assert "phi_bias" not in w  # it could only shift each softmax row: no effect, no gradient
    att = softmax(np.einsum("bke,ble->bkl", th, ph))
    ref = np.einsum("bkl,ble->bke", att, g) @ w["out_kernel"] + w["out_bias"] + v
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert layer.g_kernel.shape == (6, 3) and NonLocalBlock()(v).shape == v.shape  # default D/2
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(keras.ops.square(layer(v)))
    grads = tape.gradient(loss, layer.trainable_weights)
    largest = max(np.abs(g.numpy()).max() for g in grads)
    for var, grad in zip(layer.trainable_weights, grads):  # a real gradient, not rounding noise
        assert grad is not None and np.abs(grad.numpy()).max() > 1e-6 * largest, var.path


def _non_local_at_init(seed, glorot=False):
    """(affinity std, attention entropy / log K, |grad theta| / |grad g|, |grad phi| / |grad g|) of a
    fresh non-local block on NetVLAD descriptors of random frames (K=16 clusters of D=256)."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    b, t, d, k = 4, 60, 256, 16
    frames = (rng.normal(size=(b, t, d)) * 0.4).astype("float32")
    v = NetVLAD(k)([frames, np.ones((b, t), "float32")])  # intra-normalised, as in the models
    layer = NonLocalBlock()
    layer.build(v.shape)
    if glorot:  # the initialisation before 2026-12-03
        for w in (layer.theta_kernel, layer.phi_kernel):
            w.assign(keras.initializers.GlorotUniform(seed=seed)(w.shape))
    head = keras.layers.Dense(1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(head(FlattenL2()(layer(v))) - 1.0))
    g_theta, g_phi, g_g = (float(tf.norm(x)) for x in
                           tape.gradient(loss, [layer.theta_kernel, layer.phi_kernel, layer.g_kernel]))
    theta = keras.ops.matmul(v, layer.theta_kernel) + layer.theta_bias
    affinity = keras.ops.einsum("bke,ble->bkl", theta, keras.ops.matmul(v, layer.phi_kernel)).numpy()
    p = softmax(affinity)
    entropy = float(np.mean(-np.sum(p * np.log(p + 1e-12), axis=-1)) / np.log(k))
    return float(affinity.std()), entropy, g_theta / g_g, g_phi / g_g


@pytest.mark.parametrize("seed", [0, 1])
def test_non_local_attention_is_not_flat_and_theta_phi_learn_at_init(seed):
    """The affinities start with std of order 1 (attention neither uniform nor one-hot), and theta/phi get at
    least 1/20 of g's gradient. Glorot's initialisation, checked alongside, fails both."""
    std, entropy, r_theta, r_phi = _non_local_at_init(seed)
    assert 0.5 < std < 2.0 and entropy < 0.95
    assert min(r_theta, r_phi) > 0.05, (r_theta, r_phi)
    std, entropy, r_theta, r_phi = _non_local_at_init(seed, glorot=True)
    assert std < 0.2 and entropy > 0.99 and max(r_theta, r_phi) < 0.05


@pytest.mark.parametrize("rank", [None, 2])
def test_context_gating_reference_and_frame_level(rank):
    y = RNG.normal(size=(3, 6)).astype("float32")
    layer = ContextGating(rank=rank)
    out = keras.ops.convert_to_numpy(layer(y))
    w = [keras.ops.convert_to_numpy(v) for v in layer.weights]
    logits = (y @ w[0] + w[1]) if rank is None else (y @ w[0] @ w[1] + w[2])
    np.testing.assert_allclose(out, y / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    assert layer.count_params() == (36 + 6 if rank is None else 2 * 12 + 6)
    frames = RNG.normal(size=(2, 5, 6)).astype("float32")
    frames[0, 3:] = 0
    per_frame = keras.ops.convert_to_numpy(layer(frames))
    np.testing.assert_allclose(per_frame[1, 2], keras.ops.convert_to_numpy(layer(frames[1:, 2]))[0], rtol=1e-5)
    assert np.all(per_frame[0, 3:] == 0)


def test_context_gating_refuses_batch_norm_per_frame():
    with pytest.raises(ValueError, match="video-level"):
        ContextGating(batch_norm=True)(np.zeros((2, 3, 4), "float32"))
    assert ContextGating(batch_norm=True)(np.ones((2, 4), "float32")).shape == (2, 4)


def test_moe_matches_reference():
    h = RNG.normal(size=(2, 5)).astype("float32")
    layer = MixtureOfExperts(num_experts=3, num_classes=7)
    out = keras.ops.convert_to_numpy(layer(h))
    gk, ek, eb = (keras.ops.convert_to_numpy(v) for v in (layer.gate_kernel, layer.expert_kernel,
                                                           layer.expert_bias))
    gates = softmax((h @ gk).reshape(2, 7, 4))[..., :3]
    experts = 1 / (1 + np.exp(-(h @ ek + eb).reshape(2, 7, 3)))
    np.testing.assert_allclose(out, (gates * experts).sum(-1), rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 5 * 7 * (2 * 3 + 1) + 7 * 3
    assert out.min() >= 0 and out.max() <= 1


def test_soft_bof_mean_over_real_frames():
    x, m = frames_and_mask()
    layer = SoftBoF(4)
    out = keras.ops.convert_to_numpy(layer([x, m]))
    w, b = (keras.ops.convert_to_numpy(v) for v in layer.weights)
    a = softmax(x @ w + b)
    for i, n in enumerate((6, 3, 1)):
        np.testing.assert_allclose(out[i], a[i, :n].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)
    empty = keras.ops.convert_to_numpy(layer([x, np.zeros_like(m)]))
    assert np.all(empty == 0)


def test_stacked_gru_ignores_padding_and_returns_all_final_states():
    x, m = frames_and_mask(counts=(6, 3, 2))
    layer = StackedGRU(4, num_layers=2)
    out = keras.ops.convert_to_numpy(layer([x, m]))
    assert out.shape == (3, 8)
    short = keras.ops.convert_to_numpy(layer([x[1:2, :3], m[1:2, :3]]))
    np.testing.assert_allclose(out[1], short[0], atol=1e-5)
    garbage = x.copy()
    garbage[m == 0] = 50.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([garbage, m])), out, atol=1e-6)
    assert not np.allclose(out[:, :4], out[:, 4:])  # both layers' states, not one twice


@pytest.mark.parametrize("layer, inputs", [
    (NetVLAD(3, name="v"), "frames"), (NetRVLAD(3), "frames"), (SoftBoF(3), "frames"),
    (StackedGRU(2, 2), "frames"), (NonLocalBlock(2), "clusters"), (ContextGating(rank=2), "vector"),
    (MixtureOfExperts(2, 5), "vector"), (FeatureSlice(1, 3), "vector"), (FlattenL2(), "clusters"),
])
def test_get_config_round_trip(layer, inputs):
    x, m = frames_and_mask()
    args = {"frames": [x, m], "clusters": x, "vector": x[:, 0]}[inputs]
    out = keras.ops.convert_to_numpy(layer(args))
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(args)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(args)), out, rtol=1e-6)


def test_bfloat16_layers_stay_close_to_float32():
    x, m = frames_and_mask(d=16)
    for cls, args in [(NetVLAD, (4,)), (SoftBoF, (4,))]:
        ref = cls(*args)
        low = cls(*args, dtype="bfloat16")
        ref_out = keras.ops.convert_to_numpy(ref([x, m]))
        low([x, m])
        low.set_weights(ref.get_weights())
        out = low([x, m])
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")), ref_out,
                                   atol=0.05)


@pytest.mark.parametrize("make, match", [
    (lambda: NetVLAD(0), r"number of clusters \(0\)"),
    (lambda: MixtureOfExperts(0), r"number of experts \(0\)"),
    (lambda: ContextGating(rank=0), r"gating rank \(0\)"),
    (lambda: FeatureSlice(3, 2), r"\[3:2\]"),
    (lambda: NonLocalBlock(-1), r"\(-1\)"),
])
def test_errors_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()
