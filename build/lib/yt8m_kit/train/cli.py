"""Train one registered model; rerunning the same command resumes where it stopped.

    python -m yt8m_kit.train --model lfnl_netvlad_tiny --train 'data/train*.tfrecord' \\
        --out runs/lfnl --steps 3000 --checkpoint-every 500

Adam (by default lr 2e-4, staircase decay x0.8 every 4M examples, global gradient-norm clipping
at 1.0; registered models may carry their own settings, e.g. `video` trains 12 epochs at batch 256,
lr 1e-3, decay x0.85 every 25,000 examples: the run prints every setting it uses and where it came
from), binary cross-entropy summed over the 3862 classes and averaged over the batch (as the
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
import os
import sys

from yt8m_kit.errors import cli_main
from yt8m_kit.train.ema import parse_ema
from yt8m_kit.train.config import AVERAGE_CHECKPOINTS, TUNABLE, TrainConfig, describe_settings, parse_set, resolve_tunables, resolve_xla

REGISTERED = "; a registered model may carry its own, used unless given here: python -m yt8m_kit.models --configs"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered model name (yt8m_kit.models.list_models())")
    p.add_argument("--train", required=True, help="training TFRecords: glob(s), comma-separated")
    p.add_argument("--valid", help="validation TFRecords for periodic GAP@20")
    p.add_argument("--out", required=True, help="run directory (created; an existing one is resumed)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="train until this global step")
    g.add_argument("--epochs", type=float, help="train this many passes over --train (converted to steps; `video` and the other "
                                                               "video-level models carry a registered number of epochs)")
    p.add_argument("--batch-size", type=int, help="global batch size (default 64" + REGISTERED + ")")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 2e-4" + REGISTERED + ")")
    p.add_argument("--lr-decay", type=float, help="staircase decay factor (default 0.8" + REGISTERED + ")")
    p.add_argument("--lr-decay-examples", type=int, help="examples per decay (default 4M" + REGISTERED + ")")
    p.add_argument("--clip-norm", type=float, help="global gradient-norm clip (default 1.0" + REGISTERED + ")")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model override, repeatable")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (default: 1/30 of the run in whole thousands, at least 1000: "
                        "300k steps -> 10k, so that the last 10 span the last third, what `average` takes by default "
                        "and Tang et al. averaged)")
    p.add_argument("--keep", type=int, default=AVERAGE_CHECKPOINTS,
                   help=f"checkpoints kept (default {AVERAGE_CHECKPOINTS}; each ~3x the model's float32 size: weights and "
                        "Adam's moments)")
    p.add_argument("--valid-every", type=int, help="steps between validations (default: each checkpoint)")
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "bfloat16"],
                   help="float32 or mixed_bfloat16 (bfloat16 is refused, with the reason; default float32)")
    p.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi_worker"],
                   help="tf.distribute strategy; multi_worker reads TF_CONFIG (default: default, one device)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, shuffling and frame sampling (default 0)")
    p.add_argument("--frames", type=int, default=300, help="frames sampled per video (frame level; default 300)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the training step (default strategy only; default: the model's "
                        "registered setting: on for the NetVLAD family and Soft-BoF, which train faster "
                        "compiled at paper size; see python -m yt8m_kit.models --configs)")
    p.add_argument("--allow-2017", action="store_true",
                   help="read 2017 YouTube-8M files (key 'video_id'); training on them is then refused with "
                        "the reason: their 4716 classes are not the 3862 that every registered model scores")
    p.add_argument("--skip-bad", action="store_true",
                   help="drop unreadable or malformed records (CRC errors, truncated tails, wrong sizes) of "
                        "--train/--valid instead of stopping; the end of the run reports how many and the first "
                        "few file/record/reason (a resumed run may turn it on to get past a bad record)")
    p.add_argument("--ema", metavar="DECAY_OR_HALFLIFE",
                   help="keep an exponential moving average of the weights (the 1st place's EMA): a decay per step "
                        "in (0, 1), e.g. 0.999, or a half-life in steps, e.g. 700; written as RUN_DIR/ckpt-ema at "
                        "every checkpoint (batch-norm statistics recomputed), which the run then resolves to "
                        "(default: no EMA)")
    p.add_argument("--teacher", metavar="TEACHER",
                   help="offline distillation: a submit.py output directory, a checkpoint or RUN_DIR, or a prediction "
                        ".h5 covering every training video; its predictions on --train are made once and cached in "
                        "RUN_DIR/teacher/ (default: no teacher, labels only)")
    p.add_argument("--distill-lambda", type=float, default=TrainConfig.distill_lambda,
                   help="with --teacher, the loss is lambda * BCE(student, teacher) + (1 - lambda) * BCE(student, "
                        "labels) (default %(default)s, the 1st place's)")
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
        allow_2017=a.allow_2017, skip_bad=a.skip_bad, ema=None if a.ema is None else parse_ema(a.ema),
        teacher=a.teacher, distill_lambda=a.distill_lambda)
    from yt8m_kit.train.trainer import train

    print(describe_settings(a.model, {k: getattr(a, k) for k in TUNABLE}, a.xla, a.strategy), file=sys.stderr)
    result = train(config)
    print(json.dumps(dataclasses.asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
