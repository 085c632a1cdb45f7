"""Synthetic data: exact real format, reproducible bytes, the promised structure."""

import json

import numpy as np
import tensorflow as tf

from yt8m_kit.data import synth


def _records(files):
    return [r.numpy() for f in files for r in tf.data.TFRecordDataset(f)]


def test_frame_format_matches_real_schema(frame_data):
    summary = json.loads((frame_data / "summary.json").read_text())
    assert summary["classes"] == 50 and len(summary["splits"]["train"]["files"]) == 2
    top50 = set(summary["class_indices"])
    train = [tf.train.SequenceExample.FromString(r) for r in _records(summary["splits"]["train"]["files"])]
    assert len(train) == 120
    for s in train[:20]:
        rgb = s.feature_lists.feature_list["rgb"].feature
        audio = s.feature_lists.feature_list["audio"].feature
        assert len(rgb) == len(audio) >= 1
        assert all(len(f.bytes_list.value) == 1 and len(f.bytes_list.value[0]) == 1024 for f in rgb)
        assert all(len(f.bytes_list.value[0]) == 128 for f in audio)
        assert len(s.context.feature["id"].bytes_list.value) == 1
        assert set(s.context.feature["labels"].int64_list.value) <= top50
    test = [tf.train.SequenceExample.FromString(r) for r in _records(summary["splits"]["test"]["files"])]
    assert all("labels" not in s.context.feature for s in test)
    ids = [s.context.feature["id"].bytes_list.value[0] for s in train + test]
    assert len(set(ids)) == len(ids)
    assert sum(1 for _ in open(frame_data / "test_solution.csv")) == 121


def test_video_format(video_data):
    summary = json.loads((video_data / "summary.json").read_text())
    e = tf.train.Example.FromString(_records(summary["splits"]["validate"]["files"])[0])
    f = e.features.feature
    assert len(f["mean_rgb"].float_list.value) == 1024 and len(f["mean_audio"].float_list.value) == 128
    assert len(f["labels"].int64_list.value) >= 1 and len(f["id"].bytes_list.value) == 1


def test_reproducible_bytes_and_seed_matters(tmp_path):
    kw = dict(shards=2, classes=20, max_frames=30)
    a = synth.generate(tmp_path / "a", "frame", 12, seed=3, **kw)
    b = synth.generate(tmp_path / "b", "frame", 12, seed=3, **kw)
    c = synth.generate(tmp_path / "c", "frame", 12, seed=4, **kw)
    for split in synth.SPLITS:
        for fa, fb, fc in zip(a["splits"][split]["files"], b["splits"][split]["files"], c["splits"][split]["files"]):
            assert open(fa, "rb").read() == open(fb, "rb").read()
            assert open(fa, "rb").read() != open(fc, "rb").read()
    # the videos do not depend on the shard count
    d = synth.generate(tmp_path / "d", "frame", 12, seed=3, shards=3, classes=20, max_frames=30)
    assert _records(a["splits"]["train"]["files"]) == _records(d["splits"]["train"]["files"])


def test_lengths_labels_and_frequencies(tmp_path):
    s = synth.generate(tmp_path, "frame", 1, seed=0, shards=1, split_videos={"train": 150})
    seqs = [tf.train.SequenceExample.FromString(r) for r in _records(s["splits"]["train"]["files"])]
    lengths = np.array([len(q.feature_lists.feature_list["rgb"].feature) for q in seqs])
    labels = [list(q.context.feature["labels"].int64_list.value) for q in seqs]
    assert (lengths <= 5).sum() >= 3 and (lengths > 300).sum() >= 1 and lengths.max() <= 360
    assert 50 <= lengths.mean() <= 120
    assert 2.3 <= np.mean([len(x) for x in labels]) <= 3.7
    counts = np.bincount(np.concatenate(labels), minlength=3862)
    assert counts[:50].sum() > counts[-3000:].sum()  # vocabulary (or Zipf) frequencies: head dominates


def test_min_frames_gives_uniform_real_size_lengths(tmp_path):
    s = synth.generate(tmp_path, "frame", 1, seed=0, shards=1, split_videos={"train": 40}, min_frames=120,
                       max_frames=330)
    files = s["splits"]["train"]["files"]
    seqs = [tf.train.SequenceExample.FromString(r) for r in _records(files)]
    lengths = np.array([len(q.feature_lists.feature_list["rgb"].feature) for q in seqs])
    assert lengths.min() >= 120 and lengths.max() <= 330 and lengths.std() > 30
    kib = sum(len(r) for r in _records(files)) / len(seqs) / 1024
    assert 1.1 * lengths.mean() <= kib <= 1.2 * lengths.mean()  # ~1171 bytes a frame: ~263 KB at 225 frames
    assert synth.main(["--out", str(tmp_path / "o"), "--level", "frame", "--videos", "2", "--min-frames", "400"]) == 2


def test_structure_is_learnable_by_a_centroid(video_data):
    """A per-class centroid on train beats chance clearly on validate: there is signal to learn."""
    from yt8m_kit.data import dataset as data

    def load(split):
        out = [b for b in data.iterate(data.make_dataset(f"{video_data}/{split}*.tfrecord", 64))]
        return np.concatenate([b["features"] for b in out]), np.concatenate([b["labels"] for b in out])

    xt, yt = load("train")
    xv, yv = load("validate")
    classes = np.flatnonzero(yt.sum(0) >= 5)
    aucs = []
    for c in classes:
        w = xt[yt[:, c] > 0].mean(0) - xt[yt[:, c] == 0].mean(0)
        score, pos = xv @ w, yv[:, c] > 0
        if 0 < pos.sum() < len(pos):
            aucs.append((score[pos][:, None] > score[~pos][None, :]).mean())
    assert len(aucs) >= 3 and np.mean(aucs) > 0.75


def test_cli_writes_and_rejects_bad_values(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path / "o"), "--level", "video", "--videos", "4", "--seed", "1",
                       "--shards", "1", "--classes", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*.tfrecord")) == [
        "test0000.tfrecord", "train0000.tfrecord", "validate0000.tfrecord"]
    assert synth.main(["--out", str(tmp_path / "p"), "--level", "video", "--videos", "4", "--classes", "0"]) == 2
    assert "classes must be in 1..3862" in capsys.readouterr().err


def test_yt8m_data_points_the_real_data_lookups_elsewhere(tmp_path, monkeypatch):
    """The real-data tests, benches and synth's default vocabulary look in $YT8M_DATA when it is set."""
    from yt8m_kit.data import synth as synth_lib

    monkeypatch.setenv("YT8M_DATA", str(tmp_path))
    assert synth_lib.real_data_dir() == tmp_path and synth_lib.shared_vocabulary() is None
    (tmp_path / "vocabulary.csv").write_text("Index,TrainVideoCount\n")
    assert synth_lib.shared_vocabulary() == tmp_path / "vocabulary.csv"
