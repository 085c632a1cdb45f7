"""Search for the best video-level model on the real 2018 video-level records.

Trains every configuration in CONFIGS on shards validate0000..0079 (~23k videos, in memory) and
scores it on two held-out splits: validate0080..0089 ("choose": the search picks its winner there)
and validate0090..0099 ("report": the winner's number is quoted there, on videos that chose
nothing), with GAP@20, its bootstrap standard error and Hit@1. Rows written before 2026-12-03
scored one split, 0080..0099. The results are written up by hand in bench/VIDEO_SEARCH.md.

    python bench/video_search.py                    # all rows (~60 min, 2 shared cores)
    python bench/video_search.py --only mlp1024_e12  # one configuration (repeatable flag)
    python bench/video_search.py --list             # names and one-line descriptions
"""

import argparse
import dataclasses
import glob
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from yt8m_kit import AUDIO_DIM, FEATURE_DIM, NUM_CLASSES, RGB_DIM, TOP_K  # noqa: E402
from yt8m_kit.errors import ConfigError, DataError, cli_main  # noqa: E402
from yt8m_kit.evaluate import metrics  # noqa: E402
from yt8m_kit.fileio import atomic_open, atomic_path  # noqa: E402

DEFAULT_DATA = os.path.join(os.environ.get("YT8M_DATA") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "yt8m_2018_video"), "validate")
CHOOSE_SHARDS = range(80, 90)  # validate0080..0089: where the search compares configurations
REPORT_SHARDS = range(90, 100)  # validate0090..0099: where the chosen one is reported


@dataclasses.dataclass(frozen=True)
class Config:
    """One point of the search. Layers: [norm] -> hidden blocks -> [gating] -> head."""

    doc: str
    normalise: str = "none"  # "none" | "l2" (per modality) | "standardise" (train mean/std)
    #                          | "whiten" (PCA-whitened per modality with train statistics, then l2)
    hidden: tuple = ()  # Dense sizes, each Dense -> [BN] -> ReLU -> [Dropout]
    batch_norm: bool = False  # BN after each hidden Dense (and on the context-gate logits)
    dropout: float = 0.0  # after each hidden block
    input_dropout: float = 0.0
    context_gating: bool = False  # after the last hidden block: h * sigmoid(BN(W h + b))
    experts: int = 0  # 0: logistic head; E: MoE with E logistic experts + dummy expert
    video_gating: bool = False  # on the 3862 probabilities: p * sigmoid(W p + b)
    l2: float = 0.0  # kernel L2 on every Dense (loss is summed over classes)
    lr: float = 1e-3
    decay: float = 1.0  # lr multiplied by `decay` once per epoch (exponential, per step)
    epochs: int = 10
    batch_size: int = 256
    mixup: float = 0.0  # alpha of mixup (Beta(alpha, alpha) mixes of two videos and their labels)


PRIOR_LOGIT = -7.16  # logit(3/3862): ~3 labels per video; output biases start here (see doc)

CONFIGS = {
    # Baselines: one Dense(3862, sigmoid) on concat(mean_rgb, mean_audio), lr/input tuned a little.
    "logreg_lr1e-3": Config("baseline: logistic, raw input, lr 1e-3", lr=1e-3, epochs=8),
    "logreg_lr3e-3": Config("baseline: logistic, raw input, lr 3e-3, decay .8/epoch", lr=3e-3,
                            decay=0.8, epochs=8),
    "logreg_e12": Config("baseline: logistic, raw input, lr 3e-3, decay .85, 12 epochs",
                         lr=3e-3, decay=0.85, epochs=12),
    "logreg_std": Config("baseline: logistic, standardised input, lr 1e-3, decay .8",
                         normalise="standardise", lr=1e-3, decay=0.8, epochs=8),
    # One hidden layer, logistic head.
    "mlp1024": Config("Dense 1024 + BN + ReLU + dropout .5, logistic", normalise="l2",
                      hidden=(1024,), batch_norm=True, dropout=0.5, lr=1e-3, decay=0.8, epochs=8),
    # The rest run 5 epochs with decay .7 (same final lr as .8 over 8) to fit the time budget;
    # compare them with mlp1024_e5.
    "mlp1024_e5": Config("mlp1024, 5 epochs, decay .7", normalise="l2", hidden=(1024,),
                         batch_norm=True, dropout=0.5, lr=1e-3, decay=0.7, epochs=5),
    "mlp1024_cg": Config("mlp1024_e5 + context gating", normalise="l2", hidden=(1024,),
                         batch_norm=True, dropout=0.5, context_gating=True, lr=1e-3, decay=0.7,
                         epochs=5),
    "mlp512_moe2": Config("Dense 512 + BN + ReLU + dropout .5, MoE 2 experts", normalise="l2",
                          hidden=(512,), batch_norm=True, dropout=0.5, experts=2, lr=1e-3,
                          decay=0.7, epochs=5),
    "mlp1024_std": Config("mlp1024_e5 on standardised input", normalise="standardise",
                          hidden=(1024,), batch_norm=True, dropout=0.5, lr=1e-3, decay=0.7,
                          epochs=5),
    "mlp1024_l2reg": Config("mlp1024_e5 + L2 1e-4 + input dropout .2", normalise="l2",
                            hidden=(1024,), batch_norm=True, dropout=0.5, input_dropout=0.2,
                            l2=1e-4, lr=1e-3, decay=0.7, epochs=5),
    "mlp1024_e12": Config("mlp1024, 12 epochs, decay .85", normalise="l2", hidden=(1024,),
                          batch_norm=True, dropout=0.5, lr=1e-3, decay=0.85, epochs=12),
    "mlp1024_b128": Config("mlp1024_e5, batch 128", normalise="l2", hidden=(1024,),
                           batch_norm=True, dropout=0.5, lr=1e-3, decay=0.7, epochs=5,
                           batch_size=128),
    # 2026-12-03: 12-epoch rows, scored on the choose split (0080..0089) and the report split.
    "moe2_e12": Config("video_moe's model (raw input, MoE 2 experts) with video's schedule",
                       experts=2, lr=1e-3, decay=0.85, epochs=12),
    "mlp2048_e12": Config("mlp1024_e12 with hidden 2048", normalise="l2", hidden=(2048,),
                          batch_norm=True, dropout=0.5, lr=1e-3, decay=0.85, epochs=12),
    "mlp1024x2_e12": Config("mlp1024_e12 with two hidden layers", normalise="l2",
                            hidden=(1024, 1024), batch_norm=True, dropout=0.5, lr=1e-3,
                            decay=0.85, epochs=12),
    "mlp1024_e20": Config("mlp1024, 20 epochs, decay .9", normalise="l2", hidden=(1024,),
                          batch_norm=True, dropout=0.5, lr=1e-3, decay=0.9, epochs=20),
    "mlp1024_mixup": Config("mlp1024_e12 + mixup alpha .2", normalise="l2", hidden=(1024,),
                            batch_norm=True, dropout=0.5, lr=1e-3, decay=0.85, epochs=12,
                            mixup=0.2),
    "mlp1024_whiten": Config("mlp1024_e12 on PCA-whitened input", normalise="whiten",
                             hidden=(1024,), batch_norm=True, dropout=0.5, lr=1e-3, decay=0.85,
                             epochs=12),
    "mlp1024_cg_e12": Config("mlp1024_e12 + context gating", normalise="l2", hidden=(1024,),
                             batch_norm=True, dropout=0.5, context_gating=True, lr=1e-3,
                             decay=0.85, epochs=12),
    "mlp1024_id_e12": Config("mlp1024_e12 + input dropout .2", normalise="l2", hidden=(1024,),
                             batch_norm=True, dropout=0.5, input_dropout=0.2, lr=1e-3,
                             decay=0.85, epochs=12),
}


# ---- data (I/O edge) ----------------------------------------------------------------------

def read_shards(paths):
    """Read video-level records into (ids (N,), features float32 (N, 1152), labels uint8 (N, C))."""
    import tensorflow as tf

    spec = {"id": tf.io.FixedLenFeature([], tf.string),
            "labels": tf.io.VarLenFeature(tf.int64),
            "mean_rgb": tf.io.FixedLenFeature([RGB_DIM], tf.float32),
            "mean_audio": tf.io.FixedLenFeature([AUDIO_DIM], tf.float32)}
    ids, feats, rows = [], [], []
    for path in paths:
        try:
            for batch in tf.data.TFRecordDataset(path).batch(1024):
                ex = tf.io.parse_example(batch, spec)
                ids.extend(x.decode() for x in ex["id"].numpy())
                feats.append(np.concatenate([ex["mean_rgb"].numpy(), ex["mean_audio"].numpy()], 1))
                sp = ex["labels"]
                idx, val = sp.indices.numpy(), sp.values.numpy()
                per_row = [[] for _ in range(len(batch))]
                for (r, _), v in zip(idx, val):
                    per_row[r].append(v)
                rows.extend(per_row)
        except tf.errors.InvalidArgumentError as e:
            hint = " (2017 files use 'video_id' and 4716 classes)" if "id" in str(e) else ""
            raise DataError(f"not a 2018 video-level record{hint}: {e.message}",
                            file=path) from None
    labels = np.zeros((len(rows), NUM_CLASSES), np.uint8)
    for i, row in enumerate(rows):
        bad = [v for v in row if not 0 <= v < NUM_CLASSES]
        if bad:
            raise DataError(f"label outside 0..{NUM_CLASSES - 1}", record=ids[i], value=bad[0])
        labels[i, row] = 1
    return np.array(ids), np.concatenate(feats).astype(np.float32), labels


def load_split(data_dir, cache=None):
    """Train (shards 0..79), choose (80..89) and report (90..99) arrays, each (features, labels);
    cached as .npz when `cache` is given."""
    names = ("train", "choose", "report")
    if cache and os.path.exists(cache):
        z = np.load(cache)
        if all(f"x{n}" in z for n in names):
            return tuple((z[f"x{n}"], z[f"y{n}"]) for n in names)
    paths = sorted(glob.glob(os.path.join(data_dir, "validate*.tfrecord")))
    if len(paths) != 100:
        raise DataError(f"expected 100 shards validate0000..0099.tfrecord, found {len(paths)}",
                        file=data_dir)
    shards = {"train": range(0, 80), "choose": CHOOSE_SHARDS, "report": REPORT_SHARDS}
    split = {n: read_shards([paths[i] for i in shards[n]])[1:] for n in names}
    if cache:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{f"{a}{n}": arr for n in names for a, arr in zip("xy", split[n])})
    return tuple(split[n] for n in names)


# ---- metrics (pure) -----------------------------------------------------------------------

def gap_bootstrap_se(scores, labels, k=TOP_K, n=50, seed=0):
    """Standard error of GAP@k (yt8m_kit's GAP, official tie order) from resampling videos with
    replacement (n resamples)."""
    idx, values = metrics.top_k(scores, k)
    rel = np.take_along_axis(np.asarray(labels), idx, 1) > 0
    per_video = np.asarray(labels, np.float64).sum(1)
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(n):
        i = rng.integers(0, len(per_video), len(per_video))
        videos = np.repeat(np.arange(i.size), idx.shape[1])
        gaps.append(metrics.gap_of_pairs(videos, idx[i].ravel(), values[i].ravel(), rel[i].ravel(),
                                         per_video[i].sum()))
    return float(np.std(gaps))


def hit_at_1(scores, labels):
    """Fraction of videos whose top-scoring class is one of their labels."""
    top1 = np.argmax(scores, axis=1)
    return float(np.mean(labels[np.arange(len(top1)), top1] > 0))


# ---- models -------------------------------------------------------------------------------

def normaliser(cfg, xtr):
    """A pure numpy function for cfg.normalise; 'standardise' uses train statistics only."""
    if cfg.normalise == "none":
        return lambda x: x
    if cfg.normalise == "l2":
        def l2(x):
            rgb, audio = x[:, :RGB_DIM], x[:, RGB_DIM:]
            norm = lambda a: a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-6)  # noqa: E731
            return np.concatenate([norm(rgb), norm(audio)], 1)
        return l2
    if cfg.normalise == "standardise":
        mean, std = xtr.mean(0), xtr.std(0) + 1e-6
        return lambda x: (x - mean) / std
    if cfg.normalise == "whiten":
        parts = []
        for lo, hi in ((0, RGB_DIM), (RGB_DIM, FEATURE_DIM)):
            a = xtr[:, lo:hi].astype(np.float64)
            mean = a.mean(0)
            eigval, eigvec = np.linalg.eigh(np.cov(a - mean, rowvar=False))
            parts.append((lo, hi, mean, eigvec / np.sqrt(eigval + 1e-4 * eigval.max())))

        def whiten(x):
            out = [(x[:, lo:hi] - mean) @ w for lo, hi, mean, w in parts]
            return np.concatenate([o / (np.linalg.norm(o, axis=1, keepdims=True) + 1e-6)
                                   for o in out], 1)
        return whiten
    raise ConfigError(f"unknown normalise {cfg.normalise!r}: use none, l2, standardise or whiten")


def build_model(cfg):
    """Keras functional model: features (B, 1152) -> probabilities (B, 3862)."""
    import keras
    from keras import layers, ops

    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    dense = lambda n, act=None, name=None, bias=0.0: layers.Dense(  # noqa: E731
        n, activation=act, kernel_regularizer=reg, name=name,
        bias_initializer=keras.initializers.Constant(bias))
    x = inp = keras.Input((FEATURE_DIM,), name="features")
    if cfg.input_dropout:
        x = layers.Dropout(cfg.input_dropout)(x)
    for i, n in enumerate(cfg.hidden):
        x = dense(n, name=f"hidden{i}")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if cfg.dropout:
            x = layers.Dropout(cfg.dropout)(x)
    if cfg.context_gating:  # z = sigmoid(BN(W x + b)) * x
        g = dense(x.shape[-1], name="cg")(x)
        if cfg.batch_norm:
            g = layers.BatchNormalization()(g)
        x = layers.Multiply()([x, layers.Activation("sigmoid")(g)])
    if cfg.experts:
        e = cfg.experts
        gates = layers.Reshape((NUM_CLASSES, e + 1))(dense(NUM_CLASSES * (e + 1), name="gates")(x))
        experts = dense(NUM_CLASSES * e, name="experts", bias=PRIOR_LOGIT)(x)
        experts = layers.Reshape((NUM_CLASSES, e))(experts)  # (B, C, E)
        # (B, C, E+1) gate softmax; the dummy expert (last gate) always outputs 0.
        mix = lambda t: ops.sum(ops.softmax(t[0], -1)[..., :-1] * ops.sigmoid(t[1]), -1)  # noqa
        p = layers.Lambda(mix, name="moe")([gates, experts])
    else:
        p = dense(NUM_CLASSES, "sigmoid", name="logistic", bias=PRIOR_LOGIT)(x)
    if cfg.video_gating:
        p = layers.Multiply(name="video_gate")([p, dense(NUM_CLASSES, "sigmoid", name="vcg")(p)])
    return keras.Model(inp, p)


def summed_bce(y, p):
    """Binary cross-entropy summed over the 3862 classes (mean over the batch), as the starter."""
    from keras import ops

    y = ops.cast(y, p.dtype)
    p = ops.clip(p, 1e-7, 1 - 1e-7)
    return -ops.sum(y * ops.log(p) + (1 - y) * ops.log(1 - p), axis=-1)


def run_config(name, cfg, train, choose, report, seed=0, verbose=1):
    """Train `cfg` on `train`, score on `choose` and `report`; return a result row (dict)."""
    import keras

    keras.utils.set_random_seed(seed)
    xtr, ytr = train
    norm = normaliser(cfg, xtr)
    xtr_n = norm(xtr).astype(np.float32)
    model = build_model(cfg)
    steps = -(-len(xtr) // cfg.batch_size)
    lr = keras.optimizers.schedules.ExponentialDecay(cfg.lr, steps, cfg.decay)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=summed_bce, jit_compile=True)
    t0 = time.time()
    if cfg.mixup:  # a fresh mix per epoch: x = l x_i + (1 - l) x_j, y likewise, l ~ Beta(a, a)
        rng = np.random.default_rng(seed)
        for epoch in range(cfg.epochs):
            lam = rng.beta(cfg.mixup, cfg.mixup, (len(xtr), 1)).astype(np.float32)
            j = rng.permutation(len(xtr))
            model.fit(lam * xtr_n + (1 - lam) * xtr_n[j], lam * ytr + (1 - lam) * ytr[j],
                      batch_size=cfg.batch_size, initial_epoch=epoch, epochs=epoch + 1,
                      shuffle=True, verbose=verbose)
    else:
        model.fit(xtr_n, ytr, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True,
                  verbose=verbose)
    train_s = time.time() - t0
    row = {"config": name, "params": int(model.count_params()), "epochs": cfg.epochs,
           "train_s": round(train_s, 1), "seed": seed}
    for split, (x, y) in (("choose", choose), ("report", report)):
        scores = model.predict(norm(x).astype(np.float32), batch_size=1024, verbose=0)
        row[f"gap_{split}"] = round(metrics.gap(scores, y), 4)
        row[f"gap_{split}_se"] = round(gap_bootstrap_se(scores, y), 4)
        row[f"hit1_{split}"] = round(hit_at_1(scores, y), 4)
    row.update(load1=round(os.getloadavg()[0], 1), doc=cfg.doc)
    return row


def table(rows):
    """Markdown table of result rows."""
    out = ["| config | params | epochs | train time | GAP@20 choose 0080-0089 (± SE) | "
           "GAP@20 report 0090-0099 (± SE) | Hit@1 choose | load |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['config']} | {r['params'] / 1e6:.1f}M | {r['epochs']} | "
                   f"{r['train_s'] / 60:.1f} min | {r['gap_choose']:.4f} (± "
                   f"{r['gap_choose_se']:.4f}) | {r['gap_report']:.4f} (± {r['gap_report_se']:.4f})"
                   f" | {r['hit1_choose']:.4f} | {r['load1']} |")
    return "\n".join(out)


@cli_main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of validate00NN.tfrecord shards")
    ap.add_argument("--only", action="append", metavar="NAME", help="run only this config")
    ap.add_argument("--list", action="store_true", help="list the configurations and exit")
    ap.add_argument("--cache", help="optional .npz cache of the decoded arrays")
    ap.add_argument("--results", help="append result rows to this JSON-lines file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.list:
        for name, cfg in CONFIGS.items():
            print(f"{name:24s} {cfg.doc}")
        return 0
    names = args.only or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ConfigError(f"unknown config {unknown[0]!r}: see --list")
    t0 = time.time()
    train, choose, report = load_split(args.data, args.cache)
    print(f"data: train {train[0].shape[0]} videos, choose {choose[0].shape[0]}, report "
          f"{report[0].shape[0]} videos "
          f"({time.time() - t0:.0f} s); {platform.node()} {os.cpu_count()} cpus "
          f"{time.strftime('%Y-%m-%d')}", file=sys.stderr)
    rows = []
    for name in names:
        row = run_config(name, CONFIGS[name], train, choose, report, args.seed, verbose=2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if args.results:
            previous = open(args.results).read() if os.path.exists(args.results) else ""
            with atomic_open(args.results) as f:
                f.write(previous + json.dumps(row) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
