"""Train one registered model; rerunning the same command resumes where it stopped.

    python -m yt8m_kit.train --model lfnl_netvlad_tiny --train 'data/train*.tfrecord' \\
        --out runs/lfnl --steps 3000 --checkpoint-every 500

Adam (lr 2e-4, staircase decay x0.8 every 4M examples, global gradient-norm clipping at
1.0), binary cross-entropy summed over the 3862 classes and averaged over the batch (as the
YouTube-8M starter code), random frame sub-sampling from the reader for frame-level models.
Each checkpoint holds weights, config, optimizer state and step; the data position is
step * batch_size in a seeded shuffled stream, so a resumed run sees exactly the batches
an uninterrupted one would. RUN_DIR/run.json pins the model and training config: a rerun
with a different one is refused, naming the keys that differ (steps, checkpointing,
validation and strategy may change between runs).
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time

from yt8m_kit.errors import ConfigError, cli_main
from yt8m_kit.train_config import (PURE_BF16_REASON, SCHEDULE_KEYS, TUNABLE, TrainConfig,  # noqa: F401
                                   TrainResult, model_overrides, parse_set, resolve_tunables, resolve_xla,
                                   run_differences, run_record, validate_config)

def make_strategy(config):
    """(strategy, is_chief). Must run before any other TensorFlow work (collective ops)."""
    import tensorflow as tf

    if config.strategy == "default":
        return tf.distribute.get_strategy(), True
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    if not config.tf_config:
        raise ConfigError("--strategy multi_worker needs TF_CONFIG (cluster and task) in the environment, e.g. "
                          '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                          '"task": {"type": "worker", "index": 0}}')
    try:
        tfc = json.loads(config.tf_config)
        cluster, task = tfc["cluster"], tfc["task"]
        task_type, task_id = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid ({e}): {config.tf_config!r}") from None
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id, rpc_layer="grpc")
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return strategy, is_chief


def count_examples(files):
    import tensorflow as tf

    return int(tf.data.TFRecordDataset(files).reduce(0, lambda n, _: n + 1).numpy())


def prepare_run(config, is_chief):
    """Check the data level and run.json; return (level, run record, total steps)."""
    from yt8m_kit import checkpoint as ckpt_lib
    from yt8m_kit import data as data_lib
    from yt8m_kit.models import model_info

    level = model_info(config.model)["level"]
    files = data_lib.list_files(config.train)
    data_level = check_vocabulary(data_lib.detect_format(files, allow_2017=config.allow_2017), config.train).level
    if data_level != level:
        raise ConfigError(f"model {config.model!r} is {level} level but --train {config.train} holds "
                          f"{data_level}-level records: train {level}-level models on {level}-level data")
    record = run_record(config, level)
    run_path = os.path.join(config.out, ckpt_lib.RUN_JSON)
    if os.path.exists(run_path):
        diffs = run_differences(ckpt_lib.read_json(run_path, "run config"), record)
        if diffs:
            raise ConfigError(f"{run_path} was written by a different run; it differs in: " + ", ".join(diffs)
                              + ". Rerun with the original settings to resume, or use a new --out.")
    if config.steps is not None:
        total = config.steps
    else:
        total = max(1, math.ceil(config.epochs * count_examples(files) / config.batch_size))
    return level, record, total


def check_vocabulary(info, pattern):
    """info (data.FormatInfo) back, or ConfigError when its classes are not the models' 3862."""
    from yt8m_kit import NUM_CLASSES

    if info.num_classes != NUM_CLASSES:
        raise ConfigError(f"{pattern} is {info.version} YouTube-8M data with {info.num_classes} classes, but "
                          f"every registered model scores the {NUM_CLASSES} classes of 2018, whose indices "
                          "mean other classes: training on these labels would teach the wrong classes. "
                          "Train on 2018 files (key 'id')")
    return info


def make_train_dataset(config, level, start_example):
    import tensorflow as tf

    from yt8m_kit import data as data_lib

    kwargs = dict(level=level, shuffle=True, seed=config.seed, epochs=None, start_example=start_example)
    if level == "frame":
        kwargs.update(frames="sample", num_samples=config.frames)
    ds = data_lib.make_dataset(config.train, config.batch_size, allow_2017=config.allow_2017,
                               skip_bad=config.skip_bad, **kwargs)
    report = ds.skip_report
    keys = ("frames", "num_frames") if level == "frame" else ("features",)
    ds = ds.map(lambda b: ({k: b[k] for k in keys}, b["labels"]))  # strings stay out of the replicas
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)
    ds.skip_report = report
    return ds


def cross_entropy(labels, probs, eps=1e-6):
    """(B, C) multi-hot, (B, C) probabilities -> (B,) BCE summed over classes."""
    import tensorflow as tf

    p = tf.clip_by_value(tf.cast(probs, tf.float32), eps, 1.0 - eps)
    return -tf.reduce_sum(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p), axis=-1)


def next_batch(batches, pattern):
    """The next distributed batch; a bad record becomes a DataError naming file and record."""
    import tensorflow as tf

    from yt8m_kit import data as data_lib

    try:
        return next(batches)
    except tf.errors.OpError as e:
        raise data_lib._to_data_error(e, data_lib.list_files(pattern)) from None


def make_train_step(strategy, model, optimizer, config):
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def replica_step(inputs, labels):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            loss = tf.nn.compute_average_loss(cross_entropy(labels, probs), global_batch_size=config.batch_size)
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

    if config.xla:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def step(inputs, labels):
        per_replica = strategy.run(replica_step, args=(inputs, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def build(config, strategy):
    """Model and optimizer (created in the strategy's scope, slots built)."""
    import keras

    from yt8m_kit.models import create_model

    with strategy.scope():
        keras.utils.set_random_seed(config.seed)
        model = create_model(config.model, **model_overrides(config))
        schedule = keras.optimizers.schedules.ExponentialDecay(
            config.lr, decay_steps=max(1, round(config.lr_decay_examples / config.batch_size)),
            decay_rate=config.lr_decay, staircase=True)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        optimizer.build(model.trainable_variables)
    # The seed has done its job (initial weights, dropout seed generators). Drop TF's global
    # seed again: the reader seeds its own ops (stateless sampling, a Python-int shuffle seed),
    # so its stream does not depend on what else set a global seed in this process.
    import tensorflow as tf

    tf.random.set_seed(None)
    return model, optimizer


def train(config):
    """Train (or resume) per `config` (TrainConfig); return a TrainResult."""
    validate_config(config)
    strategy, is_chief = make_strategy(config)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch size {config.batch_size} must divide evenly over "
                          f"{strategy.num_replicas_in_sync} replicas")
    level, record, total = prepare_run(config, is_chief)
    model, optimizer = build(config, strategy)
    if is_chief:  # only now: a model that cannot be built must not pin the run directory
        from yt8m_kit import checkpoint as ckpt_lib

        ckpt_lib.write_run_json(config.out, record)
        ckpt_lib.clean_stale_temporaries(config.out)
    return run_loop(config, strategy, is_chief, level, total, model, optimizer)


def restore_latest(config, strategy, model, optimizer, meta):
    """Load the newest checkpoint of the run (weights, optimizer, RNG states); return its step."""
    from yt8m_kit import checkpoint as ckpt_lib

    ckpts = ckpt_lib.list_checkpoints(config.out)
    if not ckpts:
        return 0
    path = ckpts[-1][1]
    ckpt_lib.check_meta(ckpt_lib.read_meta(path), meta, path)
    with strategy.scope():
        ckpt_lib.load_weights_into(model, path)
        state = ckpt_lib.restore_train_state(path, model, optimizer)
    return int(state["step"])


def make_validator(model, config, level):
    """A function () -> {gap, hit_at_1, perr, map, videos} on --valid, inference mode, one
    seeded frame sub-sample per video (repeat index 0), the graph traced once per run."""
    import tensorflow as tf

    from yt8m_kit import data as data_lib
    from yt8m_kit.metrics import Evaluator

    valid_level = check_vocabulary(data_lib.detect_format(data_lib.list_files(config.valid),
                                                          allow_2017=config.allow_2017), config.valid).level
    if valid_level != level:
        raise ConfigError(f"--valid {config.valid} holds {valid_level}-level records but model "
                          f"{config.model!r} is {level} level")
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


class _Progress:
    """keras Progbar on stderr (it writes to stdout, which carries the result JSON)."""

    def __init__(self, total, start, enabled):
        import keras

        self.bar = keras.utils.Progbar(total, stateful_metrics=["loss", "ex/s", "gap"]) if enabled else None
        self.update(start, [])

    def update(self, step, values):
        if self.bar is not None:
            import contextlib

            with contextlib.redirect_stdout(sys.stderr):
                self.bar.update(step, values)


def run_loop(config, strategy, is_chief, level, total, model, optimizer):
    import numpy as np
    import tensorflow as tf

    from yt8m_kit import checkpoint as ckpt_lib

    meta = {"model": config.model, "overrides": model_overrides(config), "level": level}
    start = restore_latest(config, strategy, model, optimizer, meta)
    latest = ckpt_lib.list_checkpoints(config.out)
    result = TrainResult(config.out, start, latest[-1][1] if latest else None, start, None, None, 0.0, 0.0)
    if start >= total:
        return result
    ds = make_train_dataset(config, level, start_example=start * config.batch_size)
    batches = iter(strategy.experimental_distribute_dataset(ds))
    train_step = make_train_step(strategy, model, optimizer, config)
    writer = tf.summary.create_file_writer(os.path.join(config.out, "logs")) if is_chief else None
    progress = _Progress(total, start, config.progress and is_chief)
    valid_every = config.valid_every or config.checkpoint_every
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
        if is_chief and (step % config.checkpoint_every == 0 or step == total):
            result.checkpoint = ckpt_lib.save_checkpoint(
                config.out, step, model, meta, optimizer=optimizer,
                state={"examples_seen": step * config.batch_size, "seed": config.seed}, keep=config.keep)
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


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered model name (yt8m_kit.models.list_models())")
    p.add_argument("--train", required=True, help="training TFRecords: glob(s), comma-separated")
    p.add_argument("--valid", help="validation TFRecords for periodic GAP@20")
    p.add_argument("--out", required=True, help="run directory (created; an existing one is resumed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="train until this global step")
    g.add_argument("--epochs", type=float, help="train this many passes over --train (converted to steps)")
    p.add_argument("--batch-size", type=int, help="global batch size (default 64)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4)")
    p.add_argument("--lr-decay", type=float, help="staircase decay factor (default 0.8)")
    p.add_argument("--lr-decay-examples", type=int, help="examples per decay (default 4M)")
    p.add_argument("--clip-norm", type=float, help="global gradient-norm clip (default 1.0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model override, repeatable")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints (default 1000)")
    p.add_argument("--keep", type=int, default=5, help="checkpoints kept (default 5)")
    p.add_argument("--valid-every", type=int, help="steps between validations (default: each checkpoint)")
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "bfloat16"],
                   help="float32 or mixed_bfloat16 (bfloat16 is refused, with the reason)")
    p.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi_worker"],
                   help="tf.distribute strategy; multi_worker reads TF_CONFIG")
    p.add_argument("--seed", type=int, default=0, help="seed of init, shuffling and frame sampling")
    p.add_argument("--frames", type=int, default=300, help="frames sampled per video (frame level)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the training step (default strategy only; default: the model's "
                        "registered setting: on for the NetVLAD family (~2x faster here) and Soft-BoF "
                        "(~1.13x) at paper size)")
    p.add_argument("--allow-2017", action="store_true",
                   help="read 2017 YouTube-8M files (key 'video_id'); training on them is then refused with "
                        "the reason: their 4716 classes are not the 3862 that every registered model scores")
    p.add_argument("--skip-bad", action="store_true",
                   help="drop unreadable or malformed records (CRC errors, truncated tails, wrong sizes) of "
                        "--train/--valid instead of stopping; the end of the run reports how many and the first "
                        "few file/record/reason (a resumed run may turn it on to get past a bad record)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@cli_main
def main(argv=None):
    a = build_parser().parse_args(argv)
    tunables = resolve_tunables(a.model, {k: getattr(a, k) for k in TUNABLE})
    config = TrainConfig(
        model=a.model, train=a.train, out=a.out, **tunables,
        overrides=parse_set(a.set), valid=a.valid, valid_every=a.valid_every,
        checkpoint_every=a.checkpoint_every, keep=a.keep, precision=a.precision, strategy=a.strategy,
        tf_config=os.environ.get("TF_CONFIG") if a.strategy == "multi_worker" else None,
        seed=a.seed, frames=a.frames, xla=resolve_xla(a.model, a.xla, a.strategy), progress=not a.no_progress,
        allow_2017=a.allow_2017, skip_bad=a.skip_bad)
    result = train(config)
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
