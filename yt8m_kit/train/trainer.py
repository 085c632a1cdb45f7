"""train(config): train or resume one registered model in a run directory (see yt8m_kit.train.cli)."""

import json
import math
import os
import sys

from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import read_json
from yt8m_kit.train.config import model_overrides, run_differences, run_record, validate_config
from yt8m_kit.train.loop import check_vocabulary, run_loop


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
    from yt8m_kit.data import dataset as data_lib
    from yt8m_kit.models import model_info

    level = model_info(config.model)["level"]
    files = data_lib.list_files(config.train)
    data_level = check_vocabulary(data_lib.detect_format(files, allow_2017=config.allow_2017), config.train).level
    if data_level != level:
        raise ConfigError(f"model {config.model!r} is {level} level but --train {config.train} holds "
                          f"{data_level}-level records: train {level}-level models on {level}-level data")
    record = run_record(config, level)
    check_resume(config, record)
    examples = None
    if level == "video" or config.epochs is not None:
        examples = checked_count(config.train, files, config)
    if config.steps is not None:
        total = config.steps
    else:
        total = max(1, math.ceil(config.epochs * examples / config.batch_size))
    return level, record, total


def check_resume(config, record):
    """Refuse a run directory whose run.json another configuration wrote, saying how to resume it."""
    from yt8m_kit.train import checkpoint as ckpt_lib

    run_path = os.path.join(config.out, ckpt_lib.RUN_JSON)
    if os.path.exists(run_path):
        from yt8m_kit.models import saved_overrides

        old = read_json(run_path, "run config")
        old = dict(old, overrides=saved_overrides(old.get("model"), old.get("overrides")))  # as it was trained
        diffs = run_differences(old, record)
        if diffs:
            from yt8m_kit.models.configs import LEGACY_VALUES

            raw = old.get("overrides") or {}
            legacy = {k: v for k, v in raw.items() if k in LEGACY_VALUES and k not in (read_json(
                run_path, "run config").get("overrides") or {}) and (record.get("overrides") or {}).get(k) != v}
            hint = ""
            if legacy:  # the run predates fields that changed the architecture's defaults: say how to resume it
                sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in sorted(legacy.items()))
                hint = (f" The run predates the architecture fields {', '.join(sorted(legacy))} (models/configs.py "
                        f"LEGACY_VALUES; input_bn, cluster_bn, hidden_init, debiased_bn, pooling: the scales change of "
                        f"2026-12-07): resume it as it was trained with {sets}, or start a new --out with today's "
                        "defaults.")
            raise ConfigError(f"{run_path} was written by a different run; it differs in: " + ", ".join(diffs)
                              + ". Rerun with the original settings to resume, or use a new --out." + hint)


def checked_count(pattern, files, config):
    """Records in `files`, from one pass that also refuses a video id seen twice (naming both records)
    and bad labels; with --skip-bad only a count (bad records are dropped later, not refused)."""
    from yt8m_kit.data import dataset as data_lib

    if config.skip_bad:
        return data_lib.count_records(files, skip_bad=True)  # the readable records, as the reader sees them
    ids, _ = data_lib.read_ids_and_labels(pattern, allow_2017=config.allow_2017)
    return len(ids)


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
        ema = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}  # train/ema.py
        optimizer = keras.optimizers.Adam(learning_rate=schedule, **ema)
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
    if not is_chief:
        return run_loop(config, strategy, is_chief, level, total, model, optimizer)
    from yt8m_kit.fileio import exclusive_lock
    from yt8m_kit.train import checkpoint as ckpt_lib

    # One process trains a run directory at a time (a killed one leaves no lock behind). Taken only now: a
    # model that cannot be built must not pin the run directory; run.json is checked again under the lock.
    with exclusive_lock(config.out):
        check_resume(config, record)  # again: another run may have written run.json since
        ckpts = ckpt_lib.list_checkpoints(config.out)
        if ckpts and ckpts[-1][0] > total:  # before run.json is rewritten with the smaller total
            raise ConfigError(f"{config.out} is at step {ckpts[-1][0]}, past the {total} steps asked for: nothing "
                              f"to train. To train on, give --steps above {ckpts[-1][0]}; to use it as it is, "
                              f"average or evaluate it")
        if ckpts and ckpts[-1][0] == total:
            print(f"{config.out} is already at step {total}: nothing to train", file=sys.stderr)
        ckpt_lib.write_run_json(config.out, record)
        ckpt_lib.clean_stale_temporaries(config.out)
        return run_loop(config, strategy, is_chief, level, total, model, optimizer)
