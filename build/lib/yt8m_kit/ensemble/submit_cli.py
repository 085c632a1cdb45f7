"""Plan the best ensemble that fits a size budget and write it as one Keras graph.

    python submit.py --budget 1GB [--valid 'data/validate*.tfrecord'] [--runs checkpoints/] [--out submission/]
    yt8m submit --budget 1GB ...                                                   (the same, once installed)

See yt8m_kit/ensemble/submit_job.py for what it does and README "Ensemble artifact" for what it writes.
"""

import argparse
import os
import sys

from yt8m_kit import DEFAULT_NUM_SAMPLES, DEFAULT_REPEATS
from yt8m_kit.errors import ConfigError, cli_main

BUDGET_HELP = (
    "size limit for the ensemble: '1GB', '995MB', '500M', '1.5GiB' or a number of bytes. Units are "
    "binary, as the challenge measured its 1 GB limit (the paper's 995 MiB = 1,043 MB ensemble was "
    "ranked under it): K/KB/KiB = 2^10, M/MB/MiB = 2^20, G/GB/GiB = 2^30, T/TB/TiB = 2^40, any case; "
    "so '1GB' is 1,073,741,824 bytes. For a decimal limit give bytes: 1e9 or 1000000000. Both the "
    "members' weight bytes and the written file must fit.")


def build_parser():
    p = argparse.ArgumentParser(
        prog="submit.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 on success, 2 with a message when nothing fits the budget or an input is wrong.")
    p.add_argument("--budget", required=True, help=BUDGET_HELP)
    p.add_argument("--valid",
                   help="labelled validation TFRecords (glob, or comma-separated globs) every member is scored "
                        "on (default: the --valid the runs were trained with, when they all agree)")
    p.add_argument("--runs", default="checkpoints",
                   help="directory of run directories; each run's averaged checkpoint is used when it has one "
                        "(default: checkpoints)")
    p.add_argument("--out", default="submission", help="output directory (default: submission)")
    p.add_argument("--precisions", default="float32,bfloat16,int8",
                   help="comma-separated precisions each member may take (default: float32,bfloat16,int8)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                   help="random frame sub-samples averaged per video for frame-level members; the default is "
                        "inference.py's, so the plan is scored as it will run (default: %(default)s; video-level "
                        "members are deterministic and ignore it)")
    p.add_argument("--seed", type=int, default=0,
                   help="frame sampling seed, also of the bootstrap resamples (default: 0)")
    p.add_argument("--num-samples", type=int, default=DEFAULT_NUM_SAMPLES,
                   help="frames per random sub-sample for frame-level members, as inference.py "
                        "(default: %(default)s)")
    p.add_argument("--report-fraction", type=float, default=0.5,
                   help="part of the validation videos (chosen by a hash of the id) that no choice sees; the "
                        "chosen plan's GAP, its bootstrap standard error and its margin over its best member are "
                        "reported on them. 0: choose on every video, report nothing held out (default: %(default)s)")
    p.add_argument("--noise-z", type=float, default=2.0,
                   help="a lower precision stays only where it is needed to fit or wins by more than this many "
                        "bootstrap standard errors of the paired GAP difference, and a member only where it helps "
                        "by more; 0 keeps the best-scoring plan whatever the margin (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="videos per prediction batch (default: 32)")
    p.add_argument("--max-exhaustive", type=int, default=20000,
                   help="search every plan when there are at most this many, else forward greedy "
                        "(default: 20000; six runs x three precisions is 4,095 plans)")
    p.add_argument("--fit-weights", action="store_true",
                   help="also try one weight per member instead of the plain mean: fitted on half of the choose "
                        "videos, kept only when it beats the mean on the other half by more than --noise-z standard "
                        "errors (plan.json 'weights' says what happened); default: the paper's plain mean")
    return p


def parse_config(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):  # argparse takes "--budget -1GB" for two options: keep them together
        if arg == "--budget" and argv[i + 1].startswith("-"):
            argv[i:i + 2] = [f"--budget={argv[i + 1]}"]
            break
    args = build_parser().parse_args(argv)  # before the imports below: --help answers without TensorFlow
    from yt8m_kit.fileio import parse_size
    from yt8m_kit.ensemble.precision import PRECISIONS
    from yt8m_kit.ensemble.candidates import default_valid
    from yt8m_kit.ensemble.submit_job import SubmitConfig

    try:
        budget = parse_size(args.budget)
    except ValueError as e:
        raise ConfigError(f"--budget: {e}") from None
    if budget <= 0:
        raise ConfigError(f"--budget {args.budget!r} must be positive")
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ConfigError(f"--precisions {args.precisions!r}: use some of {', '.join(PRECISIONS)}")
    if args.repeats < 1 or args.batch_size < 1 or args.num_samples < 1:
        raise ConfigError("--repeats, --num-samples and --batch-size must be at least 1")
    if not 0 <= args.report_fraction < 1:
        raise ConfigError(f"--report-fraction {args.report_fraction} must be at least 0 and below 1")
    if args.noise_z < 0:
        raise ConfigError(f"--noise-z {args.noise_z} must not be negative")
    valid = args.valid or default_valid(args.runs)
    return SubmitConfig(budget=budget, valid=valid, runs=args.runs, out=args.out, precisions=precisions,
                        repeats=args.repeats, seed=args.seed, num_samples=args.num_samples,
                        batch_size=args.batch_size, max_exhaustive=args.max_exhaustive,
                        report_fraction=args.report_fraction, noise_z=args.noise_z, fit_weights=args.fit_weights)


@cli_main
def main(argv=None):
    config = parse_config(argv)
    from yt8m_kit.ensemble.submit_job import run_submit

    result = run_submit(config)
    held = result["heldout"]
    print(f"wrote {os.path.join(config.out, result['artifact'])} ({result['artifact_bytes']} bytes, "
          f"budget {result['budget_bytes']}), validation GAP {result['validation_gap']:.4f}"
          + (f", held-out GAP {held['gap']:.4f} \u00b1 {held['se']:.4f}" if held else ""))
    return 0
