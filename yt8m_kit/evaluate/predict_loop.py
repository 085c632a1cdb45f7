"""The one prediction loop: model + TFRecord pattern -> (ids, scores, labels) batches.

Used by evaluation (`python -m yt8m_kit.evaluate --checkpoint`), the planner and inference.

- The model's input names say its level: {"frames", "num_frames"} -> frame level,
  {"features"} -> video level. A video-level model on frame-level data gets the masked
  mean of each video's real frames as its "features" (deterministic; repeats change nothing).
- Test-time repeats (the paper's section 5): for a frame-level model, each video gets R
  seeded random sub-samples of `num_samples` frames (data.sample_frames with repeat_index
  r = 0..R-1; the frames depend only on (seed, video id, r)). The R sub-samples of a batch
  of B videos run through the model as ONE batch of R*B rows, and the R score vectors of
  each video are averaged. all_frames=True instead feeds every real frame once, unsampled.
- Always inference mode (training=False), streaming with a fixed batch size, so memory is
  bounded by about batch_size * repeats * num_samples * 1152 * 4 bytes of frames
  (32 * 10 * 300 frames: ~440 MB) whatever the number of videos.
- XLA: xla=True compiles the model call (one XLA graph for a whole ensemble). Batches have fixed
  shapes (300 frames, or R*B x num_samples rows): it compiles once, plus once for a short last
  batch. Scores match the uncompiled step to ~1e-7. Opt-in: faster, but it doubles the peak
  memory (bench/README.md).
- Sharding: shard=(i, n) keeps the files i, i+n, i+2n, ... of the sorted file list
  (data.list_files). Deterministic, costs nothing (no record is read twice), and the
  Kaggle test set has thousands of shards; n may not exceed the number of files.
"""

import sys
import weakref

import numpy as np
import tensorflow as tf

from yt8m_kit import DEFAULT_BATCH_SIZE, DEFAULT_NUM_SAMPLES, DEFAULT_REPEATS  # noqa: F401  (re-exported)
from yt8m_kit.data.ids import IdSet, id_fingerprints
from yt8m_kit.errors import DISK_FULL, ConfigError, DataError, disk_full_message
from yt8m_kit.layers.numerics import masked_mean



PARALLEL_READS = 4  # shards read at once by predict_batches
AUTOTUNE_RAM_BUDGET = 256 * 2**20  # bytes; tf.data's default is half the machine's memory


def model_input_names(model):
    """The names of a Keras model's inputs, e.g. {'frames', 'num_frames'}."""
    inputs = getattr(model, "input", None) if getattr(model, "inputs", None) else None
    if isinstance(inputs, dict):
        return set(inputs)
    return {t.name.split(":")[0] for t in (getattr(model, "inputs", None) or [])}


def model_level(model):
    """'frame' or 'video', from the model's input names (README "Models" contract)."""
    names = model_input_names(model)
    if {"frames", "num_frames"} <= names:
        return "frame"
    if "features" in names:
        return "video"
    raise ConfigError(
        f"model {getattr(model, 'name', '?')!r} has inputs {sorted(names)}: expected "
        "'frames' and 'num_frames' (frame level) or 'features' (video level); was it built by "
        "yt8m_kit.models.create_model or yt8m_kit.ensemble.artifact?")


def parse_shard(text):
    """'2/8' -> (2, 8); ConfigError unless 0 <= i < n."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"cannot read shard {text!r}: expected i/n, e.g. 0/4 (shards 0..n-1)") from None
    return check_shard((i, n))


def check_shard(shard):
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n} is out of range: use i/n with 0 <= i < n, e.g. 0/{max(n, 1)}")
    return int(i), int(n)


def shard_files(files, shard):
    """The files of shard (i, n): files[i::n] of the sorted list (see module docstring)."""
    files = sorted(files)
    if shard is None:
        return files
    i, n = check_shard(shard)
    if n > len(files):
        raise ConfigError(
            f"shard {i}/{n}: only {len(files)} file(s) match, and shards split by file; "
            f"use at most {len(files)} shards")
    return files[i::n]


# Traced steps per model, so repeated predict_batches calls on one model (the planner, tests)
# do not retrace: {model: {config: step}}; entries go away with the model.
_STEPS = weakref.WeakKeyDictionary()


def make_step(model, xla=False, **config):
    """A cached tf.function: one reader batch -> (B, C) float32 scores, in inference mode.
    xla: compile the model call (frame-level models; see the module docstring)."""
    config["xla"] = bool(xla)
    per_model = _STEPS.setdefault(model, {})
    key = tuple(sorted(config.items()))
    if key not in per_model:
        per_model[key] = _build_step(model, **config)
    return per_model[key]


def _build_step(model, *, model_level_, data_level, repeats, seed, num_samples, all_frames, xla):
    from yt8m_kit.data import dataset as data_lib

    model_ref = weakref.ref(model)  # a strong reference would keep the model's cache entry alive

    def run(inputs):
        return tf.cast(model_ref()(inputs, training=False), tf.float32)

    run_frames = tf.function(run, jit_compile=True) if xla else run  # sampling (string hashing) stays outside

    frames_spec = tf.TensorSpec([None, None, None], tf.float32)  # (B, T, D): T varies per batch
    count_spec = tf.TensorSpec([None], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def video_step(features):
        return run({"features": features})

    @tf.function(input_signature=[frames_spec, count_spec])
    def mean_step(frames, num_frames):
        return run({"features": masked_mean(frames, num_frames)})

    @tf.function(input_signature=[frames_spec, count_spec])
    def all_frames_step(frames, num_frames):
        return run_frames({"frames": frames, "num_frames": num_frames})

    @tf.function(input_signature=[frames_spec, count_spec, tf.TensorSpec([None], tf.string)])
    def repeats_step(frames, num_frames, ids):
        b = tf.shape(frames)[0]
        x, counts = data_lib.sample_repeats(frames, num_frames, ids, num_samples, seed, repeats)
        scores = run_frames({"frames": x, "num_frames": counts})  # the model runs once on R*B rows
        return tf.reduce_mean(tf.reshape(scores, [repeats, b, -1]), axis=0)  # (B, C)

    if model_level_ == "video" and data_level == "video":
        return lambda batch: video_step(batch["features"])
    if model_level_ == "video":
        return lambda batch: mean_step(batch["frames"], batch["num_frames"])
    if all_frames:
        return lambda batch: all_frames_step(batch["frames"], batch["num_frames"])
    return lambda batch: repeats_step(batch["frames"], batch["num_frames"], batch["id"])


def raise_duplicate(pattern, ids, allow_2017=False):
    """A video id came twice from `pattern`: raise the DataError naming both records (found by one pass
    over the ids); a fingerprint collision, where no id repeats, returns."""
    from yt8m_kit.data import dataset as data_lib

    try:
        data_lib.read_ids_and_labels(pattern, allow_2017=allow_2017)
    except DataError as e:
        if "duplicate video id" in str(e):
            raise
        raise DataError(f"a video id occurs twice in {pattern} (one of {list(ids)[:3]}...): each video must be "
                        "scored once; python -m yt8m_kit.inspect PATTERN names the records") from None


def predict_batches(model, pattern, *, repeats=1, seed=0, batch_size=DEFAULT_BATCH_SIZE,
                    all_frames=False, num_samples=DEFAULT_NUM_SAMPLES, shard=None, allow_2017=False,
                    skip_bad=False, skip_reports=None, xla=False):
    """Yield (ids np.ndarray[str] (B,), scores float32 (B, 3862), labels float32 (B, C)).

    repeats: R seeded frame sub-samples per video, averaged (frame-level models only; see
    the module docstring). all_frames: every real frame once, no sampling (repeats must be 1).
    shard: (i, n) to predict only the files i::n. Same (model, data, seed, repeats) -> same
    scores, whatever the batch order. allow_2017: read 2017 files (key 'video_id'; labels then
    have C = 4716 columns). skip_bad: leave out bad records instead of raising DataError; the
    reader's SkipReport is appended to the list `skip_reports` (when given) before the first batch.
    xla: compile the model call (faster, about twice the peak memory; see the module docstring).
    """
    from yt8m_kit.data import dataset as data_lib

    if repeats < 1:
        raise ConfigError(f"repeats ({repeats}) must be at least 1")
    if batch_size < 1:
        raise ConfigError(f"batch size ({batch_size}) must be at least 1")
    if all_frames and repeats != 1:
        raise ConfigError(f"all_frames uses every frame once, deterministically: repeats ({repeats}) "
                          "must be 1 (drop --repeats, or drop --all-frames to average sub-samples)")
    level = model_level(model)
    files = shard_files(data_lib.list_files(pattern), shard)
    data_level = data_lib.detect_format(files, allow_2017=allow_2017).level
    if level == "frame" and data_level == "video":
        raise ConfigError(f"model {model.name!r} is frame level but {pattern} holds video-level "
                          "records: give it frame-level data, or use a video-level model")
    if level == "video" and data_level == "frame":  # it works, but say so: the features are computed, not read
        print(f"note: {model.name} is video level and {pattern} holds frame-level records: it reads each video's "
              "mean of its real frames as its features (repeats change nothing)", file=sys.stderr)
    step = make_step(model, xla=xla, model_level_=level, data_level=data_level, repeats=repeats, seed=seed,
                     num_samples=num_samples, all_frames=all_frames)
    # Bounded memory whatever the test set's size: one frame count (300) for every batch (a
    # new shape per batch grew the peak RSS with the number of batches: +12% from 1,000 to
    # 20,000 videos, 3% with fixed shapes, and 2x faster), a fixed number of shards open at
    # once (decoding, not reading, is the limit) and a cap on tf.data's autotuned buffers.
    ds = data_lib.make_dataset(",".join(files), batch_size, level=data_level, frames="all",
                               num_parallel_reads=PARALLEL_READS, pad_to_max=True,
                               allow_2017=allow_2017, skip_bad=skip_bad)
    if skip_reports is not None:
        skip_reports.append(ds.skip_report)
    options = tf.data.Options()
    options.autotune.ram_budget = AUTOTUNE_RAM_BUDGET
    seen = IdSet()
    for batch in data_lib.iterate(ds.with_options(options), files=ds.yt8m_files):
        scores = step(batch).numpy()
        ids = np.array([x.decode("utf-8") for x in batch["id"].numpy()], dtype=str)  # the reader checked UTF-8
        fps = id_fingerprints(ids)
        if len(np.unique(fps)) != fps.size or seen.contains(fps).any():
            raise_duplicate(",".join(files), ids, allow_2017)
        seen.add_fingerprints(fps)
        if scores.shape[0] != ids.shape[0]:
            raise DataError(f"model {model.name!r} returned {scores.shape[0]} rows for {ids.shape[0]} videos",
                            file=pattern)
        labels = batch.get("labels")
        yield ids, scores.astype(np.float32, copy=False), (
            None if labels is None else np.asarray(labels, dtype=np.float32))


def evaluate_checkpoint(checkpoint, data, *, repeats=1, seed=0, batch_size=DEFAULT_BATCH_SIZE,
                        save_predictions=None, all_frames=False, num_samples=DEFAULT_NUM_SAMPLES,
                        allow_2017=False, skip_bad=False, skip_reports=None, log=None):
    """Score a checkpoint (dir or RUN_DIR) on labelled data -> {gap, hit_at_1, perr, map, videos}.

    log: optional callable(str), told which checkpoint a RUN_DIR resolved to.
    save_predictions: optional .h5 path for yt8m_kit.evaluate.prediction_files (ids, scores, labels and the
    attrs the planner's cache is keyed by). When the disk fills up while writing it, no file is left and
    the result carries "save_error" (the message) beside the score, which is still computed. allow_2017, skip_bad, skip_reports: as predict_batches;
    a model whose class count differs from the data's vocabulary (a 2018 model, 3862 classes, on
    2017 data, 4716) is a ConfigError: the label indices would not mean the same classes.
    """
    from yt8m_kit.train import checkpoint as ckpt_lib
    from yt8m_kit.data import dataset as data_lib
    from yt8m_kit.evaluate.metrics import Evaluator

    info = data_lib.detect_format(data_lib.list_files(data), allow_2017=allow_2017)
    model, meta = ckpt_lib.load_model(checkpoint)
    if log is not None:
        log(f"checkpoint: {ckpt_lib.describe(meta['path'])}")
    width = int(model.outputs[0].shape[-1])
    if width != info.num_classes:
        raise ConfigError(
            f"model {model.name!r} ({checkpoint}) scores {width} classes but {data} is {info.version} "
            f"YouTube-8M data with {info.num_classes} classes (labels up to {info.num_classes - 1}): the "
            "two vocabularies differ, so a GAP would be meaningless. Evaluate it on data of its own "
            "vocabulary (for this toolkit's models: 2018 files, key 'id', 3862 classes)")
    evaluator = Evaluator(num_classes=info.num_classes)
    writer, save_error = None, None
    if save_predictions:
        from yt8m_kit.evaluate.prediction_files import PredictionWriter

        attrs = {
            "checkpoint": str(meta.get("path", checkpoint)),
            "checkpoint_fingerprint": ckpt_lib.fingerprint(checkpoint),
            "data": str(data), "repeats": int(repeats), "seed": int(seed), "num_samples": int(num_samples),
            "precision": str((meta.get("overrides") or {}).get("dtype", "float32")),
        }
        writer = PredictionWriter(save_predictions, attrs).__enter__()

    def give_up_saving(error):  # a full disk: no prediction file, but the score is still computed
        nonlocal writer, save_error
        cause = writer.write_failure() or error  # h5py reports the failed write in its own words
        if getattr(cause, "errno", None) not in DISK_FULL:
            raise error
        writer.abort()
        writer, save_error = None, disk_full_message(cause, save_predictions)

    try:
        for ids, scores, labels in predict_batches(model, data, repeats=repeats, seed=seed,
                                                   batch_size=batch_size, all_frames=all_frames,
                                                   num_samples=num_samples, allow_2017=allow_2017,
                                                   skip_bad=skip_bad, skip_reports=skip_reports):
            if labels is None:
                raise DataError("records have no labels: evaluation needs labelled data "
                                "(train/validate)", file=data)
            evaluator.add(scores, labels)
            if writer is not None:
                try:
                    writer.add(ids, scores, labels)
                except (OSError, RuntimeError) as e:
                    give_up_saving(e)
        if writer is not None:
            try:
                writer.__exit__(None, None, None)
            except (OSError, RuntimeError) as e:
                give_up_saving(e)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if save_error is not None:
        return dict(evaluator.result(), save_error=save_error)
    return dict(evaluator.result())
