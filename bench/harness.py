"""bench/run.py's harness: timing helpers, the matmul peak, and recording to bench/RESULTS.md.

summary/time_runs/rate turn timed runs into {median, min, max, runs}; matmul_peak is the dense
matmul FLOP/s utilisation is measured against (TensorFlow, imported on first call); machine,
commit, markdown and append_results write one RESULTS.md section per run. See bench/README.md.
"""

import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from yt8m_kit.fileio import atomic_open  # noqa: E402


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
