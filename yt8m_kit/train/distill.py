"""Offline distillation (the 1st place's): `train --teacher TEACHER [--distill-lambda 0.5]`.

The student's loss is  lambda * BCE(student, teacher) + (1 - lambda) * BCE(student, labels),  both summed
over the 3862 classes. BCE is linear in its target, so this is exactly BCE against the soft target
lambda * teacher + (1 - lambda) * labels, which the training stream carries in place of the labels
(loop.make_train_dataset): the step, the resume and the checkpoints are those of any run, and the
student is an ordinary run the planner can put in an ensemble.

TEACHER is a submit.py output directory (or its ensemble.keras; its files must belong together), a
checkpoint or RUN_DIR, or a prediction file (.h5, `evaluate --save-predictions`) covering every
training video. The teacher's predictions on the training videos are computed once (one pass, one
frame sub-sample of `DEFAULT_NUM_SAMPLES` frames per video for frame-level members, seed 0) and cached
as RUN_DIR/teacher/teacher-<key>.h5, where the key fingerprints the teacher's weights and the training
files: changed data is predicted again, never mixed; a teacher whose weights changed since the run
started (RUN_DIR/teacher/teacher.json) is refused on resume. They are held in memory as
float16 (N x 3862 x 2 bytes: 178 MB for 23k videos), so this suits video-level sets and frame-level
sets of up to a few hundred thousand videos.
"""

import hashlib
import json
import os

import numpy as np

from yt8m_kit.errors import ConfigError, DataError

def teacher_fingerprint(teacher):
    """(kind, fingerprint) of a teacher path: "ensemble" (sha256 of ensemble.keras, its set checked),
    "checkpoint" (the checkpoint's weights fingerprint) or "predictions" (sha256 of the .h5)."""
    from yt8m_kit.fileio import sha256_file

    teacher = os.fspath(teacher)
    if teacher.endswith(".h5") and os.path.isfile(teacher):
        return "predictions", sha256_file(teacher)
    keras_file = os.path.join(teacher, "ensemble.keras") if os.path.isdir(teacher) else teacher
    if keras_file.endswith(".keras") and os.path.isfile(keras_file):
        from yt8m_kit.ensemble.artifact import check_artifact

        check_artifact(os.path.dirname(os.path.abspath(keras_file)))
        return "ensemble", sha256_file(keras_file)
    from yt8m_kit.train import checkpoint as ckpt_lib

    if os.path.isdir(teacher) and ckpt_lib.has_checkpoint(teacher):
        return "checkpoint", ckpt_lib.fingerprint(teacher)
    raise ConfigError(f"--teacher {teacher}: not a submit.py output directory, an ensemble .keras file, a "
                      "checkpoint or RUN_DIR, or a prediction .h5 file")


def _load_teacher_model(teacher, kind):
    if kind == "ensemble":
        from yt8m_kit.ensemble.artifact import load_ensemble

        path = os.path.join(teacher, "ensemble.keras") if os.path.isdir(teacher) else teacher
        return load_ensemble(path)
    from yt8m_kit.train import checkpoint as ckpt_lib

    return ckpt_lib.load_model(teacher)[0]


def teacher_scores(config, kind, fingerprint, log=None):
    """(ids list[str], scores float16 (N, 3862)) of the teacher on --train, from the cache when current."""
    from yt8m_kit import DEFAULT_NUM_SAMPLES
    from yt8m_kit.data.records import data_signature
    from yt8m_kit.evaluate import prediction_files as pred_lib

    log = log or (lambda msg: None)
    if kind == "predictions":
        pred = pred_lib.load_predictions(config.teacher)
        return pred["ids"], np.asarray(pred["scores"], np.float16)
    key = {"teacher": os.path.abspath(config.teacher), "kind": kind, "fingerprint": fingerprint,
           "data_signature": data_signature(config.train), "num_samples": DEFAULT_NUM_SAMPLES, "seed": 0}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(config.out, "teacher", f"teacher-{digest}.h5")
    if os.path.isfile(path) and all(pred_lib.read_attrs(path).get(k) == v for k, v in key.items()):
        log(f"teacher: reuse {path}")
    else:
        from yt8m_kit.evaluate.predict_loop import predict_batches

        log(f"teacher: predicting {config.train} with {kind} {config.teacher} -> {path} (once)")
        model = _load_teacher_model(config.teacher, kind)
        with pred_lib.PredictionWriter(path, key) as writer:
            for ids, scores, _ in predict_batches(model, config.train, num_samples=DEFAULT_NUM_SAMPLES, seed=0,
                                                  allow_2017=config.allow_2017, skip_bad=config.skip_bad):
                writer.add(ids, scores)
    pred = pred_lib.load_predictions(path)
    return pred["ids"], np.asarray(pred["scores"], np.float16)


def check_coverage(teacher_ids, train_ids, teacher):
    """DataError unless every training video has a teacher prediction."""
    have = set(teacher_ids)
    missing = [i for i in train_ids if i not in have]
    if missing:
        raise DataError(f"the teacher's predictions lack {len(missing)} of the {len(train_ids)} training videos "
                        f"(e.g. {missing[:3]}): give predictions on the --train files", file=teacher)


def pin_teacher(config, kind, fingerprint, write=True):
    """The first start of a run records which teacher it learns from (RUN_DIR/teacher/teacher.json); a
    resume whose teacher has other weights is refused, so that no run mixes two teachers' targets. With
    write=False only the check: the record is written once the teacher's scores have passed their checks."""
    from yt8m_kit.fileio import read_json, write_json

    path = os.path.join(config.out, "teacher", "teacher.json")
    if os.path.isfile(path):
        pinned = read_json(path, "teacher record")
        if pinned.get("fingerprint") != fingerprint:
            raise ConfigError(f"{config.out} was trained with another teacher ({pinned.get('kind')} "
                              f"{pinned.get('teacher')}, fingerprint {str(pinned.get('fingerprint'))[:12]}); "
                              f"{config.teacher} now has {fingerprint[:12]}: resume with that teacher, or use a new --out")
    elif write:
        write_json(path, {"teacher": os.path.abspath(config.teacher), "kind": kind, "fingerprint": fingerprint})


def check_scores(ids, scores, teacher, chunk=65536):
    """Teacher scores are (videos, 3862) probabilities: another class count, or a value that is not finite or
    outside [0, 1], is refused naming the teacher (and the first such video) before any step trains on it."""
    from yt8m_kit import NUM_CLASSES

    shape = tuple(np.shape(scores))
    if len(shape) != 2 or shape[1] != NUM_CLASSES or shape[0] != len(ids):
        raise ConfigError(f"teacher {teacher} gives scores of shape {shape} for {len(ids)} videos: one row of "
                          f"{NUM_CLASSES} class probabilities (the 2018 vocabulary) a video was expected")
    for start in range(0, shape[0], chunk):
        block = np.asarray(scores[start:start + chunk], np.float32)
        bad = ~(np.isfinite(block) & (block >= 0) & (block <= 1)).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = block[i]
            value = row[~(np.isfinite(row) & (row >= 0) & (row <= 1))][0]
            raise ConfigError(f"teacher {teacher}: video {ids[start + i]!r} has a score {value} that is not a "
                              "probability (finite, in [0, 1]); soft targets must be probabilities")


def prepare(config, log=None):
    """The soft-target function for the training stream of a run with --teacher (predicting the teacher
    once when its cache is not current; a prediction file is checked to cover every training video)."""
    from yt8m_kit.data import dataset as data_lib

    check_lambda(config.distill_lambda)  # before the teacher is hashed or predicted
    kind, fingerprint = teacher_fingerprint(config.teacher)  # hashes the teacher once for both uses below
    pin_teacher(config, kind, fingerprint, write=False)  # a resume with another teacher: refused before predicting
    ids, scores = teacher_scores(config, kind, fingerprint, log)
    check_scores(ids, scores, config.teacher)
    if kind == "predictions" and not config.skip_bad:  # the others were predicted on --train itself
        check_coverage(ids, data_lib.read_ids_and_labels(config.train, allow_2017=config.allow_2017)[0],
                       config.teacher)
    pin_teacher(config, kind, fingerprint)  # only now: a teacher refused above is not pinned to the run
    return soft_target_fn(ids, scores, config.distill_lambda)


def check_lambda(lam):
    if not 0 <= lam <= 1:
        raise ConfigError(f"--distill-lambda {lam} must be between 0 and 1")


def soft_target_fn(ids, scores, lam):
    """A tf function (video ids (B,), labels (B, C)) -> lam * teacher + (1 - lam) * labels."""
    import tensorflow as tf

    check_lambda(lam)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(ids)), tf.range(len(ids), dtype=tf.int64)), -1)
    teacher = tf.constant(scores, tf.float16)

    def target(video_ids, labels):
        rows = table.lookup(video_ids)
        with tf.control_dependencies([tf.debugging.assert_non_negative(
                rows, message="a training video has no teacher prediction")]):
            soft = tf.cast(tf.gather(teacher, rows), tf.float32)
        return lam * soft + (1.0 - lam) * tf.cast(labels, tf.float32)

    return target
