"""The native frame reader (yt8m_kit/native): the same batches as tf's parser, bit for bit, and the
fallback to tf's parser for anything but the regular record layout."""


import numpy as np
import pytest
import tensorflow as tf

from yt8m_kit.data import dataset as data
from yt8m_kit.data import parsing
from yt8m_kit.data import synth
from yt8m_kit.errors import ConfigError, DataError
from yt8m_kit.data.sampling import sample_base, sample_indices


def _batches(pattern, batch, **kw):
    return [{k: v.numpy() for k, v in b.items()} for b in data.iterate(data.make_dataset(pattern, batch, **kw))]


def _assert_same(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, k
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("kw", [
    dict(frames="sample", num_samples=7), dict(frames="sample", num_samples=50, quantized=True),
    dict(frames="all"), dict(frames="all", pad_to_max=True),
    dict(frames="sample", num_samples=9, shuffle=True, seed=3, epochs=2, start_example=31),
    dict(frames="all", skip_bad=True), dict(frames="sample", num_samples=5, skip_bad=True, quantized=True)])
def test_native_batches_equal_tf_parser_batches(ops, frame_data, kw):
    pattern = f"{frame_data}/train*.tfrecord"
    _assert_same(_batches(pattern, 13, native=True, **kw), _batches(pattern, 13, native=False, **kw))


def test_long_videos_and_real_size_frames(ops, tmp_path):
    """Videos over 300 frames keep their first 300; real-size records (hundreds of frames)."""
    synth.generate(tmp_path, "frame", 12, seed=2, shards=1, min_frames=250, max_frames=360,
                   split_videos={"train": 12, "validate": 1, "test": 1})
    pattern = f"{tmp_path}/train*.tfrecord"
    for kw in (dict(frames="all"), dict(frames="sample", num_samples=300)):
        native_b = _batches(pattern, 5, native=True, **kw)
        _assert_same(native_b, _batches(pattern, 5, native=False, **kw))
    assert max(b["num_frames"].max() for b in native_b) == 300


def test_native_path_is_the_one_taken(ops, frame_data):
    """Regular blocks go the native way, a block with one irregular record goes through tf's parser."""
    s = next(iter(tf.data.TFRecordDataset(data.list_files(f"{frame_data}/train*.tfrecord")).batch(8)))
    taken = []

    def on_bad(parts, checks, f, r, e):
        kind = "native" if "serialized" in parts else "tf"
        mark = tf.py_function(lambda: taken.append(kind) or 0, [], tf.int32)
        with tf.control_dependencies([mark]):
            return {k: tf.identity(v) for k, v in parts.items()}, tf.identity(e)

    info = data.detect_format(data.list_files(f"{frame_data}/train*.tfrecord"))
    zeros = tf.zeros([8], tf.int64)
    finish = dict(frames="sample", num_samples=4, seed=0, quantized=False, pad_to_max=False, require_labels=False)
    data._parse_and_finish(s, tf.zeros([8], tf.int32), zeros, zeros, info, ops, on_bad, **finish)
    rng = np.random.default_rng(0)
    odd = synth.frame_example("odd", [1], rng.integers(0, 256, (3, 1000), dtype=np.uint8),
                              rng.integers(0, 256, (3, 128), dtype=np.uint8))
    s2 = tf.concat([s[:7], [odd]], 0)
    data._parse_and_finish(s2, tf.zeros([8], tf.int32), zeros, zeros, info, ops,
                           on_bad,
                           **dict(finish, frames="all"))
    assert taken == ["native", "tf"]


def test_layout_flags_everything_but_the_regular_encoding(ops):
    rng = np.random.default_rng(0)

    def rec(rgb, audio, **extra):
        seq = tf.train.SequenceExample.FromString(synth.frame_example("v", [1], rgb, audio))
        for key, rows in extra.items():
            fl = seq.feature_lists.feature_list[key]
            for row in rows:
                fl.feature.add().bytes_list.value.append(row)
        return seq.SerializeToString()

    ok_rgb, ok_audio = rng.integers(0, 256, (4, 1024), np.uint8), rng.integers(0, 256, (4, 128), np.uint8)
    two_values = tf.train.SequenceExample.FromString(rec(ok_rgb, ok_audio))
    two_values.feature_lists.feature_list["rgb"].feature[1].bytes_list.value.append(b"x")
    records = [rec(ok_rgb, ok_audio),  # regular
               rec(ok_rgb, ok_audio, extra=[b"abc"]),  # another feature list: ignored, still regular
               rec(ok_rgb[:, :1000], ok_audio),  # wrong rgb size
               rec(ok_rgb, ok_audio[:3]),  # unequal counts
               rec(ok_rgb[:0], ok_audio[:0]),  # no frames
               two_values.SerializeToString(),  # a frame with two values
               b"\x12\x05garbage"]  # malformed
    offsets, frames, regular = (t.numpy() for t in ops.yt8m_frame_layout(tf.constant(records)))
    assert regular.tolist() == [True, True, False, False, False, False, False]
    assert frames[:2].tolist() == [4, 4]
    out = ops.yt8m_gather_frames(tf.constant(records[:1]), offsets[:1], frames[:1], tf.constant([[3, -1, 0]], tf.int32),
                                 parsing.dequantize_table(), T=tf.uint8).numpy()
    np.testing.assert_array_equal(out[0, 0], np.concatenate([ok_rgb[3], ok_audio[3]]))
    np.testing.assert_array_equal(out[0, 1], 0)
    np.testing.assert_array_equal(out[0, 2], np.concatenate([ok_rgb[0], ok_audio[0]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="row 4 of record 0 is outside"):
        ops.yt8m_gather_frames(tf.constant(records[:1]), offsets[:1], frames[:1], tf.constant([[4]], tf.int32),
                               parsing.dequantize_table(), T=tf.uint8)


def test_sample_rows_equal_sample_indices(ops):
    rng = np.random.default_rng(5)
    ids = tf.constant([f"video{i}".encode() for i in range(200)])
    n = tf.constant(np.concatenate([[1, 2, 299, 300], rng.integers(1, 301, 196)]), tf.int32)
    for seed, repeat, k in ((0, 0, 300), (7, 3, 1), (123, 9, 1000)):
        want = sample_indices(n, ids, k, seed, repeat).numpy()
        got = ops.yt8m_sample_rows(sample_base(ids, seed, repeat), n, num_samples=k).numpy()
        np.testing.assert_array_equal(got, want)


def test_errors_are_the_tf_parsers_and_quantized_needs_sampling(ops, tmp_path, frame_data):
    rng = np.random.default_rng(1)
    recs = [synth.frame_example(f"v{i}", [i % 7], rng.integers(0, 256, (5, 1024), np.uint8),
                                rng.integers(0, 256, (5, 128), np.uint8)) for i in range(6)]
    recs[3] = synth.frame_example("bad-label", [99999], rng.integers(0, 256, (5, 1024), np.uint8),
                                  rng.integers(0, 256, (5, 128), np.uint8))
    recs[4] = synth.frame_example("short", [1], rng.integers(0, 256, (3, 1000), np.uint8),
                                  rng.integers(0, 256, (3, 128), np.uint8))
    path = tmp_path / "bad.tfrecord"
    synth.write_records(path, recs)
    for native_ in (True, False):  # record 3 (regular layout, bad label): the native path words it the same
        with pytest.raises(DataError, match="label out of range") as e:
            _batches(str(path), 4, native=native_)
        assert (e.value.file, e.value.record, str(e.value.value)) == (str(path), 3, "99999")
        ds = data.make_dataset(str(path), 4, native=native_, skip_bad=True)
        assert [i for b in data.iterate(ds) for i in b["id"].numpy().tolist()] == [b"v0", b"v1", b"v2", b"v5"]
        assert [r[1] for r in ds.skip_report.records] == [3, 4]
    # An irregular record before a bad label in the same block: tf's parser reports the first one.
    swapped = tmp_path / "swapped.tfrecord"
    synth.write_records(swapped, [recs[0], recs[4], recs[3], recs[5]])
    for native_ in (True, False):
        with pytest.raises(DataError, match="rgb frame has the wrong byte length") as e:
            _batches(str(swapped), 4, native=native_)
        assert (e.value.record, str(e.value.value)) == (1, "1000")
    with pytest.raises(ConfigError, match="quantized=True needs frames='sample'"):
        data.make_dataset(f"{frame_data}/train*.tfrecord", 4, quantized=True)


def test_quantized_batches_dequantise_to_the_float_batches(frame_data):
    pattern = f"{frame_data}/train*.tfrecord"
    q = _batches(pattern, 16, frames="sample", num_samples=11, quantized=True)
    f = _batches(pattern, 16, frames="sample", num_samples=11)
    assert q[0]["frames"].dtype == np.uint8
    for a, b in zip(q, f):
        np.testing.assert_array_equal(data.dequantize(a["frames"]), b["frames"])


def test_trainer_reads_uint8_and_its_step_dequantises(frame_data):
    """The trainer's dataset carries uint8 frames; a step on them equals a step on the float32 frames
    (same loss, same updated weights): the step dequantises, bit for bit."""
    import keras

    from yt8m_kit.train import trainer
    from yt8m_kit.train.config import TrainConfig
    from yt8m_kit.train.loop import make_train_dataset, make_train_step

    config = TrainConfig(model="netvlad_tiny", train=f"{frame_data}/train*.tfrecord", out="", steps=1,
                               batch_size=6, frames=5, seed=2)
    inputs, labels = next(iter(make_train_dataset(config, "frame", start_example=0)))
    assert inputs["frames"].dtype == tf.uint8 and inputs["frames"].shape[1:] == (5, 1152)
    results = []
    for x in (inputs, dict(inputs, frames=data.dequantize(inputs["frames"]))):
        strategy = tf.distribute.get_strategy()
        model, optimizer = trainer.build(config, strategy)
        loss = make_train_step(strategy, model, optimizer, config)(x, labels)
        results.append((float(loss), [v.numpy() for v in model.trainable_variables]))
        keras.backend.clear_session()
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_record_stream_keys_and_order(frame_data):
    """Keys decode to (file, record, epoch); files alternate record by record; one epoch or several."""
    files = data.list_files(f"{frame_data}/train*.tfrecord")
    per_file = [[r.numpy() for r in tf.data.TFRecordDataset(f)] for f in files]
    kw = dict(shuffle=False, seed=0, shuffle_buffer=1, num_parallel_reads=None)
    got = [(k.numpy(), s.numpy()) for k, s in data.record_stream(files, epochs=2, **kw)]
    f, r, e = (t.numpy() for t in data.split_key(tf.constant([k for k, _ in got])))
    n = sum(len(p) for p in per_file)
    assert len(got) == 2 * n and (e[:n] == 0).all() and (e[n:] == 1).all()
    assert all(s == per_file[fi][ri] for (_, s), fi, ri in zip(got, f, r))
    assert f[:4].tolist() == [0, 1, 0, 1] and r[:4].tolist() == [0, 0, 1, 1]
    one = [s.numpy() for _, s in data.record_stream(files, epochs=1, first_epoch=0, **kw)]
    assert one == [s for _, s in got[:n]]
    resumed = [(k.numpy(), s.numpy()) for k, s in data.record_stream(files, epochs=2, first_epoch=1, **kw)]
    assert resumed == got[n:]
