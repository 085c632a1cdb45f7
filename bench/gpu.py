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
"""

import argparse
import functools
import gc
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from yt8m_kit import FEATURE_DIM, NUM_CLASSES, features  # noqa: E402
from yt8m_kit.errors import ConfigError, cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open  # noqa: E402

PAPER_MODELS = ("lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru")
# (kind, precision) in the order measured: what a budget cut keeps first.
MODES = (("train", "mixed_bfloat16"), ("infer", "bfloat16"), ("train", "float32"), ("infer", "float32"))
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "bfloat16": "bfloat16"}
FULL = dict(models=PAPER_MODELS, batch=64, frames=300, repeats=10, steps=10, matmul_n=8192)
SMOKE = dict(models=("lfnl_netvlad_tiny", "gru_tiny"), batch=2, frames=6, repeats=2, steps=5, matmul_n=128)
LR, CLIP_NORM = 2e-4, 1.0  # Tang et al.; yt8m_kit.train's defaults


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the step functions (pure)

def bce_loss(labels, probs, eps=1e-6):
    """yt8m_kit.train.cross_entropy averaged over the batch: (B, C) multi-hot, (B, C) probs -> ()."""
    from keras import ops

    p = ops.clip(ops.cast(probs, "float32"), eps, 1.0 - eps)
    return ops.mean(-ops.sum(labels * ops.log(p) + (1.0 - labels) * ops.log(1.0 - p), axis=-1))


def clip_by_global_norm(grads, clip_norm):
    """tf.clip_by_global_norm: every gradient scaled by clip / max(global norm, clip)."""
    from keras import ops

    norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads))
    scale = clip_norm / ops.maximum(norm, clip_norm)
    return [ops.cast(g * scale, g.dtype) for g in grads]


def make_grad_fn(model):
    """jitted (trainable, non_trainable, inputs, labels) -> ((loss, non_trainable), grads)."""
    import jax

    def loss_fn(trainable, non_trainable, inputs, labels):
        probs, non_trainable, losses = model.stateless_call(trainable, non_trainable, inputs, training=True,
                                                            return_losses=True)
        loss = bce_loss(labels, probs)
        return (loss + sum(losses) if losses else loss), non_trainable

    return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))


def make_train_step(model, optimizer, clip_norm=CLIP_NORM, donate=False):
    """jitted (state, inputs, labels) -> (loss, state); state = initial_state(model, optimizer)."""
    import jax

    grad_fn = make_grad_fn(model)

    def step(state, inputs, labels):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, inputs, labels)
        grads = clip_by_global_norm(grads, clip_norm)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def initial_state(model, optimizer):
    optimizer.build(model.trainable_variables)
    return ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables])


def make_infer_step(model, repeats):
    """jitted (trainable, non_trainable, inputs of B*R rows, video-major) -> (B, C) mean probabilities."""
    import jax
    from keras import ops

    def infer(trainable, non_trainable, inputs):
        probs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
        return ops.mean(ops.reshape(probs, (-1, repeats, probs.shape[-1])), axis=1)

    return jax.jit(infer)


def synthetic_batch(rows, frames, seed=0):
    """{"frames" (rows, T, 1152) dequantised uint8, zero past "num_frames" (rows,)}, labels (rows, C)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = features.dequantize(rng.integers(0, 256, size=(rows, frames, FEATURE_DIM), dtype=np.uint8))
    num_frames = rng.integers(1, frames + 1, size=rows).astype(np.int32)
    x[np.arange(frames)[None, :] >= num_frames[:, None]] = 0.0
    labels = (rng.random((rows, NUM_CLASSES)) < 3 / NUM_CLASSES).astype(np.float32)
    return {"frames": x, "num_frames": num_frames}, labels


@functools.lru_cache(maxsize=None)
def _flops_module():
    spec = importlib.util.spec_from_file_location("yt8m_bench_flops", os.path.join(ROOT, "bench", "flops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def count_flops(model, frames):
    """bench/flops.py's analytic counts (no TensorFlow import): (forward, training step) per video."""
    flops = _flops_module()
    return int(flops.forward_flops(model, frames)), int(flops.train_flops(model, frames))


# ---------------------------------------------------------------- timing

def timed(fn, steps):
    """(compile_s, [step seconds]): one untimed call (compile), then `steps` timed ones."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return compile_s, times


def stats(values):
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "runs": len(values)}


def matmul_peak(dtype, n, runs, seconds_per_run=0.1):
    """Dense (n x n) @ (n x n) FLOP/s at `dtype`: {median, min, max, runs}; utilisation uses the max.

    Each timed run chains enough matmuls to take about `seconds_per_run` (launch overhead hidden)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = a.T + 1
    mm = jax.jit(lambda a, b: a @ b)
    _, once = timed(lambda: mm(a, b), 3)
    reps = max(1, min(10_000, int(seconds_per_run / min(once))))

    def chain():  # keeps only the last product alive (n = 8192 float32: 256 MiB each)
        out = None
        for _ in range(reps):
            out = mm(a, b)
        return out

    _, times = timed(chain, runs)
    return stats([reps * 2 * n**3 / t for t in times])


def measure(name, kind, precision, s, data, peaks):
    """One (model, kind, precision) measurement: dict of numbers."""
    import jax
    import keras

    from yt8m_kit.models import create_model

    # Same initial weights for every build, without keras.utils.set_random_seed (it imports
    # TensorFlow when installed): Keras' global seed generator draws its seed from `random`.
    keras.backend.clear_session()
    random.seed(0)
    model = create_model(name, dtype=precision)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    fwd, train_fl = count_flops(model, s["frames"])
    out = {"params": int(model.count_params())}
    if kind == "train":
        optimizer = keras.optimizers.Adam(learning_rate=LR)
        state = [initial_state(model, optimizer)]
        step = make_train_step(model, optimizer, donate=jax.devices()[0].platform != "cpu")
        inputs, labels = data["train"]

        def run():
            loss, state[0] = step(state[0], inputs, labels)
            return loss

        work, flop_per_item, unit = s["batch"], train_fl, "examples_per_s"
    else:
        step = make_infer_step(model, s["repeats"])
        inputs = data["infer"]

        def run():
            return step(trainable, non_trainable, inputs)

        work, flop_per_item, unit = s["batch"], s["repeats"] * fwd, "videos_per_s"
    compile_s, times = timed(run, s["steps"])
    rate = stats([work / t for t in times])
    peak = peaks[PEAK_DTYPE[precision]]["max"]
    out.update({unit: rate, "step_s": stats(times), "compile_s": compile_s,
                "flops_per_item": flop_per_item,
                "flops_per_s": rate["median"] * flop_per_item,
                "utilisation": rate["median"] * flop_per_item / peak})
    del model, step, run
    keras.backend.clear_session()
    gc.collect()
    return out


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
