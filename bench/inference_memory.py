"""Peak memory of inference vs the number of test videos: it should stay flat (streaming).

    python bench/inference_memory.py                       # full check: 1000 vs 20000 videos
    python bench/inference_memory.py --videos 500 2000     # small scale (a few minutes on 2 cores)

For each N it generates N frame-level test videos (yt8m_kit.data.synth), saves a randomly
initialised tiny model as a checkpoint, runs the real command
`python inference.py --model CKPT --input DIR/test*.tfrecord --repeats R` in a fresh process,
and reads that process's peak RSS (VmHWM, polled from /proc while it runs). Pass when the
largest peak is within --tolerance (default 10%) of the smallest. Data and CSVs go under
--work (default: a temporary directory, deleted afterwards).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from yt8m_kit.errors import cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open  # noqa: E402


def make_data(out_dir, videos, *, max_frames, videos_per_shard, seed):
    from yt8m_kit.data import synth

    shards = max(1, -(-videos // videos_per_shard))
    synth.generate(out_dir, "frame", videos, seed=seed, shards=shards, max_frames=max_frames,
                   split_videos={"train": 1, "validate": 1, "test": videos})
    return os.path.join(out_dir, "test*.tfrecord")


def make_checkpoint(run_dir, model):
    from yt8m_kit.train.checkpoint import save_checkpoint
    from yt8m_kit.models import create_model, model_info

    save_checkpoint(run_dir, 1, create_model(model),
                    {"model": model, "overrides": {}, "level": model_info(model)["level"], "step": 1})
    return run_dir


def measure(run_dir, pattern, output, *, repeats, batch_size, num_samples, poll_s=0.05, extra=()):
    """Run inference.py in a fresh process -> (peak RSS bytes, wall seconds).

    Reads the child's VmHWM from /proc while it runs: the ru_maxrss that os.wait4 reports
    starts at the parent's RSS when the child is exec'd (this parent holds TensorFlow), so it
    would report the parent's floor rather than the child's peak."""
    cmd = [sys.executable, os.path.join(ROOT, "inference.py"), "--model", run_dir, "--input", pattern,
           "--repeats", str(repeats), "--batch-size", str(batch_size), "--num-samples", str(num_samples),
           "--output", output, "--quiet", *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start, hwm = time.monotonic(), 0
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                hwm = max([hwm] + [int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:")])
        except (OSError, ValueError):
            pass
        time.sleep(poll_s)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"inference failed (exit {proc.returncode}):\n{err[-3000:]}")
    return hwm, wall


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, nargs="+", default=[1000, 20000], help="test-set sizes to compare")
    p.add_argument("--model", default="soft_bof_4k_tiny", help="registered model (random weights)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-samples", type=int, default=300)
    p.add_argument("--max-frames", type=int, default=360, help="longest generated video (real: 360)")
    p.add_argument("--videos-per-shard", type=int, default=300, help="about what a real test shard holds")
    p.add_argument("--tolerance", type=float, default=0.10, help="allowed relative spread of peak RSS")
    p.add_argument("--work", help="keep data and CSVs here (default: a temporary directory)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--xla", action="store_true", help="pass --xla to inference.py")
    return p


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yt8m_infer_mem_") as tmp:
        work = args.work or tmp
        run_dir = make_checkpoint(os.path.join(work, "run"), args.model)
        rows = []
        for n in args.videos:
            t0 = time.monotonic()
            pattern = make_data(os.path.join(work, f"data_{n}"), n, max_frames=args.max_frames,
                                videos_per_shard=args.videos_per_shard, seed=n)
            gen_s = time.monotonic() - t0
            rss, wall = measure(run_dir, pattern, os.path.join(work, f"out_{n}.csv"), repeats=args.repeats,
                                batch_size=args.batch_size, num_samples=args.num_samples,
                                extra=["--xla"] if args.xla else [])
            rows.append({"videos": n, "peak_rss_mib": rss / 2**20, "wall_s": wall, "videos_per_s": n / wall,
                         "generate_s": gen_s})
            print(f"N={n:>7}  peak RSS {rss / 2**20:8.1f} MiB  inference {wall:7.1f} s "
                  f"({n / wall:6.1f} videos/s, process start included)  data generated in {gen_s:.1f} s",
                  flush=True)
    peaks = [r["peak_rss_mib"] for r in rows]
    spread = max(peaks) / min(peaks) - 1
    flat = spread <= args.tolerance
    print(f"peak RSS spread {spread * 100:.1f}% (tolerance {args.tolerance * 100:.0f}%): "
          f"{'FLAT' if flat else 'NOT FLAT'}; model {args.model}, repeats {args.repeats}, batch "
          f"{args.batch_size}, {args.num_samples} frames per sub-sample")
    if args.json:
        with atomic_open(args.json) as f:
            json.dump({"rows": rows, "spread": spread, "flat": flat, "config": vars(args)}, f, indent=1)
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
