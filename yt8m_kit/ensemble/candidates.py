"""The planner's candidates: every run under a directory at each precision, with its validation
predictions made at that precision (cached in RUN_DIR/predictions/, reused only when checkpoint
fingerprint, data, precision, repeats, seed and frames all match) and its exact stored bytes."""

import hashlib
import json
import os

import numpy as np

from yt8m_kit import NUM_CLASSES
from yt8m_kit.data.records import data_signature
from yt8m_kit.ensemble import search
from yt8m_kit.errors import ConfigError, DataError
from yt8m_kit.train import checkpoint as ckpt_lib


def _where_runs_are(runs_dir):
    """A hint naming the demo's runs when they exist and were not what was looked in."""
    demo = os.path.join("demo_out", "runs")
    if os.path.isdir(demo) and os.path.abspath(demo) != os.path.abspath(runs_dir):
        return f"; the demo's runs are in {demo}: python submit.py --budget 1GB --runs {demo}"
    return ""


def find_runs(runs_dir, log=None):
    """Run directories under `runs_dir` (each holding a checkpoint), sorted by name; `log` is told of the
    directories skipped for having none (once: default_valid lists the runs too, silently)."""
    if not os.path.isdir(runs_dir):
        raise ConfigError(f"--runs {runs_dir} is not a directory: train models first "
                          f"(python -m yt8m_kit.train --out {runs_dir}/NAME ...)" + _where_runs_are(runs_dir))
    runs = []
    for entry in sorted(os.listdir(runs_dir)):
        path = os.path.join(runs_dir, entry)
        if os.path.isdir(path) and not entry.startswith("."):
            if ckpt_lib.has_checkpoint(path):
                ckpt_lib.resolve_checkpoint(path)  # a stale average is refused here, naming the run
                runs.append(path)
            elif log is not None:
                log(f"skipping {path}: no checkpoint in it (ckpt-*)")
    if not runs:
        raise ConfigError(f"no run with a checkpoint under {runs_dir} (looked for {runs_dir}/NAME/ckpt-*): train "
                          f"models first (python -m yt8m_kit.train --out {runs_dir}/NAME ...)"
                          + _where_runs_are(runs_dir))
    return runs


def run_name(run_dir):
    """How plan.json, the artifact and the printed tables name a run: its directory's name (never an
    absolute path); unique, since runs are the directories directly under --runs (find_runs)."""
    return os.path.basename(os.path.normpath(run_dir))


def default_valid(runs_dir):
    """The validation pattern the runs under `runs_dir` were trained with (run.json), when
    they name exactly one; else a ConfigError asking for --valid."""
    patterns = {}
    for run in find_runs(runs_dir):
        try:
            with open(os.path.join(run, "run.json")) as f:
                valid = json.load(f).get("schedule", {}).get("valid")
        except (OSError, ValueError):
            valid = None
        if valid:
            patterns.setdefault(valid, []).append(os.path.basename(run))
    if len(patterns) != 1:
        found = "; ".join(f"{p} ({', '.join(r)})" for p, r in patterns.items()) or "none"
        raise ConfigError(f"pass --valid PATTERN: the runs under {runs_dir} do not name one validation set "
                          f"(trained with --valid: {found})")
    return next(iter(patterns))


def prediction_key(fingerprint, valid, precision, repeats, seed, num_samples):
    data = ",".join(os.path.abspath(p.strip()) for p in str(valid).split(","))  # same files, same key
    return {"checkpoint_fingerprint": fingerprint, "data": data, "data_signature": data_signature(valid),
            "precision": precision, "repeats": int(repeats), "seed": int(seed), "num_samples": int(num_samples)}


def cached_predictions(run_dir, member, key, config, log):
    """Path of RUN_DIR/predictions/<precision>-<hash>.h5 for `key`, computed unless current."""
    from yt8m_kit.evaluate import prediction_files as pred_lib
    from yt8m_kit.evaluate.predict_loop import predict_batches

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(run_dir, "predictions", f"{key['precision']}-{digest}.h5")
    if os.path.isfile(path):
        attrs = pred_lib.read_attrs(path)
        if all(attrs.get(k) == v for k, v in key.items()):
            log(f"  reuse {path}")
            return path
    log(f"  predict {run_dir} at {key['precision']} on {config.valid} -> {path}")
    attrs = dict(key, checkpoint=ckpt_lib.resolve_checkpoint(run_dir))
    with pred_lib.PredictionWriter(path, attrs) as writer:
        for ids, scores, labels in predict_batches(member, config.valid, repeats=config.repeats,
                                                   seed=config.seed, batch_size=config.batch_size,
                                                   num_samples=config.num_samples):
            if labels is None:
                raise DataError("validation records have no labels: --valid needs labelled data", file=config.valid)
            writer.add(ids, scores, labels)
    return path


def open_scores(path, handles, ids0):
    """(ids, scores, indptr, indices) of a prediction file. scores stays an h5 dataset (read
    lazily, in blocks, by plan.SubsetGap) when the videos come in the order ids0 has."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"cannot open as a prediction h5 file ({e}); delete it and rerun", file=path) from e
    handles.append(f)
    if "label_indptr" not in f:
        raise DataError("prediction file has no labels: --valid needs labelled data; delete it and rerun", file=path)
    missing = [k for k in ("ids", "scores", "label_indices") if k not in f]
    if missing:
        raise DataError(f"prediction file lacks {', '.join(missing)}; delete it and rerun", file=path)
    ids = [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in f["ids"][:]]
    if tuple(f["scores"].shape) != (len(ids), NUM_CLASSES):
        raise DataError(f"prediction file holds scores of shape {tuple(f['scores'].shape)} for {len(ids)} videos, "
                        f"not ({len(ids)}, {NUM_CLASSES}): not this toolkit's predictions of these runs; delete it "
                        "and rerun", file=path)
    indptr, indices = f["label_indptr"][:], f["label_indices"][:]
    if ids0 is None or ids == ids0:
        return ids, f["scores"], indptr, indices
    pos = {v: i for i, v in enumerate(ids)}
    if len(pos) != len(ids0) or any(v not in pos for v in ids0):
        raise DataError("these predictions cover other videos than the first run's; delete the runs' "
                        "predictions/ folders and rerun", file=path)
    return ids0, f["scores"][:][np.array([pos[v] for v in ids0])], None, None


def build_candidates(config, log, handles):
    """(candidates, score matrices, indptr, indices, {run: (float model, meta)}, video ids).

    handles: a list that receives the open prediction files (close them when done)."""
    from yt8m_kit.ensemble import artifact as ens_lib

    candidates, scores, models, ids0, labels = [], [], {}, None, None
    for run_dir in find_runs(config.runs, log):
        try:
            model, meta = ckpt_lib.load_model(run_dir)
        except ConfigError as e:  # e.g. a model.json naming a model this toolkit does not register
            raise ConfigError(f"run {run_dir}: {e}") from None
        fp = ckpt_lib.fingerprint(run_dir)
        models[run_dir] = (model, dict(meta, fingerprint=fp))
        overrides = {k: v for k, v in (meta.get("overrides") or {}).items() if k != "dtype"}
        log(f"{run_dir}: {ckpt_lib.describe(meta['path'])}")
        for precision in config.precisions:
            member = ens_lib.cast_weights(model, ens_lib.build_member(meta["model"], overrides, precision),
                                          precision)
            layer = ens_lib.EnsembleMember(meta["model"], overrides, precision, run_dir, member=member)
            key = prediction_key(fp, config.valid, precision, config.repeats, config.seed, config.num_samples)
            path = cached_predictions(run_dir, member, key, config, log)
            ids, matrix, indptr, indices = open_scores(path, handles, ids0)
            if ids0 is None:
                ids0, labels = ids, (indptr, indices)
            scores.append(matrix)
            candidates.append(search.Candidate(run_dir, meta["model"], precision, layer.stored_bytes(), overrides))
    return candidates, scores, labels[0], labels[1], models, ids0
