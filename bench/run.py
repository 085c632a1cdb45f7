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
"""

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from yt8m_kit.errors import ConfigError, cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open  # noqa: E402
from flops import forward_flops, train_flops  # noqa: E402,F401

PAPER_MODELS = ("lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru")
BENCHMARKS = ("reader", "train", "inference", "plan")
MIB = 2**20
# Default sizes (meaningful numbers in ~10-15 min on 2 quiet cores) and --smoke sizes (seconds).
# reader_min_frames=120, reader_max_frames=330: lengths uniform in 120-330 frames, mean ~225, ~263 KB a
# record, the real frame-level data's size (DESIGN.md); reader_min_frames=0 gives synth's mixed profile.
FULL = dict(reader_videos=1000, reader_min_frames=120, reader_max_frames=330, reader_batch=64, reader_samples=300,
            train_models=PAPER_MODELS, train_batch=64, train_frames=300, train_steps=1, train_xla="registered",
            train_precision="float32",
            infer_models=PAPER_MODELS, infer_precision="float32", infer_batch=8, infer_repeats=10,
            infer_frames=300, memory_model="soft_bof_4k_tiny", memory_videos=(1000, 20000),
            memory_max_frames=30, memory_samples=30, memory_runs=1,
            plan_videos=1000, plan_budget="1GB", matmul_n=2048)
SMOKE = dict(reader_videos=24, reader_min_frames=0, reader_max_frames=12, reader_batch=8, reader_samples=6,
             train_models=("lfnl_netvlad_tiny", "gru_tiny"), train_batch=2, train_frames=6, train_steps=1, train_xla="registered",
             train_precision="float32",
             infer_models=("lfnl_netvlad_tiny", "soft_bof_4k_tiny"), infer_precision="float32", infer_batch=2,
             infer_repeats=2, infer_frames=6, memory_model="soft_bof_4k_tiny", memory_videos=(8, 16),
             memory_max_frames=6, memory_samples=4, memory_runs=1,
             plan_videos=40, plan_budget="1GB", matmul_n=128)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def summary(values):
    """{median, min, max, runs} of a list of numbers."""
    return {"median": float(statistics.median(values)), "min": float(min(values)),
            "max": float(max(values)), "runs": len(values)}


def time_runs(fn, runs):
    """Call fn() once untimed (tracing, caches), then `runs` times timed: list of seconds."""
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rate(work, seconds):
    """{median, min, max, runs} of work/second over timed runs (min rate from the slowest run)."""
    return summary([work / s for s in seconds])


# ---------------------------------------------------------------- the matmul peak

def matmul_peak(dtype, n, runs):
    """The machine's best dense matmul FLOP/s at `dtype`: (m x m) @ (m x m) for m in (n, 2n), each
    through TensorFlow's kernel and XLA's; the summary of the fastest variant (its max is the peak),
    with "variant" naming it. Every output element is used, so nothing can be pruned."""
    import tensorflow as tf

    best = None
    for m in (n, 2 * n):
        a = tf.random.normal((m, m), dtype=tf.float32)
        a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
        for xla in (False, True):
            mm = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)), jit_compile=xla)
            mm().numpy()  # trace and compile, untimed
            reps = max(1, int(2e10 // (2 * m**3)))  # about 20 GFLOP per timed run

            def run():
                for _ in range(reps):
                    mm().numpy()

            r = rate(reps * 2 * m**3, time_runs(run, runs))
            if best is None or r["max"] > best["max"]:
                best = dict(r, variant=f"{m}x{m} {'xla' if xla else 'tf'}")
    return best


# ---------------------------------------------------------------- benchmarks

def bench_reader(s, runs, work):
    """Frame-level records -> model-ready batches (the trainer's reader) vs raw record reading."""
    import tensorflow as tf

    from yt8m_kit import data, synth

    out = os.path.join(work, "reader")
    synth.generate(out, "frame", s["reader_videos"], seed=0, shards=4, max_frames=s["reader_max_frames"],
                   min_frames=s["reader_min_frames"] or None, split_videos={"train": s["reader_videos"], "validate": 1, "test": 1})
    pattern = os.path.join(out, "train*.tfrecord")
    files = data.list_files(pattern)
    n, size = s["reader_videos"], sum(os.path.getsize(f) for f in files)

    def consume(ds, key=None):  # datasets are built once (tracing untimed) and iterated per run
        def go():
            got = sum(int(tf.shape(b if key is None else b[key])[0]) for b in data.iterate(ds, files))
            assert got == n, f"read {got} of {n} videos"
        return go

    raw_ds = tf.data.TFRecordDataset(files, num_parallel_reads=len(files)).batch(s["reader_batch"])
    # The floor under any reader built on tf's protobuf parser: parse the records (id, frame strings) and
    # nothing else, no checks, no decoding; same record stream as the reader's.
    spec = {"rgb": tf.io.RaggedFeature(tf.string), "audio": tf.io.RaggedFeature(tf.string)}
    parse_ds = (data.record_blocks(files, shuffle=False, seed=0, epochs=1, shuffle_buffer=1, num_parallel_reads=None)
                .rebatch(s["reader_batch"]).map(
                    lambda b, *_: tf.io.parse_sequence_example(
                        b, context_features={"id": tf.io.RaggedFeature(tf.string)}, sequence_features=spec)[1]["rgb"],
                    num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    fns = {"raw": consume(raw_ds.prefetch(tf.data.AUTOTUNE)), "parse_only": consume(parse_ds),
           "decode": consume(data.make_dataset(pattern, s["reader_batch"], level="frame", frames="sample",
                                               num_samples=s["reader_samples"]), "frames"),
           "decode_all": consume(data.make_dataset(pattern, s["reader_batch"], level="frame"), "frames")}
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm the page cache and tf.data's autotuning
    for _ in range(runs):  # interleaved, so load changes hit all three alike
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    dec, raw_r, all_r = rate(n, times["decode"]), rate(n, times["raw"]), rate(n, times["decode_all"])
    parse_r = rate(n, times["parse_only"])
    return {"decode_videos_per_s": dec, "raw_videos_per_s": raw_r, "decode_all_videos_per_s": all_r,
            "parse_only_videos_per_s": parse_r, "ratio": dec["median"] / raw_r["median"],
            "ratio_all": all_r["median"] / raw_r["median"], "ratio_parse_only": parse_r["median"] / raw_r["median"],
            "config": {"videos": n, "mean_kib_per_video": size / n / 1024, "batch": s["reader_batch"],
                       "lengths": (f"uniform {s['reader_min_frames']}-{s['reader_max_frames']} frames"
                                   if s["reader_min_frames"] else f"synth mixed profile, max {s['reader_max_frames']}"),
                       "frames": f"sample {s['reader_samples']} (trainer); decode_all: frames='all'"}}


def _frame_batch(batch, frames, seed=0):
    import tensorflow as tf

    from yt8m_kit import FEATURE_DIM

    g = tf.random.Generator.from_seed(seed)
    return {"frames": g.uniform((batch, frames, FEATURE_DIM), -2.0, 2.0),
            "num_frames": tf.fill([batch], frames)}


def bench_train(s, runs, peak):
    """Training steps (yt8m_kit.train's step: forward, BCE, gradients, clipping, Adam) per model."""
    import keras
    import tensorflow as tf

    from yt8m_kit import NUM_CLASSES, train

    results = {}
    batch, frames, steps = s["train_batch"], s["train_frames"], s["train_steps"]
    inputs = _frame_batch(batch, frames)
    labels = tf.cast(tf.random.uniform((batch, NUM_CLASSES)) < 3 / NUM_CLASSES, tf.float32)
    for name in s["train_models"]:
        xla = train.resolve_xla(name, None if s["train_xla"] == "registered" else s["train_xla"] in ("1", "true", "yes"),
                                "default")
        log(f"train: {name} (batch {batch}, {frames} frames, {steps} step(s) per run, xla {xla})")
        config = train.TrainConfig(model=name, train="", out="", steps=1, batch_size=batch, frames=frames, xla=xla,
                                   precision=s["train_precision"])
        strategy = tf.distribute.get_strategy()
        model, optimizer = train.build(config, strategy)
        step = train.make_train_step(strategy, model, optimizer, config)
        flops = train_flops(model, frames)

        def run():
            for _ in range(steps):
                loss = step(inputs, labels)
            loss.numpy()

        ex = rate(batch * steps, time_runs(run, runs))
        results[name] = {"examples_per_s": ex, "flops_per_s": ex["median"] * flops,
                         "utilisation": ex["median"] * flops / peak, "train_flops_per_example": flops,
                         "params": int(model.count_params()), "xla": xla}
        log(f"  {ex['median']:.2f} examples/s, {ex['median'] * flops / 1e9:.1f} GFLOP/s, "
            f"utilisation {ex['median'] * flops / peak:.2f}")
        del model, optimizer, step
        keras.backend.clear_session()
        gc.collect()
    results["config"] = {"batch": batch, "frames": frames, "steps_per_run": steps, "precision": s["train_precision"],
                         "xla": s["train_xla"] + " (true/false/registered: the model's trainer setting)", "peak_flops_per_s": peak}
    return results


def bench_inference(s, runs, peaks, work):
    """The one-graph ensemble through predict.make_step (fused repeats), plus peak memory."""
    import keras

    from yt8m_kit import ensemble, predict

    precision, batch, repeats, frames = s["infer_precision"], s["infer_batch"], s["infer_repeats"], s["infer_frames"]
    specs = [{"model": m, "overrides": {}, "precision": precision, "run": m} for m in s["infer_models"]]
    memory = bench_memory(s, work)  # first: fork/exec from a small process
    log(f"inference: ensemble of {len(specs)} ({precision}), {batch} videos x {repeats} repeats x {frames} frames")
    model = ensemble.build_ensemble(specs)
    flops = sum(forward_flops(layer.member(), frames) for layer in ensemble.ensemble_members(model))
    step = predict.make_step(model, model_level_="frame", data_level="frame", repeats=repeats, seed=0,
                             num_samples=frames, all_frames=False)
    import tensorflow as tf

    b = dict(_frame_batch(batch, frames), id=tf.constant([f"v{i}" for i in range(batch)]))
    videos = rate(batch, time_runs(lambda: step(b).numpy(), runs))
    video_flops = flops * repeats
    peak = peaks[precision]
    out = {"videos_per_s": videos, "flops_per_s": videos["median"] * video_flops,
           "utilisation": videos["median"] * video_flops / peak, "flops_per_video": video_flops,
           "config": {"members": list(s["infer_models"]), "precision": precision, "batch": batch,
                      "repeats": repeats, "frames": frames, "peak_flops_per_s": peak}}
    del model, step
    keras.backend.clear_session()
    gc.collect()
    out["memory"] = memory
    return out


def peak_rss(run_dir, pattern, output, num_samples):
    """(peak RSS bytes, wall s) of `python inference.py` (repeats 10, batch 32) in a fresh process,
    from the child's VmHWM (bench/inference_memory.measure)."""
    import inference_memory as im

    return im.measure(run_dir, pattern, output, repeats=10, batch_size=32, num_samples=num_samples)


def bench_memory(s, work):
    """Peak RSS of `python inference.py` at each test-set size (bench/inference_memory.py)."""
    import inference_memory as im

    run_dir = im.make_checkpoint(os.path.join(work, "mem_run"), s["memory_model"])
    rows = {}
    for n in s["memory_videos"]:
        log(f"inference memory: {n} videos ({s['memory_model']}, <= {s['memory_max_frames']} frames)")
        pattern = im.make_data(os.path.join(work, f"mem_{n}"), n, max_frames=s["memory_max_frames"],
                               videos_per_shard=300, seed=n)
        got = [peak_rss(run_dir, pattern, os.path.join(work, f"mem_{n}.csv"), s["memory_samples"])
               for _ in range(s["memory_runs"])]
        rows[str(n)] = {"peak_rss_mib": summary([r / MIB for r, _ in got]),
                        "videos_per_s": summary([n / w for _, w in got])}
    peaks = [r["peak_rss_mib"]["median"] for r in rows.values()]
    return {"by_videos": rows, "spread": max(peaks) / min(peaks) - 1,
            "config": {"model": s["memory_model"], "repeats": 10, "batch": 32, "max_frames": s["memory_max_frames"],
                       "num_samples": s["memory_samples"], "runs": s["memory_runs"]}}


def synthetic_candidates(n_videos, seed=0):
    """Six runs x three precisions with paper sizes and correlated synthetic scores (N, 3862)."""
    import numpy as np

    from yt8m_kit import NUM_CLASSES, plan
    from yt8m_kit.models import model_info

    rng = np.random.default_rng(seed)
    labels = [rng.choice(NUM_CLASSES, rng.integers(1, 6), replace=False) for _ in range(n_videos)]
    signal = rng.standard_normal((n_videos, NUM_CLASSES), dtype=np.float32) - 4.0
    for i, t in enumerate(labels):
        signal[i, t] += 3.0
    cands, scores = [], []
    per_weight = {"float32": 4, "bfloat16": 2, "int8": 1}
    for m in PAPER_MODELS:
        run_noise = rng.standard_normal(signal.shape, dtype=np.float32)
        for p in plan.PRECISIONS:
            noise = run_noise + 0.05 * rng.standard_normal(signal.shape, dtype=np.float32)
            scores.append(1.0 / (1.0 + np.exp(-(signal + noise))))
            size = int(model_info(m)["paper_mib"] * MIB / 4 * per_weight[p])
            cands.append(plan.Candidate(run=m, model=m, precision=p, bytes=size))
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in labels])])
    return cands, scores, indptr, np.concatenate(labels)


def bench_plan(s, runs):
    """plan.SubsetGap preparation + plan.search (exhaustive, 4,095 plans scored if in budget)."""
    from yt8m_kit import plan
    from yt8m_kit.fileio import parse_size

    cands, scores, indptr, indices = synthetic_candidates(s["plan_videos"])
    budget = parse_size(s["plan_budget"])
    prep, search, scored = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        scorer = plan.SubsetGap(scores, indptr, indices)
        t1 = time.perf_counter()
        best, plans, how = plan.search(cands, scorer.gap, budget)
        prep.append(t1 - t0)
        search.append(time.perf_counter() - t1)
        scored.append(len(plans))
    return {"total_s": summary([a + b for a, b in zip(prep, search)]), "prepare_s": summary(prep),
            "search_s": summary(search), "ms_per_plan": summary([1e3 * t / p for t, p in zip(search, scored)]),
            "plans_scored": scored[0], "search": how, "best": [cands[m].run + ":" + cands[m].precision
                                                               for m in best.members] if best else None,
            "config": {"videos": s["plan_videos"], "candidates": len(cands), "budget": s["plan_budget"]}}


# ---------------------------------------------------------------- recording

def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import tensorflow as tf

    return {"cpu": cpu, "cores": os.cpu_count(), "load_1min": os.getloadavg()[0], "python": platform.python_version(),
            "tensorflow": tf.__version__, "host": platform.node()}


def commit():
    """The checked-out commit, read from .git without running git ("?" when unknown)."""
    git = os.path.join(ROOT, ".git")
    try:
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if os.path.exists(os.path.join(git, ref)):
            with open(os.path.join(git, ref)) as f:
                return f.read().strip()[:12]
        with open(os.path.join(git, "packed-refs")) as f:
            return next((ln.split()[0][:12] for ln in f if ln.strip().endswith(" " + ref)), "?")
    except (OSError, StopIteration):
        return "?"


def _fmt(x):
    return f"{x['median']:.4g} ({x['min']:.4g}-{x['max']:.4g})" if isinstance(x, dict) and "median" in x else (
        f"{x:.4g}" if isinstance(x, float) else str(x))


def markdown(results, meta):
    """One RESULTS.md section: a header line, then `benchmark | key | median (min-max)` rows."""
    lines = [f"\n## {meta['date']}  commit {meta['commit']}  {meta['mode']}\n",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, TF {meta['machine']['tensorflow']}; "
             f"load (1 min) {meta['load_start']:.2f} at start, {meta['load_end']:.2f} at end; "
             f"{meta['runs']} timed runs per number: median (min-max).\n", "| benchmark | key | value |", "|---|---|---|"]

    def walk(prefix, obj, bench):
        for k, v in obj.items():
            if isinstance(v, dict) and "median" not in v:
                walk(f"{prefix}{k}.", v, bench)
            else:
                lines.append(f"| {bench} | {prefix}{k} | {_fmt(v)} |")

    for bench, res in results.items():
        walk("", res, bench)
    return "\n".join(lines) + "\n"


def append_results(path, text):
    old = open(path).read() if os.path.exists(path) else "# Benchmark results (appended by bench/run.py)\n"
    with atomic_open(path) as f:
        f.write(old + text)


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
