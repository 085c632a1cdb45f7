"""Average the weights of several checkpoints of one run (Tang et al. 2018, after SWA).

    python -m yt8m_kit.average RUN_DIR [--last K | --steps a,b,c]

Writes RUN_DIR/ckpt-averaged atomically: model.json (with "averaged_steps") and the
element-wise linear mean of every weight, non-trainable ones (batch-norm statistics)
included. Works on the .weights.h5 files directly, so no model is built.
"""

import argparse
import os
import shutil
import sys

import h5py
import numpy as np

from yt8m_kit.train.checkpoint import (AVERAGED, MODEL_JSON, WEIGHTS, checkpoint_name,
                                 list_checkpoints, meta_differences, read_json)
from yt8m_kit.errors import ConfigError, cli_main
from yt8m_kit.fileio import atomic_path, write_json


def _datasets(f):
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _as_float64(ds):
    """A stored weight as float64; bfloat16 weights are stored as 2-byte opaque + attr."""
    data = ds[()]
    if ds.attrs.get("dtype") == "bfloat16":
        import ml_dtypes

        return np.asarray(data).view(ml_dtypes.bfloat16).astype(np.float64)
    return np.asarray(data, dtype=np.float64)


def _store(ds, mean):
    if ds.attrs.get("dtype") == "bfloat16":
        import ml_dtypes

        ds[...] = mean.astype(ml_dtypes.bfloat16).view(ds.dtype)
    else:
        ds[...] = mean.astype(ds.dtype)


def average_weight_files(paths, out_path):
    """Write to out_path the element-wise mean of the .weights.h5 files `paths`.

    Floating-point weights are averaged in float64 and stored in their own dtype; integer
    variables (counters) are taken from the last file. Every file must hold the same
    datasets with the same shapes.
    """
    files = [h5py.File(p, "r") for p in paths]
    try:
        names = _datasets(files[-1])
        for p, f in zip(paths, files):
            other = _datasets(f)
            if other != names:
                missing = sorted(set(names) ^ set(other))[:5]
                raise ConfigError(f"{p} holds different weights from {paths[-1]} (e.g. {missing}): "
                                  "only checkpoints of one model can be averaged")
        shutil.copyfile(paths[-1], out_path)
        with h5py.File(out_path, "r+") as out:
            for name in names:
                ds = out[name]
                shapes = {f[name].shape for f in files}
                if len(shapes) != 1:
                    raise ConfigError(f"weight {name} has shapes {sorted(shapes)} across checkpoints")
                floating = ds.attrs.get("dtype") == "bfloat16" or np.issubdtype(ds.dtype, np.floating)
                if not floating or ds.shape is None:
                    continue
                total = np.zeros(ds.shape, np.float64)
                for f in files:
                    total += _as_float64(f[name])
                _store(ds, total / len(files))
    finally:
        for f in files:
            f.close()


def select_checkpoints(run_dir, last=None, steps=None):
    """[(step, path)] chosen by --last K (default: all) or an explicit list of steps."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise ConfigError(f"{run_dir} holds no checkpoint (ckpt-*): train first")
    if steps:
        by_step = dict(ckpts)
        missing = [s for s in steps if s not in by_step]
        if missing:
            raise ConfigError(f"{run_dir} has no checkpoint for steps {missing}; it has steps "
                              f"{[s for s, _ in ckpts]}")
        return [(s, by_step[s]) for s in sorted(set(steps))]
    if last is not None:
        if last < 1:
            raise ConfigError(f"--last must be at least 1, got {last}")
        if last > len(ckpts):
            raise ConfigError(f"--last {last} asks for more checkpoints than {run_dir} keeps "
                              f"({len(ckpts)}: steps {[s for s, _ in ckpts]})")
        return ckpts[-last:]
    return ckpts


def average_checkpoints(run_dir, last=None, steps=None, out=None):
    """Average checkpoints of RUN_DIR into `out` (default RUN_DIR/ckpt-averaged); return its path."""
    chosen = select_checkpoints(run_dir, last=last, steps=steps)
    metas = [read_json(os.path.join(p, MODEL_JSON), "checkpoint config") for _, p in chosen]
    for (step, path), meta in zip(chosen, metas):
        diffs = meta_differences(meta, metas[-1], ignore=())
        if diffs:
            raise ConfigError(f"{path} differs from {chosen[-1][1]} in " + ", ".join(diffs)
                              + ": checkpoints of different models cannot be averaged")
    out = out or os.path.join(run_dir, AVERAGED)
    with atomic_path(out) as tmp:
        os.makedirs(tmp)
        average_weight_files([os.path.join(p, WEIGHTS) for _, p in chosen], os.path.join(tmp, WEIGHTS))
        meta = {k: v for k, v in metas[-1].items() if k != "path"}
        meta["averaged_steps"] = [s for s, _ in chosen]
        meta["averaged_from"] = [checkpoint_name(s) for s, _ in chosen]
        write_json(os.path.join(tmp, MODEL_JSON), meta, sort_keys=True)
    return out


def _parse_steps(text):
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps expects comma-separated integers such as 1000,2000, got {text!r}") from None


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.average", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="run directory holding ckpt-* checkpoints")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--last", type=int, help="average the newest K checkpoints (default: all kept)")
    group.add_argument("--steps", help="average exactly these steps, e.g. 1000,2000,3000")
    p.add_argument("--out", help=f"output checkpoint directory (default: RUN_DIR/{AVERAGED})")
    args = p.parse_args(argv)
    steps = _parse_steps(args.steps) if args.steps else None
    out = average_checkpoints(args.run_dir, last=args.last, steps=steps, out=args.out)
    meta = read_json(os.path.join(out, MODEL_JSON))
    print(f"averaged steps {meta['averaged_steps']} of {meta['model']} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
