"""Offline distillation (train --teacher): the soft target, the cached teacher predictions, refusals."""

import json
import os

import numpy as np
import pytest

from yt8m_kit.evaluate.prediction_files import load_predictions, save_predictions
from yt8m_kit.models import create_model
from yt8m_kit.train import checkpoint as ck
from yt8m_kit.train import cli as train_cli
from yt8m_kit.train.distill import soft_target_fn

MODEL = "video_logistic"


def test_soft_target_is_the_weighted_target_of_both_losses():
    """lambda * BCE(s, t) + (1 - lambda) * BCE(s, y) == BCE(s, lambda t + (1 - lambda) y): the stream carries the
    latter, looked up by video id."""
    import tensorflow as tf

    from yt8m_kit.train.loop import cross_entropy

    rng = np.random.default_rng(0)
    teacher = rng.random((3, 5)).astype(np.float16)
    target = soft_target_fn(["a", "b", "c"], teacher, 0.3)
    labels = np.array([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0]], np.float32)
    got = target(tf.constant(["c", "a"]), tf.constant(labels)).numpy()
    expected = 0.3 * teacher[[2, 0]].astype(np.float32) + 0.7 * labels
    np.testing.assert_allclose(got, expected, atol=1e-6)
    student = rng.random((2, 5)).astype(np.float32)
    both = 0.3 * cross_entropy(teacher[[2, 0]].astype(np.float32), student) + 0.7 * cross_entropy(labels, student)
    np.testing.assert_allclose(cross_entropy(got, student).numpy(), both.numpy(), rtol=1e-5)


@pytest.fixture(scope="module")
def teacher_run(video_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "run"
    ck.save_checkpoint(str(run), 1, create_model(MODEL), {"model": MODEL, "overrides": {}, "level": "video"})
    return run


def distill(video_data, out, teacher, steps=4, *extra):
    return train_cli.main(["--model", MODEL, "--train", str(video_data / "train*.tfrecord"), "--out", str(out),
                           "--steps", str(steps), "--batch-size", "8", "--checkpoint-every", "2", "--no-progress",
                           "--teacher", str(teacher), *extra])


def test_teacher_predictions_are_made_once_and_reused(video_data, teacher_run, tmp_path, capsys):
    out = tmp_path / "student"
    assert distill(video_data, out, teacher_run, 2) == 0
    err = capsys.readouterr().err
    assert "teacher: predicting" in err
    cached = [n for n in os.listdir(out / "teacher") if n.endswith(".h5")]
    assert len(cached) == 1 and cached[0].startswith("teacher-")
    assert json.load(open(out / "teacher" / "teacher.json"))["fingerprint"] == ck.fingerprint(str(teacher_run))
    pred = load_predictions(str(out / "teacher" / cached[0]))
    assert pred["attrs"]["kind"] == "checkpoint" and pred["attrs"]["fingerprint"] == ck.fingerprint(str(teacher_run))
    assert distill(video_data, out, teacher_run, 4) == 0  # resumed: the cache is current
    assert "teacher: reuse" in capsys.readouterr().err
    run = json.load(open(out / ck.RUN_JSON))
    assert run["train"]["teacher"] == str(teacher_run) and run["train"]["distill_lambda"] == 0.5


def test_lambda_one_learns_the_teacher_not_the_labels(video_data, tmp_path):
    """With lambda 1 the labels play no part: two students of one teacher, trained on data whose labels
    differ, end identical."""
    from yt8m_kit.data import synth
    from yt8m_kit.data.dataset import read_ids_and_labels

    ids, labels = read_ids_and_labels(str(video_data / "train*.tfrecord"))
    rng = np.random.default_rng(1)
    scores = rng.random((len(ids), 3862)).astype(np.float32) * 0.01
    teacher = tmp_path / "teacher.h5"
    save_predictions(str(teacher), ids, scores)
    assert distill(video_data, tmp_path / "a", teacher, 4, "--distill-lambda", "1") == 0
    # the same videos, other labels
    import tensorflow as tf

    relabelled = tmp_path / "relabelled"
    relabelled.mkdir()
    for path in sorted(video_data.glob("train*.tfrecord")):
        records = []
        for raw in tf.data.TFRecordDataset(str(path)):
            ex = tf.train.Example.FromString(raw.numpy())
            f = ex.features.feature
            records.append(synth.video_example(f["id"].bytes_list.value[0], [7], list(f["mean_rgb"].float_list.value),
                                               list(f["mean_audio"].float_list.value)))
        synth.write_records(relabelled / path.name, records)
    assert train_cli.main(["--model", MODEL, "--train", str(relabelled / "train*.tfrecord"), "--out", str(tmp_path / "b"),
                           "--steps", "4", "--batch-size", "8", "--checkpoint-every", "2", "--no-progress",
                           "--teacher", str(teacher), "--distill-lambda", "1"]) == 0
    a, _ = ck.load_model(str(tmp_path / "a"))
    b, _ = ck.load_model(str(tmp_path / "b"))
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6)


def test_a_teacher_that_misses_training_videos_is_refused(video_data, tmp_path, capsys):
    from yt8m_kit.data.dataset import read_ids_and_labels

    ids, _ = read_ids_and_labels(str(video_data / "train*.tfrecord"))
    partial = tmp_path / "partial.h5"
    save_predictions(str(partial), ids[:-3], np.zeros((len(ids) - 3, 3862), np.float32))
    assert distill(video_data, tmp_path / "s", partial) == 2
    err = capsys.readouterr().err
    assert "lack 3 of the" in err and str(partial) in err
    assert distill(video_data, tmp_path / "t", tmp_path / "nothing") == 2
    assert "--teacher" in capsys.readouterr().err


def test_a_resume_with_a_changed_teacher_is_refused(video_data, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    ck.save_checkpoint(str(teacher), 1, create_model(MODEL), {"model": MODEL, "overrides": {}, "level": "video"})
    out = tmp_path / "student"
    assert distill(video_data, out, teacher, 2) == 0
    ck.save_checkpoint(str(teacher), 2, create_model(MODEL), {"model": MODEL, "overrides": {}, "level": "video"})
    capsys.readouterr()
    assert distill(video_data, out, teacher, 4) == 2  # the run now resolves to other weights
    err = capsys.readouterr().err
    assert "was trained with another teacher" in err and "new --out" in err


@pytest.mark.parametrize("bad", ["100 classes", "4716 classes", "NaN", "x50"])
def test_teacher_scores_that_are_not_3862_probabilities_are_refused_before_a_step(video_data, tmp_path, capsys, bad):
    """Were a TensorFlow shape traceback (100 or 4,716 classes) or a run that trained on (NaN: loss NaN; x50: loss
    -124) and wrote NaN checkpoints."""
    from yt8m_kit.data.dataset import read_ids_and_labels

    ids, _ = read_ids_and_labels(str(video_data / "train*.tfrecord"))
    classes = {"100 classes": 100, "4716 classes": 4716}.get(bad, 3862)
    scores = np.random.default_rng(0).random((len(ids), classes)).astype(np.float32)
    if bad == "NaN":
        scores[5, 7] = np.nan
    elif bad == "x50":
        scores *= 50
    path = tmp_path / "teacher.h5"
    save_predictions(str(path), ids, scores)
    out = tmp_path / "s"
    assert distill(video_data, out, path) == 2
    err = capsys.readouterr().err
    assert f"teacher {path}" in err and "Traceback" not in err
    if "classes" in bad:
        assert f"scores of shape ({len(ids)}, {classes})" in err and "3862 class probabilities" in err
    else:
        assert "is not a probability" in err and f"video {ids[5] if bad == 'NaN' else ids[0]!r}" in err
    assert not any(n.startswith("ckpt-") for n in os.listdir(out)) if out.exists() else True
    assert not (out / "teacher" / "teacher.json").exists()  # a refused teacher is not pinned to the run


def test_a_teacher_refused_for_missing_videos_then_regenerated_is_accepted(video_data, tmp_path, capsys):
    """It was pinned before the coverage check, so the regenerated (complete) file was refused forever as
    'another teacher' though no step had run."""
    from yt8m_kit.data.dataset import read_ids_and_labels

    ids, _ = read_ids_and_labels(str(video_data / "train*.tfrecord"))
    path = tmp_path / "teacher.h5"
    save_predictions(str(path), ids[:-3], np.zeros((len(ids) - 3, 3862), np.float32))
    out = tmp_path / "s"
    assert distill(video_data, out, path) == 2
    save_predictions(str(path), ids, np.full((len(ids), 3862), 0.01, np.float32))
    capsys.readouterr()
    assert distill(video_data, out, path) == 0, capsys.readouterr().err
