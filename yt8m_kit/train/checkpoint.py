"""Run directories and checkpoints: written atomically, loadable with nothing but themselves.

RUN_DIR/
  run.json            model, overrides, training config (the trainer refuses a different one)
  ckpt-00001000/      model.json {"model", "overrides", "level", "step"}, model.weights.h5,
                      train_state/ (state.json + variables.npz: optimizer slots, RNG states)
  ckpt-averaged/      model.json (+ "averaged_steps", "bn_update") and model.weights.h5 (averaging.py)
  ckpt-ema/           with train --ema: the weight EMA, model.json (+ "ema", "bn_update") and weights (ema.py)

A checkpoint directory is built under a hidden temporary name and renamed into place, so
a reader (or a run killed with SIGKILL) never sees a half-written `ckpt-*`.
"""

import hashlib
import json
import os
import re
import shutil

import numpy as np

from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import atomic_path, read_json, write_json
from yt8m_kit.train.train_state import TRAIN_STATE, save_train_state

MODEL_JSON = "model.json"
WEIGHTS = "model.weights.h5"
RUN_JSON = "run.json"
AVERAGED = "ckpt-averaged"
EMA = "ckpt-ema"  # train/ema.py
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
# Overrides that change how a model computes, not which weights it has.
_PRECISION_KEYS = ("dtype",)


def checkpoint_name(step):
    return f"ckpt-{int(step):08d}"


def _fsync_tree(path):
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())


def write_run_json(run_dir, run):
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, RUN_JSON), run, sort_keys=True)


def save_checkpoint(run_dir, step, model, meta, optimizer=None, state=None, keep=None, name=None):
    """Write RUN_DIR/ckpt-<step> atomically; return its path.

    meta: {"model", "overrides", "level"} (step is added). optimizer: its slot variables and
    iteration go to train_state/ (with the model's seed-generator states) for an exact
    resume. state: JSON-able extras (e.g. examples seen). keep: then delete all but the
    newest `keep` numbered checkpoints. meta's overrides are written with every versioned field
    stated (models.explicit_overrides: a missing one means the model was built with its default).
    """
    from yt8m_kit.models import explicit_overrides

    meta = dict(meta, overrides=explicit_overrides(meta.get("model"), meta.get("overrides")))
    final = os.path.join(run_dir, name or checkpoint_name(step))
    with atomic_path(final) as tmp:
        os.makedirs(tmp)
        model.save_weights(os.path.join(tmp, WEIGHTS))
        write_json(os.path.join(tmp, MODEL_JSON), dict(meta, step=int(step)), sort_keys=True)
        if optimizer is not None or state is not None:
            save_train_state(os.path.join(tmp, TRAIN_STATE), step, model, optimizer, state)
        _fsync_tree(tmp)
    if keep:
        prune_checkpoints(run_dir, keep)
    return final


def prune_checkpoints(run_dir, keep):
    """Delete all but the newest `keep` numbered checkpoints (renamed away first, then removed)."""
    for _, path in list_checkpoints(run_dir)[:-keep]:
        doomed = os.path.join(run_dir, f".tmp-delete-{os.path.basename(path)}")
        shutil.rmtree(doomed, ignore_errors=True)  # left by a run killed while deleting
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def clean_stale_temporaries(run_dir):
    """Remove temp dirs left by a run that was killed while writing (names start '.tmp-')."""
    if os.path.isdir(run_dir):
        for entry in os.listdir(run_dir):
            if entry.startswith(".tmp-") and re.search(r"ckpt-\d+$", entry):
                shutil.rmtree(os.path.join(run_dir, entry), ignore_errors=True)


def list_checkpoints(run_dir):
    """Complete numbered checkpoints of a run, oldest first: [(step, path), ...]."""
    if not os.path.isdir(run_dir):
        return []
    found = []
    for entry in os.listdir(run_dir):
        m = _CKPT_RE.match(entry)
        path = os.path.join(run_dir, entry)
        if m and os.path.isfile(os.path.join(path, MODEL_JSON)):
            found.append((int(m.group(1)), path))
    return sorted(found)


def has_checkpoint(path):
    """True when `path` is a checkpoint directory or a run directory holding one."""
    path = os.fspath(path)
    return (os.path.isfile(os.path.join(path, MODEL_JSON)) or os.path.isfile(os.path.join(path, AVERAGED, MODEL_JSON))
            or bool(list_checkpoints(path)))


def resolve_checkpoint(path):
    """A checkpoint dir as is; a RUN_DIR -> its ckpt-averaged if present, else its ckpt-ema (weight EMA)
    when it is as new as the latest checkpoint, else its latest.

    An average older than the run's newest checkpoint (the run was resumed after averaging) is
    refused with the fix, never used silently: re-average, or name the checkpoint to use."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, MODEL_JSON)):
        return path
    if not os.path.isdir(path):
        raise ConfigError(f"checkpoint or run directory {path} does not exist")
    averaged = os.path.join(path, AVERAGED)
    ckpts = list_checkpoints(path)
    if os.path.isfile(os.path.join(averaged, MODEL_JSON)):
        steps = read_json(os.path.join(averaged, MODEL_JSON), "checkpoint config").get("averaged_steps") or []
        if ckpts and steps and ckpts[-1][0] > max(steps):
            raise ConfigError(
                f"{averaged} averages steps {steps}, but the run has a newer checkpoint, {ckpts[-1][1]}: "
                f"re-average (python -m yt8m_kit.average {path} --last K), or name the checkpoint to use "
                f"({averaged} or {ckpts[-1][1]})")
        return averaged
    ema = os.path.join(path, EMA)
    if os.path.isfile(os.path.join(ema, MODEL_JSON)):  # a run trained with --ema (train/ema.py)
        step = read_json(os.path.join(ema, MODEL_JSON), "checkpoint config").get("step")
        if not ckpts or step == ckpts[-1][0]:
            return ema
    if not ckpts:
        raise ConfigError(f"{path} holds no checkpoint (no ckpt-*/model.json): train first with "
                          f"python -m yt8m_kit.train --out {path} ...")
    return ckpts[-1][1]


def describe(ckpt):
    """One line on what a checkpoint directory holds, for the commands that resolve a run to it."""
    meta = read_json(os.path.join(ckpt, MODEL_JSON), "checkpoint config")
    bn = meta.get("bn_update") or {"skipped": "made before BN statistics were recomputed"}
    bn_text = f"BN statistics recomputed on {bn['videos']} videos" if "videos" in bn else f"BN: {bn['skipped']}"
    if "ema" in meta:
        return f"{ckpt} ({meta.get('model')}, weight EMA (decay {meta['ema']['decay']:.6g}) at step {meta.get('step')}; {bn_text})"
    if "averaged_steps" not in meta:
        return f"{ckpt} ({meta.get('model')}, step {meta.get('step')})"
    return f"{ckpt} ({meta.get('model')}, average of steps {meta['averaged_steps']}; {bn_text})"


def read_meta(path):
    """model.json of a checkpoint (or of the one a RUN_DIR resolves to)."""
    ckpt = resolve_checkpoint(path)
    meta = read_json(os.path.join(ckpt, MODEL_JSON), "checkpoint config")
    for key in ("model", "overrides"):
        if key not in meta:
            raise ConfigError(f"{ckpt}/{MODEL_JSON} lacks '{key}': not a yt8m_kit checkpoint")
    from yt8m_kit.models import saved_overrides

    return dict(meta, overrides=saved_overrides(meta["model"], meta["overrides"]))


def as_json(value):
    """The value as it reads back from JSON (tuples become lists): compare like with like."""
    return json.loads(json.dumps(value))


def meta_differences(found, expected, ignore=_PRECISION_KEYS):
    """Human-readable differences in model name and overrides (precision keys ignored)."""
    found, expected = as_json(found), as_json(expected)
    diffs = []
    if found.get("model") != expected.get("model"):
        diffs.append(f"model ({found.get('model')!r} vs {expected.get('model')!r})")
    fo, eo = found.get("overrides") or {}, expected.get("overrides") or {}
    for key in sorted(set(fo) | set(eo)):
        if key not in ignore and fo.get(key) != eo.get(key):
            diffs.append(f"overrides.{key} ({fo.get(key, '<default>')!r} vs {eo.get(key, '<default>')!r})")
    return diffs


def check_meta(found, expected, where):
    diffs = meta_differences(found, expected)
    if diffs:
        raise ConfigError(f"checkpoint {where} does not match the requested model; it differs in: "
                          + ", ".join(diffs) + " (checkpoint value vs requested value)")


def build_model(meta, dtype=None):
    """A fresh model from a checkpoint's model.json (dtype overrides its precision)."""
    from yt8m_kit.models import create_model, saved_overrides

    overrides = saved_overrides(meta["model"], meta.get("overrides"))  # as the checkpoint was trained
    if dtype is not None:
        overrides["dtype"] = dtype
    try:
        return create_model(meta["model"], **overrides)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"cannot build model {meta['model']!r} with overrides {overrides}: {e}") from e


def load_weights_into(model, ckpt):
    path = os.path.join(ckpt, WEIGHTS)
    if not os.path.isfile(path):
        if not os.path.isdir(ckpt):  # checkpoints are written whole (atomic rename): this one was removed
            raise ConfigError(f"checkpoint {ckpt} was removed while it was being loaded (a run still training "
                              "prunes its oldest checkpoints: --keep): rerun, or name a checkpoint it keeps")
        raise ConfigError(f"checkpoint {ckpt} has no {WEIGHTS}: it is incomplete; delete it")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError) as e:
            raise ConfigError(f"cannot load {path} into model {model.name}: {e}") from e
    # Keras only warns when a layer has no weights in the file and keeps its random init.
    skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)
               or "Skipping" in str(w.message)]
    if skipped:
        raise ConfigError(f"cannot load {path} into model {model.name}: the file lacks weights for "
                          f"part of the model ({skipped[0][:200]}); it was written by a different model")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def load_model(path, dtype=None, expect=None):
    """(keras.Model, meta) from a checkpoint dir or RUN_DIR; needs nothing but the checkpoint.

    dtype: build in another precision ("bfloat16" casts the weights on load).
    expect: {"model", "overrides"} the caller requires; a mismatch is a ConfigError naming it.
    """
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    if expect is not None:
        check_meta(meta, expect, ckpt)
    model = build_model(meta, dtype)
    load_weights_into(model, ckpt)
    return model, dict(meta, path=ckpt)


def weights_fingerprint(weights_path):
    """sha256 of every dataset (name, dtype, shape, bytes) in a .weights.h5, in sorted order."""
    import h5py

    h = hashlib.sha256()
    with h5py.File(weights_path, "r") as f:
        items = []
        f.visititems(lambda name, obj: items.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in sorted(items):
            data = f[name][()]
            h.update(f"{name}|{data.dtype.str}|{data.shape}|{f[name].attrs.get('dtype', '')}".encode())
            h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


def fingerprint(path):
    """Content hash of a checkpoint: its weights plus model name and architecture overrides.

    Independent of the directory name, step and file timestamps: the same weights give
    the same fingerprint wherever they are copied.
    """
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    arch = {k: v for k, v in (meta.get("overrides") or {}).items() if k not in _PRECISION_KEYS}
    h = hashlib.sha256(json.dumps({"model": meta["model"], "overrides": arch}, sort_keys=True).encode())
    h.update(weights_fingerprint(os.path.join(ckpt, WEIGHTS)).encode())
    return h.hexdigest()[:32]
