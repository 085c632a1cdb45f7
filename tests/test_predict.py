"""The prediction loop: repeats averaged as one batch, seeds, all-frames, levels, shards, evaluation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from yt8m_kit import NUM_CLASSES
from yt8m_kit.data import dataset as data
from yt8m_kit.errors import ConfigError
from yt8m_kit.layers.numerics import masked_mean
from yt8m_kit.evaluate.predict_loop import (evaluate_checkpoint, model_level, parse_shard,
                              predict_batches, shard_files)

NUM_SAMPLES = 6  # small sub-samples: the fixture's videos have up to 40 frames


class MaskedMean(keras.layers.Layer):
    """Mean over each video's real frames (the probe's only pooling)."""

    def call(self, frames, num_frames):
        t = keras.ops.shape(frames)[1]
        mask = keras.ops.cast(keras.ops.expand_dims(keras.ops.arange(t), 0)
                              < keras.ops.expand_dims(num_frames, 1), frames.dtype)
        total = keras.ops.sum(frames * keras.ops.expand_dims(mask, -1), axis=1)
        count = keras.ops.maximum(keras.ops.cast(keras.ops.expand_dims(num_frames, 1), frames.dtype), 1.0)
        return total / count

    def compute_output_shape(self, frames_shape, num_frames_shape):
        return (frames_shape[0], frames_shape[2])


def probe_frame_model():
    """Frame-level: dropout (must be off at inference) + dense on the masked mean of frames."""
    frames = keras.Input((None, 1152), name="frames")
    num_frames = keras.Input((), name="num_frames", dtype="int32")
    pooled = MaskedMean()(frames, num_frames)
    pooled = keras.layers.Dropout(0.5)(pooled)
    out = keras.layers.Dense(NUM_CLASSES, activation="sigmoid",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=1))(pooled)
    return keras.Model({"frames": frames, "num_frames": num_frames}, out, name="probe_frame")


def probe_video_model():
    features = keras.Input((1152,), name="features")
    out = keras.layers.Dense(NUM_CLASSES, activation="sigmoid",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=2))(features)
    return keras.Model({"features": features}, out, name="probe_video")


@pytest.fixture(scope="module")
def frame_model():
    return probe_frame_model()


def collect(model, pattern, **kw):
    ids, scores, labels = [], [], []
    for i, s, l in predict_batches(model, pattern, num_samples=NUM_SAMPLES, **kw):
        ids.extend(i.tolist())
        scores.append(s)
        labels.append(l)
    return ids, np.concatenate(scores), np.concatenate(labels)


def raw_batches(pattern, batch_size=64):
    return list(data.iterate(data.make_dataset(pattern, batch_size, frames="all")))


def test_model_level_from_input_names(frame_model):
    assert model_level(frame_model) == "frame"
    assert model_level(probe_video_model()) == "video"
    x = keras.Input((3,), name="x")
    other = keras.Model(x, keras.layers.Dense(2)(x))
    with pytest.raises(ConfigError, match="expected 'frames'"):
        model_level(other)


def test_ten_repeats_average_ten_different_subsamples(frame_model, frame_data):
    pattern = str(frame_data / "validate*.tfrecord")
    ids, scores, _ = collect(frame_model, pattern, repeats=10, seed=3, batch_size=16)
    assert scores.shape == (len(ids), NUM_CLASSES) and scores.dtype == np.float32
    # Independent computation: each repeat sampled and scored on its own, then averaged.
    per_repeat = {r: [] for r in range(10)}
    for batch in raw_batches(pattern):
        b = batch["id"].shape[0]
        for r in range(10):
            f, n = data.sample_frames(batch["frames"], batch["num_frames"], batch["id"], NUM_SAMPLES, 3,
                                      tf.fill([b], r))
            per_repeat[r].append(frame_model({"frames": f, "num_frames": n}, training=False).numpy())
    stacked = np.stack([np.concatenate(per_repeat[r]) for r in range(10)])  # (R, N, C)
    np.testing.assert_allclose(scores, stacked.mean(0), rtol=1e-5, atol=1e-6)
    # The ten sub-samples really differ (for videos with more than one frame).
    for r in range(1, 10):
        assert not np.allclose(stacked[0], stacked[r])
    single = collect(frame_model, pattern, repeats=1, seed=3)[1]
    assert not np.allclose(single, scores)


def test_seeded_deterministic_and_batch_independent(frame_model, frame_data):
    pattern = str(frame_data / "test*.tfrecord")
    ids_a, a, _ = collect(frame_model, pattern, repeats=3, seed=7, batch_size=32)
    ids_b, b, _ = collect(frame_model, pattern, repeats=3, seed=7, batch_size=9)
    assert ids_a == ids_b
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # frames depend on (seed, id, r) only
    _, a2, _ = collect(frame_model, pattern, repeats=3, seed=7, batch_size=32)
    assert np.array_equal(a, a2)  # dropout off: inference mode
    _, c, _ = collect(frame_model, pattern, repeats=3, seed=8, batch_size=32)
    assert not np.allclose(a, c)


def test_all_frames_uses_every_frame_once(frame_model, frame_data):
    pattern = str(frame_data / "test*.tfrecord")
    ids, scores, _ = collect(frame_model, pattern, all_frames=True, seed=0)
    _, other_seed, _ = collect(frame_model, pattern, all_frames=True, seed=99)
    assert np.array_equal(scores, other_seed)
    expected = np.concatenate([frame_model({"frames": b["frames"], "num_frames": b["num_frames"]},
                                           training=False).numpy() for b in raw_batches(pattern)])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="repeats"):
        collect(frame_model, pattern, all_frames=True, repeats=3)


def test_video_model_on_frame_data_gets_masked_mean(frame_data, video_data, capsys):
    model = probe_video_model()
    pattern = str(frame_data / "test*.tfrecord")
    _, scores, _ = collect(model, pattern, repeats=4)
    # said, not silent (a video-level ensemble given frame-level files ran on the frames' mean without a word)
    assert f"is video level and {pattern} holds frame-level records" in capsys.readouterr().err
    batches = raw_batches(pattern)
    means = np.concatenate([masked_mean(b["frames"], b["num_frames"]).numpy() for b in batches])
    np.testing.assert_allclose(scores, model({"features": means}).numpy(), rtol=1e-5, atol=1e-6)
    # numpy check of masked_mean itself: padding never counts
    b = batches[0]
    n0 = int(b["num_frames"][0])
    np.testing.assert_allclose(means[0], b["frames"][0, :n0].numpy().mean(0), rtol=1e-5, atol=1e-6)
    # video-level data goes straight in; a frame model on it is refused
    _, vscores, labels = collect(model, str(video_data / "validate*.tfrecord"))
    assert vscores.shape[1] == NUM_CLASSES and labels.sum() > 0
    with pytest.raises(ConfigError, match="frame level"):
        collect(probe_frame_model(), str(video_data / "test*.tfrecord"))


def test_shards_split_videos_exactly_once(frame_model, frame_data):
    pattern = str(frame_data / "test*.tfrecord")
    all_ids = collect(frame_model, pattern, repeats=1)[0]
    parts = [collect(frame_model, pattern, repeats=1, shard=(i, 2))[0] for i in range(2)]
    assert parts[0] and parts[1] and not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(all_ids)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "-1/2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="at most 2 shards"):
        shard_files(["a", "b"], (0, 3))


def test_evaluate_checkpoint_matches_direct_scoring(frame_data, tmp_path):
    from yt8m_kit.train.checkpoint import save_checkpoint
    from yt8m_kit.evaluate.metrics import Evaluator
    from yt8m_kit.models import create_model, list_models
    from yt8m_kit.evaluate.prediction_files import load_predictions

    name = "soft_bof_4k_tiny" if "soft_bof_4k_tiny" in list_models() else list_models("*_tiny")[0]
    model = create_model(name)
    save_checkpoint(tmp_path / "run", 1, model, {"model": name, "overrides": {}, "level": "frame", "step": 1})
    pattern = str(frame_data / "validate*.tfrecord")
    h5 = tmp_path / "pred.h5"
    result = evaluate_checkpoint(tmp_path / "run", pattern, repeats=2, seed=5, batch_size=16,
                                 save_predictions=str(h5))
    assert set(result) >= {"gap", "hit_at_1", "perr", "map", "videos"}
    ev = Evaluator()
    for _, scores, labels in predict_batches(model, pattern, repeats=2, seed=5, batch_size=16):
        ev.add(scores, labels)
    direct = ev.result()
    assert result["videos"] == direct["videos"] > 0
    assert result["gap"] == pytest.approx(direct["gap"], abs=1e-6)
    saved = load_predictions(h5)
    assert len(saved["ids"]) == result["videos"] and saved["attrs"]["repeats"] == 2
    assert saved["attrs"]["seed"] == 5 and len(saved["attrs"]["checkpoint_fingerprint"]) > 8


def test_xla_step_matches_and_is_opt_in(frame_data, monkeypatch):
    """xla=True wraps the model call in a jit-compiled function (one graph for a whole ensemble),
    with the uncompiled scores; the default stays uncompiled (XLA doubles the peak memory)."""
    from yt8m_kit.ensemble import artifact as ensemble
    from yt8m_kit.evaluate.predict_loop import make_step

    small = {"num_clusters": 16, "hidden_size": 8}
    model = ensemble.build_ensemble([{"model": "soft_bof_4k", "overrides": small, "precision": "float32", "run": "a"},
                                     {"model": "lfnl_netvlad_tiny", "overrides": {}, "precision": "float32", "run": "b"}])
    pattern = f"{frame_data}/validate*.tfrecord"
    ids_c, compiled, _ = collect(model, pattern, repeats=3, batch_size=16, xla=True)
    ids_u, plain, _ = collect(model, pattern, repeats=3, batch_size=16)
    assert ids_c == ids_u and len(ids_c) > 16
    np.testing.assert_allclose(compiled, plain, rtol=1e-5, atol=1e-6)
    cfg = dict(model_level_="frame", data_level="frame", repeats=3, seed=0, num_samples=NUM_SAMPLES, all_frames=False)
    assert make_step(model, **cfg) is make_step(model, xla=False, **cfg) is not make_step(model, xla=True, **cfg)

    jit = []  # which new steps wrap the model call in a jit_compile function
    real_function = tf.function
    monkeypatch.setattr(tf, "function", lambda *a, **kw: jit.append(kw.get("jit_compile")) or real_function(*a, **kw))
    for xla in (False, True):
        jit.clear()
        make_step(model, xla=xla, **dict(cfg, seed=7))
        assert (True in jit) == xla
