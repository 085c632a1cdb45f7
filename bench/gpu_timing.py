"""bench/gpu.py's timing under Keras 3's JAX backend (no TensorFlow import).

timed: one untimed (compile) call, then timed ones; matmul_peak: dense matmul FLOP/s at a dtype;
measure: one (model, kind, precision) measurement, rates and utilisation against that peak.
"""

import gc
import random
import statistics
import time

from gpu_steps import LR, count_flops, initial_state, make_infer_step, make_train_step

PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "bfloat16": "bfloat16"}


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
