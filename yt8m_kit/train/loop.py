"""The training loop behind yt8m_kit.train.trainer.train: the data stream, the loss and the distributed step,
then step by step: log, checkpoint, validate.

run_loop resumes from the run's newest checkpoint (weights, optimizer, RNG states, step) and
starts the seeded shuffled stream at example step * batch_size, so a resumed run sees exactly
the batches an uninterrupted one would. Only the chief writes checkpoints, TensorBoard scalars
and validation results.
"""

import os
import sys
import time

from yt8m_kit.errors import ConfigError
from yt8m_kit.train.config import TrainResult, model_overrides
from yt8m_kit.train.train_state import restore_train_state


def check_vocabulary(info, pattern):
    """info (data.FormatInfo) back, or ConfigError when its classes are not the models' 3862."""
    from yt8m_kit import NUM_CLASSES

    if info.num_classes != NUM_CLASSES:
        raise ConfigError(f"{pattern} is {info.version} YouTube-8M data with {info.num_classes} classes, but "
                          f"every registered model scores the {NUM_CLASSES} classes of 2018, whose indices "
                          "mean other classes: training on these labels would teach the wrong classes. "
                          "Train on 2018 files (key 'id')")
    return info


def make_train_dataset(config, level, start_example, soft_target=None):
    import tensorflow as tf

    from yt8m_kit.data import dataset as data_lib

    kwargs = dict(level=level, shuffle=True, seed=config.seed, epochs=None, start_example=start_example)
    if level == "frame":
        # uint8 frames, dequantised inside the step (make_train_step): 4x fewer bytes through tf.data
        kwargs.update(frames="sample", num_samples=config.frames, quantized=True)
    ds = data_lib.make_dataset(config.train, config.batch_size, allow_2017=config.allow_2017,
                               skip_bad=config.skip_bad, **kwargs)
    report = ds.skip_report
    keys = ("frames", "num_frames") if level == "frame" else ("features",)
    if soft_target is None:
        ds = ds.map(lambda b: ({k: b[k] for k in keys}, b["labels"]))  # strings stay out of the replicas
    else:  # --teacher: lambda * teacher + (1 - lambda) * labels (train/distill.py), looked up by video id
        ds = ds.map(lambda b: ({k: b[k] for k in keys}, soft_target(b["id"], b["labels"])))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)
    ds.skip_report = report
    return ds


# Added inside the logs so that p = 0 or 1 gives a finite loss. Not a clip: a clip to [eps, 1 - eps] (this
# trainer's before 2026-12-07, eps 1e-6) has zero gradient past eps, so a confident miss (p < 1e-6 on a true
# label, where most of the 3,862 classes sit early on) taught nothing; and the starter's log(p + 1e-5) scales
# it by p / (p + 1e-5). With 1e-30 under log(p) the gradient through a sigmoid stays -(1 - p) for every
# representable p: float32 holds p down to 1e-38, and log(p)'s gradient into the MoE's experts and gates is
# bounded (p is their positive sum). Under log(1 - p) the floor is float32's resolution below 1 (6e-8): a
# confident false positive's p rounds to exactly 1, and a 1e-30 floor there made a 1e30 gradient, an infinite
# global norm and NaN weights (measured: lfnl_netvlad at 5e-3, by step 500). With 1e-7 the gradient on a
# negative is p (1 - p) / (1 - p + 1e-7): ~1 down to 1 - p = 1e-5, 0.5 at float32's last step below 1.
LOG_FLOOR, LOG1M_FLOOR = 1e-30, 1e-7


def cross_entropy(labels, probs):
    """(B, C) multi-hot or soft targets (distillation), (B, C) probabilities -> (B,) BCE summed over classes,
    in float32, with a gradient that does not vanish when p is far from its target."""
    from keras import ops

    # into [0, 1] first: a mixture's p = sum_e g_e sigmoid(z_e) can round to just above 1 (then log(1 - p + 1e-7)
    # was NaN: measured, lfnl_netvlad at lr 5e-3 after ~1,100 steps); the clip's zero gradient is only there
    p = ops.clip(ops.cast(probs, "float32"), 0.0, 1.0)
    labels = ops.cast(labels, "float32")
    return -ops.sum(labels * ops.log(p + LOG_FLOOR) + (1.0 - labels) * ops.log(1.0 - p + LOG1M_FLOOR), axis=-1)


def next_batch(batches, pattern):
    """The next distributed batch; a bad record becomes a DataError naming file and record."""
    import tensorflow as tf

    from yt8m_kit.data import dataset as data_lib

    try:
        return next(batches)
    except tf.errors.OpError as e:
        raise data_lib.to_data_error(e, data_lib.list_files(pattern)) from None


def make_train_step(strategy, model, optimizer, config):
    import tensorflow as tf

    from yt8m_kit.data import dataset as data_lib

    replicas = strategy.num_replicas_in_sync
    extra_loss = getattr(model, "training_loss", None)

    def replica_step(inputs, labels):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            per_video = cross_entropy(labels, probs)
            if extra_loss is not None:  # a model's own training terms (mix_nextvlad's branches and distillation)
                per_video = per_video + tf.cast(extra_loss(labels), tf.float32)
            loss = tf.nn.compute_average_loss(per_video, global_batch_size=config.batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        # Clip the global gradient (summed over replicas), then hand each replica 1/R of it:
        # the optimizer sums over replicas again (Keras clips per replica, before the sum).
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        grads, _ = tf.clip_by_global_norm(grads, config.clip_norm)
        optimizer.apply([g / replicas for g in grads], variables)
        return loss

    compiled = tf.function(replica_step, jit_compile=True) if config.xla else replica_step

    def dequantize_then_step(inputs, labels):
        # The reader's own dequantise op, outside XLA: the float32 frames are the same bits as a
        # float32 reader's (XLA may fuse the formula differently).
        if "frames" in inputs and inputs["frames"].dtype == tf.uint8:
            inputs = dict(inputs, frames=data_lib.dequantize(inputs["frames"]))
        return compiled(inputs, labels)

    @tf.function
    def step(inputs, labels):
        per_replica = strategy.run(dequantize_then_step, args=(inputs, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def restore_latest(config, strategy, model, optimizer, meta):
    """Load the newest checkpoint of the run (weights, optimizer, RNG states); return its step."""
    from yt8m_kit.train import checkpoint as ckpt_lib

    ckpts = ckpt_lib.list_checkpoints(config.out)
    if not ckpts:
        return 0
    path = ckpts[-1][1]
    ckpt_lib.check_meta(ckpt_lib.read_meta(path), meta, path)
    with strategy.scope():
        ckpt_lib.load_weights_into(model, path)
        state = restore_train_state(path, model, optimizer)
    return int(state["step"])


def make_validator(model, config, level):
    """A function () -> {gap, hit_at_1, perr, map, videos} on --valid, inference mode, one
    seeded frame sub-sample per video (repeat index 0), the graph traced once per run."""
    import tensorflow as tf

    from yt8m_kit.data import dataset as data_lib
    from yt8m_kit.evaluate.metrics import Evaluator

    valid_level = check_vocabulary(data_lib.detect_format(data_lib.list_files(config.valid),
                                                          allow_2017=config.allow_2017), config.valid).level
    if valid_level != level:
        raise ConfigError(f"--valid {config.valid} holds {valid_level}-level records but model "
                          f"{config.model!r} is {level} level")
    if not config.skip_bad:  # a video twice in --valid would be scored twice: refused, naming both records
        data_lib.read_ids_and_labels(config.valid, allow_2017=config.allow_2017)
    keys = ("frames", "num_frames") if level == "frame" else ("features",)
    predict = tf.function(lambda inputs: tf.cast(model(inputs, training=False), tf.float32), reduce_retracing=True)
    kwargs = dict(frames="sample", num_samples=config.frames) if level == "frame" else {}

    def run():
        ds = data_lib.make_dataset(config.valid, config.valid_batch_size, level=level, seed=config.seed,
                                   allow_2017=config.allow_2017, skip_bad=config.skip_bad, **kwargs)
        run.skip_report = ds.skip_report  # each validation reads the same files: keep the last
        evaluator = Evaluator()
        for batch in data_lib.iterate(ds):
            evaluator.add(predict({k: batch[k] for k in keys}).numpy(), batch["labels"].numpy())
        return {k: float(v) for k, v in dict(evaluator.result()).items()}

    run.skip_report = None
    return run


def log_scalars(writer, step, values):
    """TensorBoard scalars through tf.summary.write: tf.summary.scalar needs the tensorboard
    package, which tensorflow-cpu does not install; the "scalars" plugin metadata is all it adds."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta)


def run_loop(config, strategy, is_chief, level, total, model, optimizer):
    import numpy as np
    import tensorflow as tf

    from yt8m_kit.train import checkpoint as ckpt_lib

    meta = {"model": config.model, "overrides": model_overrides(config), "level": level}
    start = restore_latest(config, strategy, model, optimizer, meta)
    latest = ckpt_lib.list_checkpoints(config.out)
    result = TrainResult(config.out, start, latest[-1][1] if latest else None, start, None, None, 0.0, 0.0)
    if start >= total:
        return result
    soft_target = None
    if config.teacher:
        from yt8m_kit.train.distill import prepare

        soft_target = prepare(config, log=lambda msg: print(msg, file=sys.stderr))
    ds = make_train_dataset(config, level, start_example=start * config.batch_size, soft_target=soft_target)
    batches = iter(strategy.experimental_distribute_dataset(ds))
    train_step = make_train_step(strategy, model, optimizer, config)
    writer = tf.summary.create_file_writer(os.path.join(config.out, "logs")) if is_chief else None
    from yt8m_kit.progress import Progress

    progress = Progress(total, "step", stateful=("loss", "ex/s", "gap"), enabled=config.progress and is_chief)
    progress.update(start)  # on a terminal, the bar starts at the resumed step
    from yt8m_kit.train.config import checkpoint_spacing

    every = config.checkpoint_every or checkpoint_spacing(total)
    valid_every = config.valid_every or every
    validate = make_validator(model, config, level) if config.valid and is_chief else None
    window, t_first, t_log, step_log = [], None, None, start
    for step in range(start + 1, total + 1):
        window.append(train_step(*next_batch(batches, config.train)))
        if t_first is None:  # the first step traces the graph: time the steady state after it
            window[-1].numpy()
            t_first = t_log = time.perf_counter()
            step_log = step
        if step % config.log_every == 0 or step == total:
            result.loss = float(np.mean([w.numpy() for w in window]))
            now = time.perf_counter()
            rate = (step - step_log) * config.batch_size / max(now - t_log, 1e-9)
            window, t_log, step_log = [], now, step
            progress.update(step, [("loss", result.loss), ("ex/s", rate)])
            if writer is not None:
                log_scalars(writer, step, {"loss": result.loss, "examples_per_sec": rate,
                                           "learning_rate": optimizer.learning_rate})
        if is_chief and (step % every == 0 or step == total):
            result.checkpoint = ckpt_lib.save_checkpoint(
                config.out, step, model, meta, optimizer=optimizer,
                state={"examples_seen": step * config.batch_size, "seed": config.seed}, keep=config.keep)
            if config.ema:
                from yt8m_kit.train.averaging import BN_BATCHES
                from yt8m_kit.train.ema import save_ema_checkpoint

                save_ema_checkpoint(config.out, step, model, optimizer, meta, config.ema, BN_BATCHES)
        if validate is not None and (step % valid_every == 0 or step == total):
            result.valid = validate()
            progress.update(step, [("gap", result.valid.get("gap", float("nan")))])
            log_scalars(writer, step, {f"valid/{k}": v for k, v in result.valid.items()})
    if writer is not None:
        writer.flush()
    for name, report in (("--train", ds.skip_report), ("--valid", getattr(validate, "skip_report", None))):
        if report is not None and report.count:
            result.skipped_records += report.count
            print(f"warning: {name}: {report}", file=sys.stderr)
    result.step = total
    elapsed = time.perf_counter() - t_first
    result.steps_per_sec = (total - (start + 1)) / elapsed if total > start + 1 and elapsed > 0 else 0.0
    result.examples_per_sec = result.steps_per_sec * config.batch_size
    return result
