"""Readers: exact values against independent protobuf parsing, sampling, order, resume, bad input."""

import struct

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kit.data import dataset as data
from yt8m_kit.data import synth
from yt8m_kit.errors import ConfigError, DataError


def _collect(ds):
    out = {}
    for b in data.iterate(ds):
        for k, v in b.items():
            out.setdefault(k, []).append(v.numpy())
    return out


def _raw(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def _offsets(path):
    """Byte offset of each record: 8-byte length, 4-byte CRC, payload, 4-byte CRC."""
    blob, offs, pos = open(path, "rb").read(), [], 0
    while pos < len(blob):
        offs.append(pos)
        (n,) = struct.unpack("<Q", blob[pos:pos + 8])
        pos += 16 + n
    return offs


def _frame_records(n, rng, frames=5):
    return [synth.frame_example(f"v{i}", [i % 7], rng.integers(0, 256, (frames, 1024), dtype=np.uint8),
                                rng.integers(0, 256, (frames, 128), dtype=np.uint8)) for i in range(n)]


def test_dequantize_matches_formula_and_roundtrips():
    q = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(data.dequantize(q), q.astype(np.float64) * 4 / 255 - 2 + 4 / 512, atol=1e-6)
    np.testing.assert_array_equal(data.dequantize(tf.constant(q)).numpy(), data.dequantize(q))
    x = np.linspace(-2, 2, 1001)
    assert np.abs(data.dequantize(data.quantize(x)) - x).max() <= 4 / 255 / 2 + 4 / 512 + 1e-6
    np.testing.assert_array_equal(data.quantize(data.dequantize(q)), q)
    assert data.quantize(np.array([-9.0, 9.0])).tolist() == [0, 255]


def test_list_files_sorted_comma_and_error(frame_data):
    files = data.list_files(f"{frame_data}/validate*.tfrecord,{frame_data}/train*.tfrecord")
    assert files == sorted(files) and len(files) == 4
    with pytest.raises(ConfigError, match="nothing-here"):
        data.list_files(f"{frame_data}/nothing-here*")


def test_real_video_shards_exact(real_video_dir):
    from yt8m_kit.data.inspect import inspect_files

    files = sorted(real_video_dir.glob("*.tfrecord"))[:3]
    pattern = ",".join(map(str, files))
    got = _collect(data.make_dataset(pattern, 128, level="video"))
    raw = [tf.train.Example.FromString(r) for f in files for r in _raw(f)]
    report = inspect_files(pattern)
    assert [p["videos"] for p in report["per_file"]] == [len(_raw(f)) for f in files]
    assert report["ok"] and report["version"] == 2018 and report["level"] == "video"
    by_id = {e.features.feature["id"].bytes_list.value[0]: e for e in raw}
    ids = np.concatenate(got["id"])
    assert len(ids) == len(raw) == report["videos"] and set(ids) == set(by_id)
    feats, labels = np.concatenate(got["features"]), np.concatenate(got["labels"])
    for i in range(0, len(ids), 37):
        f = by_id[ids[i]].features.feature
        want = np.concatenate([f["mean_rgb"].float_list.value, f["mean_audio"].float_list.value])
        np.testing.assert_array_equal(feats[i], want.astype(np.float32))
        assert np.flatnonzero(labels[i]).tolist() == sorted(f["labels"].int64_list.value)
    rids, rlabels = data.read_ids_and_labels(pattern)
    assert [r.encode() for r in rids] == [e.features.feature["id"].bytes_list.value[0] for e in raw]
    assert [lab.tolist() for lab in rlabels] == [list(e.features.feature["labels"].int64_list.value) for e in raw]


def test_frame_level_exact_values_and_padding(frame_data):
    pattern = f"{frame_data}/validate*.tfrecord"
    got = _collect(data.make_dataset(pattern, 16))
    seqs = {}
    for f in data.list_files(pattern):
        for r in _raw(f):
            s = tf.train.SequenceExample.FromString(r)
            seqs[s.context.feature["id"].bytes_list.value[0]] = s
    assert sum(len(i) for i in got["id"]) == len(seqs) == 120
    for ids, frames, nf, labels in zip(got["id"], got["frames"], got["num_frames"], got["labels"]):
        assert frames.shape[1] == nf.max()  # T = longest video of the batch
        for i, vid in enumerate(ids):
            s = seqs[vid]
            rgb = np.stack([np.frombuffer(f.bytes_list.value[0], np.uint8) for f in s.feature_lists.feature_list["rgb"].feature])
            aud = np.stack([np.frombuffer(f.bytes_list.value[0], np.uint8) for f in s.feature_lists.feature_list["audio"].feature])
            assert nf[i] == len(rgb)
            np.testing.assert_array_equal(frames[i, :nf[i]], data.dequantize(np.concatenate([rgb, aud], 1)))
            assert not frames[i, nf[i]:].any()
            assert np.flatnonzero(labels[i]).tolist() == sorted(s.context.feature["labels"].int64_list.value)


def test_long_video_keeps_300_frames_and_pad_to_max(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "long.tfrecord"
    synth.write_records(path, _frame_records(1, rng, frames=320) + _frame_records(1, rng, frames=3))
    b = next(data.iterate(data.make_dataset(str(path), 2)))
    assert b["frames"].shape == (2, 300, 1152) and b["num_frames"].numpy().tolist() == [300, 3]
    b = next(data.iterate(data.make_dataset(str(path), 2, pad_to_max=True, start_example=1)))
    assert b["frames"].shape == (1, 300, 1152) and not b["frames"].numpy()[0, 3:].any()


def test_sample_frames_stateless_sorted_and_real():
    B, T = 6, 50
    nf = tf.constant([1, 2, 5, 17, 50, 3])
    frames = tf.tile(tf.range(T, dtype=tf.float32)[None, :, None], [B, 1, 2])  # value = frame index
    ids = tf.constant([f"id{i}" for i in range(B)])
    a, n = data.sample_frames(frames, nf, ids, 20, seed=3, repeat_index=0)
    idx = a.numpy()[:, :, 0]
    assert a.shape == (B, 20, 2) and n.numpy().tolist() == [20] * B
    assert (np.diff(idx, axis=1) >= 0).all() and (idx < nf.numpy()[:, None]).all() and (idx >= 0).all()
    assert len(np.unique(idx[4])) > 5  # uniform over 50 frames, not a constant
    again, _ = data.sample_frames(frames, nf, ids, 20, seed=3, repeat_index=0)
    np.testing.assert_array_equal(again, a)
    rev, _ = data.sample_frames(frames[::-1], nf[::-1], ids[::-1], 20, seed=3, repeat_index=0)
    np.testing.assert_array_equal(rev.numpy()[::-1], a)  # depends on id, not on batch position
    other, _ = data.sample_frames(frames, nf, ids, 20, seed=4, repeat_index=0)
    assert not np.array_equal(other.numpy()[3:5], a.numpy()[3:5])
    # R repeats as one batch of B*R rows == R separate calls
    R = 3
    tiled, _ = data.sample_frames(tf.repeat(frames, R, 0), tf.repeat(nf, R), tf.repeat(ids, R), 20, seed=3,
                                  repeat_index=tf.tile(tf.range(R), [B]))
    for r in range(R):
        one, _ = data.sample_frames(frames, nf, ids, 20, seed=3, repeat_index=r)
        np.testing.assert_array_equal(tiled.numpy()[r::R], one)
    # sample_repeats (inference's one-gather batch, repeat-major) == the R calls concatenated
    fused, n = data.sample_repeats(frames, nf, ids, 20, 3, R)
    want = tf.concat([data.sample_frames(frames, nf, ids, 20, seed=3, repeat_index=r)[0] for r in range(R)], 0)
    np.testing.assert_array_equal(fused, want)
    assert n.numpy().tolist() == [20] * (R * B)


def test_sampled_dataset_reproducible_per_epoch_and_batch_independent(frame_data):
    pattern = f"{frame_data}/train*.tfrecord"
    kw = dict(frames="sample", num_samples=7, seed=5, epochs=2)
    a = _collect(data.make_dataset(pattern, 8, **kw))
    b = _collect(data.make_dataset(pattern, 13, **kw))
    ids_a, fa = np.concatenate(a["id"]), np.concatenate(a["frames"])
    np.testing.assert_array_equal(ids_a, np.concatenate(b["id"]))
    np.testing.assert_array_equal(fa, np.concatenate(b["frames"]))
    assert fa.shape[1:] == (7, 1152) and (np.concatenate(a["num_frames"]) == 7).all()
    n = len(ids_a) // 2
    np.testing.assert_array_equal(ids_a[:n], ids_a[n:])
    assert not np.array_equal(fa[:n], fa[n:])  # epoch 1 samples other frames


@pytest.mark.parametrize("num_samples", [3, 400])  # fewer samples than real frames, and more
def test_sampled_batches_equal_sampling_the_dense_frames(tmp_path, num_samples):
    """Both decode orders of the sampling reader (gather strings then decode; decode every real frame
    then gather bytes) give exactly sample_frames() applied to the dense frames="all" batch."""
    rng = np.random.default_rng(1)
    path = tmp_path / "mixed.tfrecord"
    synth.write_records(path, [r for n in (1, 40, 7, 300, 2) for r in _frame_records(1, rng, frames=n)])
    dense = next(data.iterate(data.make_dataset(str(path), 5)))
    got = next(data.iterate(data.make_dataset(str(path), 5, frames="sample", num_samples=num_samples, seed=9)))
    want, n = data.sample_frames(dense["frames"], dense["num_frames"], dense["id"], num_samples, 9, 0)
    np.testing.assert_array_equal(got["frames"].numpy(), want.numpy())
    assert got["num_frames"].numpy().tolist() == n.numpy().tolist() == [num_samples] * 5


def test_resume_far_into_training_starts_at_the_right_epoch(frame_data):
    pattern = f"{frame_data}/validate*.tfrecord"  # 120 records
    kw = dict(shuffle=True, seed=3, shuffle_buffer=16, level="frame")
    full = np.concatenate(_collect(data.make_dataset(pattern, 25, epochs=4, **kw))["id"]).tolist()
    for start in (240, 250, 479):  # epoch boundary, inside epoch 2, the very last record
        assert np.concatenate(_collect(data.make_dataset(pattern, 25, epochs=4, start_example=start, **kw))[
            "id"]).tolist() == full[start:]
    assert data.count_records(data.list_files(pattern)) == 120


def test_shuffle_order_and_exact_resume(frame_data):
    pattern = f"{frame_data}/train*.tfrecord"

    def ids(**kw):
        return np.concatenate(_collect(data.make_dataset(pattern, 10, level="frame", **kw))["id"]).tolist()

    plain = ids()
    full = ids(shuffle=True, seed=1, epochs=2, shuffle_buffer=64)
    assert full == ids(shuffle=True, seed=1, epochs=2, shuffle_buffer=64)
    assert sorted(full[:120]) == sorted(plain) == sorted(full[120:]) and full[:120] != full[120:]
    assert full[:120] != ids(shuffle=True, seed=2, shuffle_buffer=64)
    assert ids(shuffle=True, seed=1, epochs=2, shuffle_buffer=64, start_example=157) == full[157:]


def _expect_error(path, record, match, value=None, **kw):
    with pytest.raises(DataError, match=match) as e:
        for _ in data.iterate(data.make_dataset(str(path), 4, **kw)):
            pass
    assert e.value.file == str(path) and e.value.record == record
    if value is not None:
        assert str(value) in str(e.value.value)
    return e.value


def test_crc_mismatch_and_truncation_name_file_and_record(frame_data, tmp_path):
    src = data.list_files(f"{frame_data}/train0000.tfrecord")[0]
    blob = bytearray(open(src, "rb").read())
    offs = _offsets(src)
    bad = tmp_path / "crc.tfrecord"
    blob[offs[5] + 40] ^= 0xFF  # inside record 5's payload
    bad.write_bytes(bytes(blob))
    _expect_error(bad, 5, "corrupt record")
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(open(src, "rb").read()[: offs[-1] + 100])
    _expect_error(cut, len(offs) - 1, "corrupt record")
    ds = data.make_dataset(str(cut), 4, skip_bad=True)
    n = sum(len(b["id"]) for b in data.iterate(ds))
    assert n == len(offs) - 1 and ds.skip_report.count == 1 and "rest of file" in str(ds.skip_report)
    assert ds.skip_report.records[0][:2] == (str(cut), len(offs) - 1)
    ds = data.make_dataset(str(bad), 4, skip_bad=True)
    assert sum(len(b["id"]) for b in data.iterate(ds)) == 5 and ds.skip_report.records[0][1] == 5


@pytest.mark.parametrize("kw", [dict(frames="sample", num_samples=7), dict(frames="all"),
                                dict(frames="all", pad_to_max=True), dict(frames="all", drop_remainder=True)])
def test_skip_bad_on_clean_data_gives_the_same_batches(frame_data, kw):
    """skip_bad parses each block once and rebatches finished records: same batches, same shapes."""
    pattern = f"{frame_data}/train*.tfrecord"
    plain = list(data.iterate(data.make_dataset(pattern, 23, level="frame", shuffle=True, seed=4, epochs=2, **kw)))
    ds = data.make_dataset(pattern, 23, level="frame", shuffle=True, seed=4, epochs=2, skip_bad=True, **kw)
    skipping = list(data.iterate(ds))
    assert len(plain) == len(skipping) > 2 and ds.skip_report.count == 0
    for a, b in zip(plain, skipping):
        assert set(a) == set(b)
        for k in a:
            assert a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_skip_bad_finds_corrupt_tails_while_reading(frame_data, tmp_path, monkeypatch):
    """No scan before reading (a whole extra pass over the data): the bytes read are checked against
    each file's size at its end; good files are never scanned, resume counts the readable prefixes."""
    from yt8m_kit.data import records

    src = data.list_files(f"{frame_data}/train*.tfrecord")
    offs = _offsets(src[0])
    (tmp_path / "a.tfrecord").write_bytes(open(src[0], "rb").read()[: offs[7] + 50])  # records 0..6 readable
    (tmp_path / "b.tfrecord").write_bytes(open(src[1], "rb").read())
    scanned = []
    real_scan = records.scan_file
    for module in (records, data):
        monkeypatch.setattr(module, "scan_file", lambda f: scanned.append(f) or real_scan(f))
    pattern = f"{tmp_path}/*.tfrecord"
    ds = data.make_dataset(pattern, 5, skip_bad=True, epochs=2, level="frame")
    assert scanned == []
    ids = np.concatenate(_collect(ds)["id"]).tolist()
    n_b = len(_offsets(src[1]))
    assert len(ids) == 2 * (7 + n_b) and ds.skip_report.count == 1
    assert set(scanned) == {str(tmp_path / "a.tfrecord")}
    assert data.count_records(data.list_files(pattern), skip_bad=True) == 7 + n_b
    resumed = data.make_dataset(pattern, 5, skip_bad=True, epochs=2, level="frame", start_example=9 + n_b)
    assert np.concatenate(_collect(resumed)["id"]).tolist() == ids[9 + n_b:]


def test_bad_records_named_and_skippable(tmp_path):
    rng = np.random.default_rng(1)
    recs = _frame_records(6, rng)
    recs[2] = synth.frame_example("short", [1], rng.integers(0, 256, (3, 1000), dtype=np.uint8),
                                  rng.integers(0, 256, (3, 128), dtype=np.uint8))
    recs[4] = synth.frame_example("empty", [1], np.zeros((0, 1024), np.uint8), np.zeros((0, 128), np.uint8))
    path = tmp_path / "bad.tfrecord"
    synth.write_records(path, recs)
    _expect_error(path, 2, "rgb frame has the wrong byte length", value=1000)
    ds = data.make_dataset(str(path), 4, skip_bad=True)
    ids = [i for b in data.iterate(ds) for i in b["id"].numpy().tolist()]
    assert ids == [b"v0", b"v1", b"v3", b"v5"]
    assert ds.skip_report.count == 2 and [r[1] for r in ds.skip_report.records] == [2, 4]
    ds = data.make_dataset(str(path), 4, skip_bad=True, epochs=3, shuffle=True)  # met 3 times, counted once
    assert sum(len(b["id"]) for b in data.iterate(ds)) == 12 and ds.skip_report.count == 2
    empty = tmp_path / "empty.tfrecord"
    synth.write_records(empty, recs[:2] + recs[4:])
    _expect_error(empty, 2, "0 frames")


def test_video_level_bad_sizes_labels_and_duplicates(tmp_path):
    good = [synth.video_example(f"v{i}", [i], np.zeros(1024), np.zeros(128)) for i in range(4)]
    path = tmp_path / "v.tfrecord"
    synth.write_records(path, good[:1] + [synth.video_example("x", [1], np.zeros(512), np.zeros(128))] + good[1:])
    _expect_error(path, 1, "mean_rgb has the wrong number of floats", value=512)
    synth.write_records(path, good + [synth.video_example("x", None, np.zeros(1024), np.zeros(128))])
    assert sum(len(b["id"]) for b in data.iterate(data.make_dataset(str(path), 4))) == 5
    _expect_error(path, 4, "no labels", require_labels=True)
    synth.write_records(path, good + [synth.video_example("x", [3862], np.zeros(1024), np.zeros(128))])
    _expect_error(path, 4, "label out of range", value=3862)
    synth.write_records(path, good + good[1:2])
    with pytest.raises(DataError, match="duplicate video id") as e:
        data.read_ids_and_labels(str(path))
    assert e.value.record == 4 and e.value.value == "v1"


def test_2017_files_detected_and_readable_on_request(tmp_path):
    path = tmp_path / "old.tfrecord"
    synth.write_records(path, [synth.video_example("a", [4700], np.zeros(1024), np.zeros(128), id_key="video_id")])
    with pytest.raises(DataError, match="2017.*allow_2017"):
        data.make_dataset(str(path), 2)
    assert data.detect_format([str(path)], allow_2017=True) == data.FormatInfo("video", 2017)
    b = next(data.iterate(data.make_dataset(str(path), 2, allow_2017=True)))
    assert b["labels"].shape == (1, 4716) and b["labels"].numpy()[0, 4700] == 1 and b["id"].numpy()[0] == b"a"
    assert data.read_ids_and_labels(str(path), allow_2017=True)[0] == ["a"]


def test_level_mismatch_is_config_error(video_data):
    with pytest.raises(ConfigError, match="video-level"):
        data.make_dataset(f"{video_data}/train*.tfrecord", 4, level="frame")


@pytest.mark.parametrize("label", [-1, -5])
@pytest.mark.parametrize("level", ["video", "frame"])
def test_a_negative_label_is_an_error_naming_file_record_and_value(level, label, tmp_path):
    """-1 used to pass silently (the reader's 'no bad label' sentinel was -1 too) and its video was
    trained and scored without it; every out-of-range label is now refused, in both parsers."""
    rng = np.random.default_rng(0)
    if level == "video":
        recs = [synth.video_example(f"v{i}", [i], np.zeros(1024), np.zeros(128)) for i in range(4)]
        recs[2] = synth.video_example("bad", [3, label], np.zeros(1024), np.zeros(128))
    else:
        frames = lambda: (rng.integers(0, 255, (5, 1024), dtype=np.uint8), rng.integers(0, 255, (5, 128), dtype=np.uint8))  # noqa: E731
        recs = [synth.frame_example(f"v{i}", [i], *frames()) for i in range(4)]
        recs[2] = synth.frame_example("bad", [3, label], *frames())
    path = tmp_path / "neg.tfrecord"
    synth.write_records(path, recs)
    for native in ((None, False) if level == "frame" else (None,)):
        _expect_error(path, 2, "label out of range", value=label, native=native)
    ds = data.make_dataset(str(path), 4, skip_bad=True)
    assert [i for b in data.iterate(ds) for i in b["id"].numpy().tolist()] == [b"v0", b"v1", b"v3"]
    from yt8m_kit.data.inspect import inspect_files

    report = inspect_files(str(path))
    assert report["corrupt"] and str(label) in str(report["corrupt"])
