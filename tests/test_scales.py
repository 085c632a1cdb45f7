"""The frame-level models' scales (issue 24): at initialisation every batch norm normalises and every soft
assignment is peaked; batch norms over frames ignore padding and their inference statistics are not the
initial ones; the loss keeps its gradient on a confident miss; int8 keeps 1-D tensors; Soft-BoF is the
authors'; the averaging window follows the run; checkpoints written before the change predict as trained."""

import gc
import json
import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from yt8m_kit import AUDIO_DIM, FEATURE_DIM, RGB_DIM  # noqa: E402
from yt8m_kit.layers import DebiasedBatchNorm, MaskedBatchNorm  # noqa: E402
from yt8m_kit.models import create_model, list_models, model_info  # noqa: E402

FRAME_MODELS = [n for n in list_models() if model_info(n)["level"] == "frame"]
LEGACY = Path(__file__).parent / "data" / "legacy_3e259da"


def unit_frames(b=32, t=64, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(b, t, FEATURE_DIM)).astype("float32")
    return frames / np.linalg.norm(frames, axis=-1, keepdims=True)


@pytest.mark.parametrize("name", FRAME_MODELS)
def test_every_batch_norm_normalises_and_every_assignment_is_peaked_at_init(name):
    """Training mode, unit-norm random frames: each top-level batch norm's median feature std >= 0.5 (not
    swamped by its epsilon), each soft-assignment layer's mean entropy <= 0.97 log K (measured through its
    `assignments` method, which every such layer has)."""
    model = create_model(name)
    frames = unit_frames()
    inputs = {"frames": frames, "num_frames": np.full((len(frames),), frames.shape[1], "int32")}
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    soft = [layer for layer in model.layers if hasattr(layer, "cluster_kernel")]
    if name.startswith("gru"):  # unit-norm frames into the GRU, as the authors': it has no batch norm to measure
        assert not bns and not soft and model.get_layer("frame_l2") is not None
        return
    assert bns, f"{name} has no batch norm"  # every other frame model normalises its inputs (input_bn)
    assert all(hasattr(layer, "assignments") for layer in soft), [layer.name for layer in soft]
    probe = keras.Model(model.inputs, [layer.output for layer in bns] + [layer.input for layer in soft])
    outs = probe(inputs, training=True)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    stds = {}
    for layer, out in zip(bns, outs):
        out = keras.ops.convert_to_numpy(out).astype("float64").reshape(-1, out.shape[-1])
        stds[layer.name] = float(np.median(out.std(axis=0)))
    assert min(stds.values()) >= 0.5, stds
    for layer, (x, mask) in zip(soft, outs[len(bns):]):
        p = keras.ops.convert_to_numpy(layer.assignments([x, mask], training=True)).astype("float64")
        p = p.reshape(-1, p.shape[-1])
        assert np.allclose(p.sum(-1), 1, atol=1e-4)
        h = float(np.mean(-(p * np.log(p + 1e-30)).sum(-1)) / math.log(p.shape[-1]))
        assert h <= 0.97, (layer.name, h)
    del model, probe
    keras.backend.clear_session()
    gc.collect()


def test_masked_batch_norm_statistics_ignore_padding():
    """The moments are those of the real frames: padding (zeros or garbage, any length) changes neither the
    output of a real frame nor the moving statistics; padded rows come out 0."""
    rng = np.random.default_rng(1)
    real = rng.normal(2.0, 3.0, size=(2, 5, 4)).astype("float32")
    outs, moving = [], []
    for pad, value in ((0, 0.0), (3, 0.0), (7, 1e3)):
        bn = MaskedBatchNorm()
        x = np.concatenate([real, np.full((2, pad, 4), value, "float32")], axis=1)
        mask = np.concatenate([np.ones((2, 5), "float32"), np.zeros((2, pad), "float32")], axis=1)
        y = keras.ops.convert_to_numpy(bn([x, mask], training=True))
        assert np.all(y[:, 5:] == 0)
        outs.append(y[:, :5])
        moving.append(keras.ops.convert_to_numpy(bn.moving_variance))
    assert np.allclose(outs[0], outs[1], atol=1e-5) and np.allclose(outs[0], outs[2], atol=1e-5)
    assert np.allclose(outs[0].reshape(-1, 4).std(0), 1, atol=1e-3)
    assert np.allclose(moving[0], moving[2], rtol=1e-5)


def test_debiased_batch_norm_uses_the_batches_statistics_from_the_first_steps():
    """After 20 training steps on inputs of variance 0.09, inference normalises with the batches' moments
    (Keras' own still divides by ~sqrt(0.84)); train/bn_update's exact averages are used as they are."""
    from yt8m_kit.train.bn_update import update_batch_norm

    rng = np.random.default_rng(2)
    data = [(0.5 + 0.3 * rng.normal(size=(256, 8))).astype("float32") for _ in range(20)]
    debiased, plain = DebiasedBatchNorm(), keras.layers.BatchNormalization()
    for x in data:
        debiased(x, training=True)
        plain(x, training=True)
    test = (0.5 + 0.3 * rng.normal(size=(4096, 8))).astype("float32")
    y = keras.ops.convert_to_numpy(debiased(test, training=False))
    assert np.allclose(y.mean(0), 0, atol=0.1) and np.allclose(y.std(0), 1, atol=0.1)
    assert keras.ops.convert_to_numpy(plain(test, training=False)).std(0).max() < 0.5  # the lag it fixes

    x_in = keras.Input((8,), name="features")
    model = keras.Model({"features": x_in}, DebiasedBatchNorm(name="bn")(x_in))
    update_batch_norm(model, iter([{"features": x} for x in data[:5]]), 5)
    layer = model.get_layer("bn")
    assert float(layer.moving_weight.numpy()) == 1.0
    expected = np.mean([x.mean(0) for x in data[:5]], axis=0)
    assert np.allclose(layer.moving_mean.numpy(), expected, atol=1e-6)
    y = keras.ops.convert_to_numpy(model({"features": data[0]}, training=False))
    assert np.allclose(y.std(0), 1, atol=0.15)


def _grad_wrt_logit(loss_of_logits, logit):
    z = tf.Variable(logit)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(loss_of_logits(z))
    return tape.gradient(loss, z).numpy()


@pytest.mark.parametrize("target", [1.0, 0.75])  # 1: the labels; 0.75: a distillation target lam * teacher + ...
def test_loss_gradient_does_not_vanish_on_a_confident_miss(target):
    """p = 1e-9 on a (soft) positive: the gradient through the sigmoid is -(target - p), not 0 as with the
    clip to [1e-6, 1 - 1e-6]; likewise p = 1 - 1e-7 on a negative."""
    from yt8m_kit.train.loop import cross_entropy

    logit = np.float32(np.log(1e-9))  # sigmoid(logit) = 1e-9
    labels = tf.constant([[target, 0.0]])
    g = _grad_wrt_logit(lambda z: cross_entropy(labels, tf.sigmoid(tf.stack([[z, np.float32(-16.0)]]))), logit)
    assert g == pytest.approx(-target, rel=1e-3)
    g = _grad_wrt_logit(lambda z: cross_entropy(tf.constant([[0.0]]), tf.sigmoid(tf.reshape(z, (1, 1)))),
                        np.float32(10.0))  # p = 1 - 4.5e-5 on a negative
    assert g == pytest.approx(1.0, rel=1e-2)
    # p exactly 1 in float32 (a saturated expert): a finite gradient into the MoE's gate, not 1e30 (-> NaN)
    gate = tf.Variable([[0.0, 0.0]])
    with tf.GradientTape() as tape:
        p = tf.reduce_sum(tf.nn.softmax(gate) * tf.sigmoid(tf.constant([[40.0, 40.0]])), -1, keepdims=True)
        loss = cross_entropy(tf.constant([[0.0]]), p)
    assert np.isfinite(tape.gradient(loss, gate).numpy()).all() and np.isfinite(loss.numpy()).all()
    # p rounded to just above 1 (a sum of gated sigmoids): a finite loss, not log of a negative number
    assert np.isfinite(cross_entropy(tf.constant([[0.0, 1.0]]), tf.constant([[1.0000001, 1.0000001]])).numpy()).all()
    assert np.isfinite(cross_entropy(tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 1.0]])).numpy()).all()


def test_mixture_branch_loss_gradient_does_not_vanish_on_a_confident_miss():
    from yt8m_kit.layers import BranchMixture

    layer = BranchMixture(temperature=3.0, distill_weight=0.0)
    labels = tf.constant([[1.0, 0.0]])

    def loss(z):
        branch = tf.stack([[z, np.float32(-5.0)]])
        layer([tf.zeros((1, 2)), branch, branch + 1.0])  # two branches, as the model has several
        return layer.training_loss(labels)

    assert _grad_wrt_logit(loss, np.float32(np.log(1e-9))) == pytest.approx(-2.0, rel=1e-3)
    assert _grad_wrt_logit(loss, np.float32(-200.0)) == pytest.approx(-2.0, rel=1e-3)  # any logit: stable


def test_int8_keeps_one_dimensional_tensors_float32_on_a_batch_norm_model():
    """A Soft-BoF with 4,096 histogram channels: its batch norm's moving variances spread over orders of
    magnitude come back exactly (one scale for all of them rounded all but the largest to 0), the planner's
    byte count is what is written, and the 2-D kernels are still int8."""
    from yt8m_kit.ensemble import precision as Q

    model = create_model("soft_bof_4k_tiny", num_clusters=4096, pooling="mean")
    bn = model.get_layer("bof_bn")
    spread = np.logspace(-9, 0, 4096).astype("float32")
    bn.moving_variance.assign(spread)
    stored, int8_bytes = {}, 0
    for w in model.weights:
        value = keras.ops.convert_to_numpy(w)
        arrays = Q.storage_arrays(value, "int8")
        stored[w.path] = arrays
        int8_bytes += sum(a.nbytes for a in arrays.values())
        if value.ndim == 1:
            assert list(arrays) == [""] and arrays[""].dtype == np.float32
    assert np.array_equal(stored[bn.moving_variance.path][""], spread)
    kernel = model.get_layer("soft_bof").cluster_kernel
    assert set(stored[kernel.path]) == {"int8", "scale"}
    assert Q.storage_bytes([keras.ops.convert_to_numpy(w) for w in model.weights], "int8") == int8_bytes


def test_soft_bof_is_per_modality_sum_pooled_and_l2_normalised():
    model = create_model("soft_bof_4k_tiny")
    rgb, audio = model.get_layer("rgb_soft_bof"), model.get_layer("audio_soft_bof")
    assert rgb.cluster_kernel.shape == (RGB_DIM, 32) and audio.cluster_kernel.shape == (AUDIO_DIM, 4)
    probe = keras.Model(model.inputs, [rgb.output, audio.output])
    frames = np.random.default_rng(3).normal(size=(3, 10, FEATURE_DIM)).astype("float32")
    out = [keras.ops.convert_to_numpy(o) for o in probe({"frames": frames, "num_frames": np.array([10, 4, 0])})]
    for o in out:
        assert np.allclose(np.linalg.norm(o[:2], axis=-1), 1, atol=1e-5) and np.all(o[2] == 0)  # 0 frames: zeros
    # sum-pooled: the histogram of the first 4 frames, L2-normalised (a mean would sum to 1)
    layer_in = probe.get_layer("rgb_soft_bof").input
    x, mask = keras.Model(model.inputs, layer_in)({"frames": frames, "num_frames": np.array([10, 4, 0])})
    a = keras.ops.convert_to_numpy(rgb.assignments([x, mask], training=False))[1, :4].sum(0)
    assert np.allclose(out[0][1], a / np.linalg.norm(a), atol=1e-5)


def test_averaging_window_follows_the_run():
    from yt8m_kit.train.averaging import default_window
    from yt8m_kit.train.config import checkpoint_spacing

    assert checkpoint_spacing(300_000) == 10_000 and checkpoint_spacing(30_000) == 1000
    assert checkpoint_spacing(100_000) == 4000 and checkpoint_spacing(50) == 1000
    every = [(s, f"ckpt-{s}") for s in range(10_000, 300_001, 10_000)]  # the trainer's defaults, all kept
    chosen, note = default_window(every)
    assert [s for s, _ in chosen] == list(range(210_000, 300_001, 10_000)) and note is None
    close = [(s, f"ckpt-{s}") for s in range(296_000, 300_001, 1000)]  # --keep 5 --checkpoint-every 1000
    chosen, note = default_window(close)
    assert len(chosen) == 5 and "spanning 4000 steps" in note and "--keep 10" in note
    chosen, _ = default_window([(s, str(s)) for s in (100, 200, 300)])
    assert [s for s, _ in chosen] == [300]  # 100 and 200 are outside the last third


@pytest.mark.parametrize("name", ["soft_bof_4k_tiny", "lfnl_netvlad_tiny"])
def test_checkpoints_written_before_the_change_predict_as_trained(name):
    """Checkpoints trained 30 steps by commit 3e259da (model.json without the new fields), with that commit's
    predictions on fixed frames: today's code builds them as they were and predicts the same."""
    from yt8m_kit.train.checkpoint import load_model

    expected = np.load(LEGACY / "predictions.npz")
    assert "input_bn" not in json.loads((LEGACY / name / "model.json").read_text())["overrides"]
    model, _ = load_model(str(LEGACY / name))
    assert all(layer.name != "input_bn" for layer in model.layers)
    out = model({"frames": expected["frames"], "num_frames": expected["num_frames"]}, training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected[name], atol=1e-6)


def test_relational_synth_labels_live_only_in_the_pair(tmp_path):
    """--relations: a video has label c exactly when it shows both of c's parts; single parts (decoys) show
    up in videos without the label, so a part alone does not give the label away."""
    from yt8m_kit.data import synth, synth_videos
    from yt8m_kit.data.quantization import dequantize

    summary = synth.generate(tmp_path, "frame", 60, 4, shards=1, classes=8, max_frames=60, relations=True,
                             split_videos={"train": 60, "validate": 1, "test": 1})
    assert summary["relations"] is True
    parts = synth_videos.relational_world(4, 8)  # (C, 2, WORDS, D)
    class_ids = summary["class_indices"]
    both = single = agree = videos = 0
    for record in tf.data.TFRecordDataset(summary["splits"]["train"]["files"]):
        ex = tf.train.SequenceExample.FromString(record.numpy())
        labels = set(ex.context.feature["labels"].int64_list.value)
        fl = ex.feature_lists.feature_list
        q = np.stack([np.concatenate([np.frombuffer(r.bytes_list.value[0], np.uint8),
                                      np.frombuffer(a.bytes_list.value[0], np.uint8)])
                      for r, a in zip(fl["rgb"].feature, fl["audio"].feature)])
        if len(q) < 3:
            continue  # the median below would remove the video's only frames
        x = dequantize(q)
        x = x - np.median(x, axis=0)  # the video's offset
        for c, cid in enumerate(class_ids):
            words = parts[c].reshape(-1, FEATURE_DIM)  # (2 * WORDS, D)
            score = (x @ words.T) / (words ** 2).sum(-1)  # ~1 on a frame showing that word, ~0 otherwise
            shown = [bool((score[:, k * synth_videos.WORDS_PER_CLASS:(k + 1) * synth_videos.WORDS_PER_CLASS] > 0.5).any())
                     for k in (0, 1)]
            both += all(shown)
            single += shown[0] != shown[1] and cid not in labels
            agree += all(shown) == (cid in labels)
            videos += 1
    assert agree / videos > 0.99, agree / videos
    assert single > 0.5 * both  # decoys: parts shown alone, without the label
