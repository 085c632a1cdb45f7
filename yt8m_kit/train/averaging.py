"""Average the weights of several checkpoints of one run (Tang et al. 2018, after SWA).

    python -m yt8m_kit.average RUN_DIR [--last K | --steps a,b,c] [--bn-batches N | --no-bn-update]

Which checkpoints, by default: those the run keeps in its last third (steps from 2/3 of its newest one), at
most the newest 10: Tang et al.'s 10 checkpoints 10,000 steps apart of a ~300,000-step run. The trainer's
defaults keep exactly those (10 checkpoints, 1/30 of the run apart); a run that kept fewer, or kept them
closer together, averages what it has in the window and says how much of the window that covers.

Writes RUN_DIR/ckpt-averaged atomically: model.json (with "averaged_steps" and "bn_update") and
the element-wise mean of every weight, computed on the .weights.h5 files. Then, as SWA does, the
batch-norm statistics are recomputed for the averaged weights (yt8m_kit.train.bn_update) on at most
N batches of the run's own training data (its --train, batch size, frames and seed from run.json;
--train to use other records): the mean of the checkpoints' statistics describes none of them, and
scored below the latest checkpoint. Models without batch norm skip the step.
"""

import argparse
import os
import shutil
import sys

import h5py
import numpy as np

from yt8m_kit.train.checkpoint import (AVERAGED, MODEL_JSON, WEIGHTS, checkpoint_name,
                                 list_checkpoints, meta_differences)
from yt8m_kit.errors import ConfigError, cli_main
from yt8m_kit.train.config import AVERAGE_CHECKPOINTS, AVERAGE_FRACTION
from yt8m_kit.fileio import atomic_path, read_json, write_json


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


def default_window(ckpts):
    """(chosen [(step, path)], note or None): the kept checkpoints in the last AVERAGE_FRACTION of the run (the
    newest step's), at most AVERAGE_CHECKPOINTS of them, the newest."""
    newest = ckpts[-1][0]
    start = newest * (1 - AVERAGE_FRACTION)
    chosen = [c for c in ckpts if c[0] > start or c[0] == newest][-AVERAGE_CHECKPOINTS:]
    span = chosen[-1][0] - chosen[0][0]
    note = None
    if len(chosen) < AVERAGE_CHECKPOINTS and newest - start > 0 and span < 0.8 * (newest - start):
        note = (f"the run keeps {len(chosen)} checkpoint(s) in its last third (steps {int(start)}-{newest}), spanning "
                f"{span} steps: for the authors' average, train with --keep {AVERAGE_CHECKPOINTS} and the default "
                f"--checkpoint-every ({AVERAGE_CHECKPOINTS} checkpoints over the last third)")
    return chosen, note


def select_checkpoints(run_dir, last=None, steps=None, log=None):
    """[(step, path)] chosen by --last K, an explicit list of steps, or (neither) default_window."""
    if not os.path.isdir(run_dir):
        raise ConfigError(f"run directory {run_dir} does not exist")
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
    chosen, note = default_window(ckpts)
    if note and log:
        log(f"note: {note}")
    return chosen


BN_BATCHES = 100  # batches of the run's batch size (6,400 videos at the paper's 64); at most one pass


def recompute_batch_norm(run_dir, ckpt, meta, max_batches, train=None, log=None):
    """Recompute the BN statistics of the weights in checkpoint dir `ckpt` (model.json `meta`) on
    the run's training data, in place; returns what was done (for model.json's "bn_update")."""
    from yt8m_kit.data import dataset as data_lib
    from yt8m_kit.train.bn_update import batch_norm_layers, update_batch_norm
    from yt8m_kit.train.checkpoint import RUN_JSON, build_model, load_weights_into

    if max_batches < 1:
        return {"skipped": "--no-bn-update: the averaged moving statistics are kept"}
    model = build_model(meta)
    if not batch_norm_layers(model):
        return {"skipped": "the model has no batch norm"}
    run_json = os.path.join(run_dir, RUN_JSON)
    run = read_json(run_json, "run config") if os.path.isfile(run_json) else {}
    fixed, schedule = run.get("train", {}), run.get("schedule", {})
    pattern = train or fixed.get("train")
    if not pattern:
        raise ConfigError(f"{run_json} does not name the run's training data: pass --train PATTERN for the "
                          "batch-norm update (or --no-bn-update)")
    load_weights_into(model, ckpt)
    kwargs = dict(level=meta["level"], shuffle=True, seed=fixed.get("seed", 0), epochs=1,
                  allow_2017=schedule.get("allow_2017", False), skip_bad=schedule.get("skip_bad", False))
    if meta["level"] == "frame":
        kwargs.update(frames="sample", num_samples=fixed.get("frames", 300))
    batch_size = fixed.get("batch_size", 64)
    if log:
        log(f"recomputing batch-norm statistics on at most {max_batches} batches of {batch_size} from {pattern}")
    ds = data_lib.make_dataset(pattern, batch_size, **kwargs)
    done = update_batch_norm(model, data_lib.iterate(ds), max_batches)
    model.save_weights(os.path.join(ckpt, WEIGHTS))
    return dict(done, data=pattern, batch_size=batch_size)


def average_checkpoints(run_dir, last=None, steps=None, out=None, bn_batches=BN_BATCHES, train=None, log=None,
                        attempts=3):
    """Average checkpoints of RUN_DIR into `out` (default RUN_DIR/ckpt-averaged), then recompute its
    batch-norm statistics on at most `bn_batches` training batches (0: keep the averaged ones);
    return its path. A checkpoint that a run still training prunes (--keep) while it is read is not an
    error: the checkpoints are chosen again, at most `attempts` times in all."""
    for attempt in range(attempts):
        try:
            return _average(run_dir, last, steps, out, bn_batches, train, log)
        except FileNotFoundError as e:
            if attempt + 1 == attempts or not os.path.isdir(run_dir):
                raise ConfigError(f"{e.filename or e} disappeared while it was read, {attempts} times: is {run_dir} "
                                  "being trained with a small --keep? Average once it pauses, or with --steps of "
                                  "checkpoints it keeps") from None
            if log:
                log(f"note: a checkpoint was pruned while it was read ({e.filename}); choosing again")


def _average(run_dir, last, steps, out, bn_batches, train, log):
    chosen = select_checkpoints(run_dir, last=last, steps=steps, log=log)
    for _, p in chosen:  # pruned since it was listed: FileNotFoundError, which the caller retries
        if not os.path.isfile(os.path.join(p, MODEL_JSON)):
            raise FileNotFoundError(2, "checkpoint pruned", os.path.join(p, MODEL_JSON))
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
        meta["bn_update"] = recompute_batch_norm(run_dir, tmp, meta, bn_batches, train=train, log=log)
        write_json(os.path.join(tmp, MODEL_JSON), meta, sort_keys=True)
    return out


def _parse_steps(text):
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps expects comma-separated integers such as 1000,2000, got {text!r}") from None


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.average", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="run directory holding ckpt-* checkpoints")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--last", type=int,
                       help=f"average the newest K checkpoints (default: the kept ones of the run's last third, at most "
                            f"{AVERAGE_CHECKPOINTS}: Tang et al.'s 10 checkpoints 10k steps apart of a 300k-step run)")
    group.add_argument("--steps", help="average exactly these steps, e.g. 1000,2000,3000")
    p.add_argument("--out", help=f"output checkpoint directory (default: RUN_DIR/{AVERAGED})")
    bn = p.add_mutually_exclusive_group()
    bn.add_argument("--bn-batches", type=int, default=BN_BATCHES,
                    help=f"recompute batch-norm statistics on at most N training batches (default {BN_BATCHES}, "
                         "at the run's batch size; one pass over the data at most)")
    bn.add_argument("--no-bn-update", action="store_true",
                    help="keep the mean of the checkpoints' batch-norm statistics (not recommended)")
    p.add_argument("--train", help="training records for the BN update (default: the run's --train, from run.json)")
    return p


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    steps = _parse_steps(args.steps) if args.steps else None
    if args.bn_batches < 0:
        raise ConfigError(f"--bn-batches ({args.bn_batches}) must be 0 or more")
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    out = average_checkpoints(args.run_dir, last=args.last, steps=steps, out=args.out,
                              bn_batches=0 if args.no_bn_update else args.bn_batches, train=args.train, log=log)
    meta = read_json(os.path.join(out, MODEL_JSON))
    bn = meta["bn_update"]
    bn_text = (f"batch-norm statistics recomputed on {bn['videos']} videos ({bn['batches']} batches)"
               if "batches" in bn else bn["skipped"])
    print(f"averaged steps {meta['averaged_steps']} of {meta['model']} -> {out}; {bn_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
