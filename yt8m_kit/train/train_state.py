"""A checkpoint's training state (train_state/): the optimizer's slots and iteration and the model's
variables that save_weights skips (dropout seed generators), so that a resumed run is bit-identical
to an uninterrupted one."""

import os

import numpy as np

from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import read_json, write_json

TRAIN_STATE = "train_state"  # the folder of a checkpoint that holds it


def extra_variables(model):
    """Model variables that save_weights skips (e.g. dropout seed-generator states)."""
    weight_ids = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


def save_train_state(path, step, model, optimizer, state):
    """Write train_state/ at `path`: variables.npz and state.json (`state` plus step and variable names)."""
    os.makedirs(path)
    arrays, names = {}, {"optimizer": [], "model_extra": []}
    for kind, variables in (("optimizer", optimizer.variables if optimizer is not None else []),
                            ("model_extra", extra_variables(model))):
        for i, v in enumerate(variables):
            arrays[f"{kind}_{i}"] = np.asarray(v.numpy())
            names[kind].append(v.path)
    np.savez(os.path.join(path, "variables.npz"), **arrays)
    write_json(os.path.join(path, "state.json"), dict(state or {}, step=int(step), variables=names), sort_keys=True)


def restore_train_state(ckpt, model, optimizer):
    """Load train_state/ of `ckpt` into a built optimizer and the model's extra variables.

    Returns the state dict (with "step"). The model weights are loaded separately. A missing, truncated or
    corrupt state.json or variables.npz is a ConfigError naming the file and how to resume without it.
    """
    path = os.path.join(ckpt, TRAIN_STATE)
    json_path, npz_path = os.path.join(path, "state.json"), os.path.join(path, "variables.npz")
    state = _read(ckpt, json_path, lambda: read_json(json_path, "training state"))
    with _read(ckpt, npz_path, lambda: np.load(npz_path)) as data:
        for kind, variables in (("optimizer", optimizer.variables), ("model_extra", extra_variables(model))):
            saved = _read(ckpt, json_path, lambda: state["variables"][kind])
            if len(saved) != len(variables):
                raise ConfigError(
                    f"{path}: saved {len(saved)} {kind} variables, the current run has {len(variables)}; "
                    f"the checkpoint was written by a different model or optimizer: use a new --out")
            for i, v in enumerate(variables):
                value = _read(ckpt, npz_path, lambda: data[f"{kind}_{i}"])
                if tuple(value.shape) != tuple(v.shape):
                    raise ConfigError(f"{path}: {kind} variable {saved[i]} has shape {value.shape}, "
                                      f"the current run's {v.path} has {tuple(v.shape)}")
                v.assign(value)
    return state


def _read(ckpt, path, read):
    """read(), a failure to read `path` (missing, truncated, corrupt) becoming a ConfigError on how to go on."""
    import zipfile
    import zlib

    try:
        return read()
    except (ConfigError, OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        why = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
        raise ConfigError(f"checkpoint {ckpt} cannot be resumed: its training state {path} is missing or unreadable "
                          f"({why}). Its weights may still be whole (evaluate or average it as it is); to train on, "
                          f"delete {ckpt} and rerun, which resumes from the checkpoint before it (or starts the run "
                          "again when it is the only one), or use a new --out") from None
