"""GPU throughput of the six paper models under Keras 3's JAX backend (no TensorFlow needed).

    KERAS_BACKEND=jax python bench/gpu.py                  # paper models, batch 64 x 300 frames, <= 480 s
    KERAS_BACKEND=jax python bench/gpu.py --smoke --json   # tiny models, seconds on a CPU
    bash bench/gpu.sh                                      # on the GPU machine: bench/GPU.md

Per model (create_model(name)): train = examples/s of a jitted step (stateless_call, the trainer's
BCE loss, jax.value_and_grad, global-norm clip 1.0, Adam 2e-4 stateless_apply) in mixed_bfloat16
and float32; infer = videos/s with R repeats (batch*R rows per call, averaged per video) in
bfloat16 and float32; FLOP/s from bench/flops.py (forward_flops, train_flops) and
utilisation over a dense matmul measured here at the same compute precision. Synthetic inputs
(random uint8 dequantised, random num_frames, zero padding); compile untimed and reported apart;
medians of --steps timed steps. --budget-s starts nothing new once the time left is less than the
last measurement of that kind took; what was measured is kept (--out is rewritten after each).
Layout: this file (sizes, driver, CLI), bench/gpu_steps.py (the jitted step functions, synthetic
inputs, FLOP counts), bench/gpu_timing.py (timing, matmul peak, one measurement).
"""

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
for _path in (ROOT, BENCH):  # yt8m_kit, and the sibling modules below (also when loaded by file path)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from yt8m_kit.errors import ConfigError, cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open  # noqa: E402
from gpu_steps import (CLIP_NORM, LR, bce_loss, clip_by_global_norm, count_flops, initial_state,  # noqa: E402,F401
                       make_grad_fn, make_infer_step, make_train_step, synthetic_batch)
from gpu_timing import PEAK_DTYPE, matmul_peak, measure, stats, timed  # noqa: E402,F401

PAPER_MODELS = ("lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru")
# (kind, precision) in the order measured: what a budget cut keeps first.
MODES = (("train", "mixed_bfloat16"), ("infer", "bfloat16"), ("train", "float32"), ("infer", "float32"))
FULL = dict(models=PAPER_MODELS, batch=64, frames=300, repeats=10, steps=10, matmul_n=8192)
SMOKE = dict(models=("lfnl_netvlad_tiny", "gru_tiny"), batch=2, frames=6, repeats=2, steps=5, matmul_n=128)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- driver

def machine():
    import jax
    import keras
    import numpy as np

    dev = jax.devices()[0]
    return {"backend": keras.backend.backend(), "platform": dev.platform, "device": dev.device_kind,
            "devices": len(jax.devices()), "jax": jax.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "host": platform.node(),
            "matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision", None) or "default")}


def run_benchmark(s, budget_s, out_path=None):
    """Every (mode, model) measurement that fits the budget: the results dict (also written to out_path)."""
    import jax

    t_start = time.monotonic()
    left = lambda: budget_s - (time.monotonic() - t_start)  # noqa: E731
    results = {"meta": dict(machine(), **{k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
                            budget_s=budget_s, complete=False, skipped=[]),
               "peak": {}, "train": {}, "infer": {}}

    def save():
        results["meta"]["elapsed_s"] = time.monotonic() - t_start
        results["meta"]["tensorflow_loaded"] = "tensorflow" in sys.modules  # must stay False
        if out_path:
            with atomic_open(out_path) as f:
                json.dump(results, f, indent=1)

    log(f"{results['meta']['device']} ({results['meta']['platform']}), jax {jax.__version__}, "
        f"keras {results['meta']['keras']}, budget {budget_s:.0f} s")
    for dtype in ("float32", "bfloat16"):
        results["peak"][dtype] = matmul_peak(dtype, s["matmul_n"], max(5, s["steps"]))
        log(f"matmul peak {dtype}: {results['peak'][dtype]['max'] / 1e12:.2f} TFLOP/s (n={s['matmul_n']})")
    inputs, labels = synthetic_batch(s["batch"] * s["repeats"], s["frames"])
    data = {"infer": jax.device_put(inputs),
            "train": jax.device_put(({k: v[:s["batch"]] for k, v in inputs.items()}, labels[:s["batch"]]))}
    del inputs, labels
    last = {}  # kind -> seconds the last measurement of that kind took (the estimate for the next)
    for kind, precision in s["modes"]:
        for name in s["models"]:
            if left() < last.get(kind, 0.0):
                results["meta"]["skipped"].append(f"{kind}/{precision}/{name}")
                log(f"{kind} {precision} {name}: skipped ({left():.0f} s left, last took {last[kind]:.0f} s)")
                continue
            t0 = time.monotonic()
            r = measure(name, kind, precision, s, data, results["peak"])
            last[kind] = time.monotonic() - t0
            results[kind].setdefault(precision, {})[name] = r
            unit = "examples_per_s" if kind == "train" else "videos_per_s"
            log(f"{kind} {precision} {name}: {r[unit]['median']:.1f} {unit.replace('_per_s', '/s')}, "
                f"utilisation {r['utilisation']:.3f} "
                f"(compile {r['compile_s']:.1f} s, {last[kind]:.0f} s in all)")
            save()
    results["meta"]["complete"] = not results["meta"]["skipped"]
    save()
    return results


def table(results):
    lines = [f"{'kind':<6}{'precision':<16}{'model':<20}{'items/s':>12}{'TFLOP/s':>10}{'util':>7}{'compile s':>11}"]
    for kind in ("train", "infer"):
        for precision, models in results[kind].items():
            for name, r in models.items():
                rate = r["examples_per_s" if kind == "train" else "videos_per_s"]["median"]
                lines.append(f"{kind:<6}{precision:<16}{name:<20}{rate:>12.1f}{r['flops_per_s'] / 1e12:>10.2f}"
                             f"{r['utilisation']:>7.3f}{r['compile_s']:>11.1f}")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="How to run it on the GPU machine: bench/GPU.md")
    p.add_argument("--smoke", action="store_true", help="tiny models and sizes (seconds on a CPU): checks the harness")
    p.add_argument("--models", help="comma-separated registered names (default: the paper's six)")
    p.add_argument("--modes", help="comma-separated KIND/PRECISION (default: " + ",".join(f"{k}/{p}" for k, p in MODES) + ")")
    p.add_argument("--batch", type=int, help="videos per step (default 64; inference runs batch x repeats rows)")
    p.add_argument("--frames", type=int, help="frames per video (default 300)")
    p.add_argument("--repeats", type=int, help="inference repeats per video (default 10)")
    p.add_argument("--steps", type=int, help="timed steps per number, at least 5 (default 10)")
    p.add_argument("--matmul-n", type=int, help="size of the peak matmul (default 8192)")
    p.add_argument("--matmul-precision", choices=("default", "high", "highest"),
                   help="jax_default_matmul_precision for everything (float32 on recent GPUs: default = TF32)")
    p.add_argument("--budget-s", type=float, default=480.0, help="start nothing new after this many seconds (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    p.add_argument("--out", help="also write the JSON here (atomically, after every measurement)")
    return p


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    import keras

    if keras.backend.backend() != "jax":
        raise ConfigError(f"bench/gpu.py needs Keras' JAX backend, got {keras.backend.backend()!r}: "
                          f"run it with KERAS_BACKEND=jax (bench/gpu.sh sets it)")
    s = dict(SMOKE if args.smoke else FULL, modes=MODES)
    for key in ("batch", "frames", "repeats", "steps", "matmul_n"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if min(s[k] for k in ("batch", "frames", "repeats", "matmul_n")) < 1 or s["steps"] < 5:
        got = ", ".join(f"{k}={s[k]}" for k in ("batch", "frames", "repeats", "matmul_n", "steps"))
        raise ConfigError(f"--batch, --frames, --repeats, --matmul-n must be positive and --steps at least 5 "
                          f"(each number is a median of timed steps); got {got}")
    if args.models:
        from yt8m_kit.models import list_models, model_info

        s["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
        bad = [m for m in s["models"] if m not in list_models() or model_info(m)["level"] != "frame"]
        if bad:
            raise ConfigError(f"--models: {bad} are not registered frame-level models; see python -m yt8m_kit.models")
    if args.modes:
        s["modes"] = tuple(tuple(m.strip().split("/", 1)) for m in args.modes.split(","))
        allowed = {"train": ("float32", "mixed_bfloat16"), "infer": ("float32", "bfloat16")}
        bad = ["/".join(m) for m in s["modes"] if len(m) != 2 or m[1] not in allowed.get(m[0], ())]
        if bad:
            raise ConfigError(f"--modes: {bad} not understood; train/float32|mixed_bfloat16, infer/float32|bfloat16")
    s["modes"] = [list(m) for m in s["modes"]]
    if args.matmul_precision:
        import jax

        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    results = run_benchmark(s, args.budget_s, args.out)
    print(json.dumps(results, indent=1) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
