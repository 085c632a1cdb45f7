"""Benchmarks: reader, training, inference and planner speed, against what this machine can do.

    python bench/run.py                      # everything (~10-15 min on a quiet 2-core machine)
    python bench/run.py --only train --json  # one benchmark; print one JSON object keyed by name
    python bench/run.py --smoke              # tiny sizes, seconds (the test suite runs this)

Each number is the median of --runs timed runs (default 5) with min and max; the first call of
a traced function is never timed. Results are appended to bench/RESULTS.md (machine, load,
date, commit) unless --no-record. FLOPs are counted analytically per layer (forward_flops:
2 FLOPs per multiply-add of every matmul/einsum, elementwise work ignored; a training step is
3x the forward pass less the gradients w.r.t. the input frames, which autodiff never computes:
bench/flops.py). Utilisation is achieved FLOP/s over the best dense matmul
FLOP/s (matmul_peak) measured in the same run at the same precision. See bench/README.md.
Layout: this file (sizes, CLI), bench/cases.py (the benchmarks), bench/harness.py (timing, the
matmul peak, recording).
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from yt8m_kit.errors import ConfigError, cli_main  # noqa: E402
from flops import forward_flops, train_flops  # noqa: E402,F401
from harness import (append_results, commit, log, machine, markdown, matmul_peak, rate, summary,  # noqa: E402,F401
                     time_runs)
from cases import (MIB, PAPER_MODELS, bench_inference, bench_memory, bench_plan, bench_reader,  # noqa: E402,F401
                   bench_train, synthetic_candidates)

BENCHMARKS = ("reader", "train", "inference", "plan")
# Default sizes (meaningful numbers in ~10-15 min on 2 quiet cores) and --smoke sizes (seconds).
# reader_min_frames=120, reader_max_frames=330: lengths uniform in 120-330 frames, mean ~225, ~263 KB a
# record, the real frame-level data's size (DESIGN.md); reader_min_frames=0 gives synth's mixed profile.
FULL = dict(reader_videos=1000, reader_min_frames=120, reader_max_frames=330, reader_batch=64, reader_samples=300,
            train_models=PAPER_MODELS, train_batch=64, train_frames=300, train_steps=1, train_xla="registered",
            train_precision="float32",
            infer_models=PAPER_MODELS, infer_precision="float32", infer_batch=8, infer_repeats=10, infer_xla=False,
            infer_frames=300, memory_model="soft_bof_4k_tiny", memory_videos=(1000, 20000),
            memory_max_frames=30, memory_samples=30, memory_runs=1,
            plan_videos=1000, plan_budget="1GB", matmul_n=2048)
SMOKE = dict(reader_videos=24, reader_min_frames=0, reader_max_frames=12, reader_batch=8, reader_samples=6,
             train_models=("lfnl_netvlad_tiny", "gru_tiny"), train_batch=2, train_frames=6, train_steps=1, train_xla="registered",
             train_precision="float32",
             infer_models=("lfnl_netvlad_tiny", "soft_bof_4k_tiny"), infer_precision="float32", infer_batch=2, infer_xla=False,
             infer_repeats=2, infer_frames=6, memory_model="soft_bof_4k_tiny", memory_videos=(8, 16),
             memory_max_frames=6, memory_samples=4, memory_runs=1,
             plan_videos=40, plan_budget="1GB", matmul_n=128)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Sizes and what each number means: bench/README.md")
    p.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by benchmark name")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): checks the harness, not the speed")
    p.add_argument("--runs", type=int, default=5, help="timed runs per number (default %(default)s, at least 1)")
    p.add_argument("--models", nargs="+", help="train/inference models (default: the paper's six)")
    p.add_argument("--infer-precision", choices=("float32", "bfloat16"), help="ensemble members' precision")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override one size, e.g. --set train_batch=8 --set memory_videos=1000,5000 (keys: FULL in run.py)")
    p.add_argument("--work", help="keep generated data here (default: a temporary directory, deleted)")
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"), help="markdown file to append to")
    p.add_argument("--no-record", action="store_true", help="do not append to --results")
    return p


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.runs < 1:
        raise ConfigError(f"--runs ({args.runs}) must be at least 1")
    s = dict(SMOKE if args.smoke else FULL)
    if args.models:
        s["train_models"] = s["infer_models"] = tuple(args.models)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in s or not value:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(s))}")
        default = s[key]
        if isinstance(default, bool):
            s[key] = value.lower() in ("1", "true", "yes")
            continue
        s[key] = tuple(type(default[0])(v) for v in value.split(",")) if isinstance(default, tuple) else type(default)(value)
    if args.infer_precision:
        s["infer_precision"] = args.infer_precision
    names = [b for b in BENCHMARKS if not args.only or b in args.only]
    meta = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "commit": commit(),
            "mode": ("smoke sizes" if args.smoke else "default sizes") + "".join(f", {x}" for x in args.set), "runs": args.runs,
            "load_start": os.getloadavg()[0]}
    results, peaks = {}, {}

    def peak(dtype):  # re-measured before each benchmark; the best seen so far in this process
        peaks[dtype] = max(peaks.get(dtype, 0.0), matmul_peak(dtype, s["matmul_n"], args.runs)["max"])
        log(f"matmul peak {dtype}: {peaks[dtype] / 1e9:.1f} GFLOP/s (best so far)")
        return peaks[dtype]

    with tempfile.TemporaryDirectory(prefix="yt8m_bench_") as tmp:
        work = args.work or tmp
        for name in names:
            log(f"== {name}")
            t0 = time.perf_counter()
            if name == "reader":
                results[name] = bench_reader(s, args.runs, work)
            elif name == "train":
                dtype = "bfloat16" if s["train_precision"] == "mixed_bfloat16" else "float32"
                results[name] = bench_train(s, args.runs, peak(dtype))
            elif name == "inference":
                peak(s["infer_precision"])
                results[name] = bench_inference(s, args.runs, peaks, work)
            else:
                results[name] = bench_plan(s, args.runs)
            results[name]["wall_s"] = time.perf_counter() - t0
    meta.update(load_end=os.getloadavg()[0], machine=machine())
    if not args.no_record:
        append_results(args.results, markdown(results, meta))
        log(f"appended to {args.results}")
    if args.json:
        print(json.dumps(dict(results, _meta=meta), indent=1))
    else:
        print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
