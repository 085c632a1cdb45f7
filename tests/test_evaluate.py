"""python -m yt8m_kit.evaluate end to end on tiny generated video-level records."""

import json
import sys
import types

import numpy as np
import pytest

from yt8m_kit.errors import DataError
from yt8m_kit.evaluate.cli import evaluate_csv, main
from yt8m_kit.evaluate.metrics import Evaluator, top_k
from yt8m_kit.kaggle.submission_csv import CsvWriter

NUM_VIDEOS, CLASSES = 30, 12


def write_records(path, ids, labels):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for video_id, labs in zip(ids, labels):
            feature = {
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id.encode()])),
                "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=list(labs))),
                "mean_rgb": tf.train.Feature(float_list=tf.train.FloatList(value=rng.random(1024))),
                "mean_audio": tf.train.Feature(float_list=tf.train.FloatList(value=rng.random(128))),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Two shards of labelled video-level records, scores for them, and a CSV missing 4 videos."""
    out = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(1)
    ids = [f"{i:02d}ab" for i in range(NUM_VIDEOS)]
    labels = [np.sort(rng.choice(CLASSES, size=rng.integers(1, 4), replace=False)) for _ in ids]
    write_records(out / "validate0000.tfrecord", ids[:15], labels[:15])
    write_records(out / "validate0001.tfrecord", ids[15:], labels[15:])
    scores = np.round(rng.random((NUM_VIDEOS, CLASSES)), 1).astype(np.float32)  # many ties
    kept = list(range(NUM_VIDEOS - 4))
    csv = out / "pred.csv"
    with CsvWriter(csv) as writer:
        writer.write([ids[i] for i in reversed(kept)], scores[kept][::-1])  # any row order
    return types.SimpleNamespace(dir=out, pattern=str(out / "validate*.tfrecord"), ids=ids,
                                 labels=labels, scores=scores, kept=kept, csv=csv)


def expected_metrics(case):
    """The Evaluator fed directly: the CSV's top 20 for kept videos, empty rows for the others."""
    idx, val = top_k(case.scores, 20)
    idx = np.where(np.isin(np.arange(NUM_VIDEOS), case.kept)[:, None], idx, -1)
    ev = Evaluator()
    ev.add_topk(idx, np.round(val, 6), case.labels)
    return ev.result()


def run_json(capsys, argv, stderr=None):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    if stderr is not None:
        stderr.append(captured.err)
    return json.loads(captured.out)  # exactly one JSON object on stdout


def test_csv_mode_json(labelled, capsys):
    got = run_json(capsys, ["--predictions", str(labelled.csv), "--data", labelled.pattern, "--json"])
    assert set(got) == {"gap", "hit_at_1", "perr", "map", "videos", "missing_from_csv"}
    assert got["videos"] == NUM_VIDEOS and got["missing_from_csv"] == 4
    want = expected_metrics(labelled)
    for key in ("gap", "hit_at_1", "perr", "map"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    assert 0 < got["gap"] < 1


def test_missing_videos_lower_the_score(labelled, capsys):
    with CsvWriter(labelled.dir / "all.csv") as writer:
        writer.write(labelled.ids, labelled.scores)
    full = run_json(capsys, ["--predictions", str(labelled.dir / "all.csv"), "--data", labelled.pattern,
                             "--json"])
    assert full["missing_from_csv"] == 0
    partial = run_json(capsys, ["--predictions", str(labelled.csv), "--data", labelled.pattern, "--json"])
    assert partial["gap"] < full["gap"] and partial["hit_at_1"] <= full["hit_at_1"]


def test_perfect_csv_scores_one(labelled):
    with CsvWriter(labelled.dir / "perfect.csv") as writer:
        for video_id, labs in zip(labelled.ids, labelled.labels):
            writer.write_row(video_id, labs, np.ones(labs.size))
    got = evaluate_csv(labelled.dir / "perfect.csv", labelled.ids, labelled.labels)
    assert got["gap"] == pytest.approx(1.0) and got["map"] == pytest.approx(1.0)
    assert got["hit_at_1"] == 1.0 and got["perr"] == 1.0


def test_unlabelled_data_is_refused(labelled):
    with pytest.raises(DataError, match="no labels"):
        evaluate_csv(labelled.csv, labelled.ids, [np.zeros(0, np.int64)] * NUM_VIDEOS)


def test_extra_ids_error_or_warning(labelled, capsys):
    extra = labelled.dir / "extra.csv"
    extra.write_text(labelled.csv.read_text() + "zzzz,1 0.500000\n")
    code = main(["--predictions", str(extra), "--data", labelled.pattern, "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "1 video(s) in the CSV are not in the data" in captured.err and "zzzz" in captured.err
    err = []
    got = run_json(capsys, ["--predictions", str(extra), "--data", labelled.pattern, "--json",
                            "--ignore-extra-ids"], stderr=err)
    assert got["extra_in_csv"] == 1 and got["missing_from_csv"] == 4
    assert "warning: skipped 1 CSV row" in err[0]


def test_human_report_and_bad_flags(labelled, capsys):
    assert main(["--predictions", str(labelled.csv), "--data", labelled.pattern]) == 0
    out = capsys.readouterr().out
    assert "GAP@20" in out and "4 missing from the CSV" in out and "classes with at least one positive" in out
    assert main(["--predictions", str(labelled.csv), "--data", labelled.pattern, "--repeats", "3"]) == 2
    assert "only apply with --checkpoint" in capsys.readouterr().err
    bad = labelled.dir / "bad.csv"
    bad.write_text("VideoId,LabelConfidencePairs\n00ab,3 0.1 4 0.9\n")
    assert main(["--predictions", str(bad), "--data", labelled.pattern]) == 2
    assert "line 2" in capsys.readouterr().err


def test_checkpoint_mode_delegates(monkeypatch, capsys):
    calls = []

    def evaluate_checkpoint(checkpoint, data, *, repeats, seed, save_predictions, log, batch_size=32, num_samples=300):
        calls.append((checkpoint, data, repeats, seed, batch_size, save_predictions, num_samples))
        return {"gap": 0.5, "hit_at_1": 0.6, "perr": 0.4, "map": 0.3, "videos": 7}

    monkeypatch.setitem(sys.modules, "yt8m_kit.evaluate.predict_loop",
                        types.SimpleNamespace(evaluate_checkpoint=evaluate_checkpoint))
    got = run_json(capsys, ["--checkpoint", "run/ckpt-1", "--data", "v*.tfrecord", "--repeats", "5",
                            "--seed", "3", "--batch-size", "16", "--save-predictions", "p.h5", "--json"])
    assert calls == [("run/ckpt-1", "v*.tfrecord", 5, 3, 16, "p.h5", 300)]
    run_json(capsys, ["--checkpoint", "run/ckpt-1", "--data", "v*.tfrecord", "--num-samples", "32", "--json"])
    assert calls[-1][-1] == 32  # the demo's scoring reproduces from the command line
    assert got == {"gap": 0.5, "hit_at_1": 0.6, "perr": 0.4, "map": 0.3, "videos": 7}


def test_real_shard_perfect_and_empty(real_video_dir):
    from yt8m_kit.data.dataset import read_ids_and_labels

    ids, labels = read_ids_and_labels(str(real_video_dir / "validate0000.tfrecord"))
    assert len(ids) > 100
    ev = Evaluator()
    ev.add_topk(np.full((len(ids), 20), -1), np.zeros((len(ids), 20)), labels)
    assert ev.result()["gap"] == 0.0
    ev = Evaluator()
    multi_hot = np.zeros((len(ids), 3862), np.float32)
    for row, labs in enumerate(labels):
        multi_hot[row, labs] = 1.0
    ev.add(multi_hot + 0.01 * np.random.default_rng(0).random(multi_hot.shape, np.float32), labels)
    result = ev.result()
    many = sum(len(lab) > 20 for lab in labels)
    assert result["perr"] == pytest.approx(1.0) and result["hit_at_1"] == 1.0
    assert result["gap"] == pytest.approx(1.0) if many == 0 else result["gap"] < 1.0
