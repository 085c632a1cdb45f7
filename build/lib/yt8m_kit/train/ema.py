"""Weight EMA (the 1st place's exponential moving average of the weights): `train --ema DECAY_OR_HALFLIFE`.

The optimizer keeps, for every trainable weight w, an average a updated after each step:
    a_1 = w_1,    a_t = d * a_{t-1} + (1 - d) * w_t
(Keras' optimizer EMA: `use_ema=True, ema_momentum=d`; its averages are optimizer variables, so they
are saved in each checkpoint's train_state and a resumed run continues them exactly). `--ema` takes
the decay d itself (0 < d < 1) or a half-life in steps (H >= 1, d = 0.5 ** (1 / H)).

At every checkpoint the averaged weights are also written as RUN_DIR/ckpt-ema, a complete checkpoint
(model.json with "ema": {decay, step}, weights), replaced atomically. As for averaged checkpoints,
the batch-norm statistics the run learnt belong to the raw weights, so they are recomputed for the
EMA weights on training batches (yt8m_kit.train.averaging.recompute_batch_norm; model.json
"bn_update"). A RUN_DIR resolves to ckpt-averaged, else to ckpt-ema when it is as new as the latest
checkpoint, else to the latest (train/checkpoint.resolve_checkpoint), so evaluate, submit.py and
inference use the EMA weights of a run trained with --ema.
"""

import os

from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import atomic_path, write_json
from yt8m_kit.train.checkpoint import EMA, MODEL_JSON, WEIGHTS



def parse_ema(value):
    """--ema's value -> the decay per step: a decay in (0, 1) as is, a half-life H >= 1 (steps) as 0.5 ** (1/H)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--ema {value!r}: give a decay in (0, 1), e.g. 0.999, or a half-life in steps, e.g. 700")
    if 0 < value < 1:
        return value
    if value >= 1:
        return 0.5 ** (1.0 / value)
    raise ConfigError(f"--ema {value}: give a decay in (0, 1), e.g. 0.999, or a half-life in steps (>= 1)")


def save_ema_checkpoint(run_dir, step, model, optimizer, meta, decay, bn_batches, log=None):
    """Write RUN_DIR/ckpt-ema: the optimizer's averaged weights (the model's own are restored after),
    with batch-norm statistics recomputed on at most `bn_batches` training batches; return its path."""
    from yt8m_kit.models import explicit_overrides
    from yt8m_kit.train.averaging import recompute_batch_norm

    raw = [v.numpy() for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)  # the model now holds the averages
    try:
        final = os.path.join(run_dir, EMA)
        with atomic_path(final) as tmp:
            os.makedirs(tmp)
            model.save_weights(os.path.join(tmp, WEIGHTS))
            record = dict(meta, overrides=explicit_overrides(meta.get("model"), meta.get("overrides")),
                          step=int(step), ema={"decay": float(decay), "step": int(step)})
            record["bn_update"] = recompute_batch_norm(run_dir, tmp, record, bn_batches, log=log)
            write_json(os.path.join(tmp, MODEL_JSON), record, sort_keys=True)
    finally:
        for v, value in zip(model.trainable_variables, raw):
            v.assign(value)
    return final
