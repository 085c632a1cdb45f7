"""Keras 3 backends: every light model gives the same outputs under TensorFlow and JAX from the
same weights, the benchmark's JAX training step gives the trainer's gradients and update, and
bench/gpu.py runs under JAX without importing TensorFlow.

The TensorFlow side runs in this process (the suite's default backend). The JAX side runs in ONE
subprocess for all models (JAX start-up and compiles are slow): this file run as a script,
`KERAS_BACKEND=jax python tests/test_backends.py WORK_DIR`, reading the weights (.weights.h5)
and inputs (.npz) written here and writing its outputs back. Skips when jax is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Keras' TensorFlow backend converts each variable with np.array(copy=False) in save_weights: noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
FRAME_TINY = ["efnl_netvlad_tiny", "gru_tiny", "lfnl_netrvlad_tiny", "lfnl_netvlad_tiny", "netvlad_tiny",
              "soft_bof_4k_tiny", "soft_bof_8k_tiny"]
VIDEO = ["video", "video_logistic", "video_moe"]
# (key, model, overrides): every tiny frame model and video model in float32, one in pure bfloat16.
CASES = [(n, n, {}) for n in FRAME_TINY + VIDEO] + [("lfnl_netvlad_tiny@bf16", "lfnl_netvlad_tiny",
                                                      {"dtype": "bfloat16"})]
GRAD_MODEL = "lfnl_netvlad_tiny"  # NetVLAD, non-local, gating, batch norm, MoE: most layers in one
# Tolerances (outputs are probabilities in [0, 1]). float32: both backends compute the same
# float32 graph; only reduction order and exp/log implementations differ (Eigen vs XLA), which
# moves results by a few ulps (measured max 2.4e-7); 1e-5 leaves room without hiding a real
# difference (JAX with its own random weights instead of TF's: 9e-5 to 0.44 measured). bfloat16: an
# 8-bit mantissa (relative step 2^-8 = 0.004), so a rounding that flips between backends in an
# intermediate moves the result far more than float32 noise; measured max 1.4e-6 on these
# near-uniform tiny-model outputs, 1e-4 allows for flips and still catches a wrong layer.
ATOL = {"float32": 1e-5, "bfloat16": 1e-4}
# Gradients: per tensor, relative to its largest entry (measured <= 1e-5), with a floor at 1e-3 of
# the largest gradient of the model: phi's bias gets an analytically zero gradient (the attention
# softmax is invariant to a shift along the attended axis), i.e. ~1e-11 of rounding noise.
GRAD_RTOL, GRAD_FLOOR = 1e-4, 1e-3
B, T, NUM_FRAMES = 4, 10, (10, 6, 1, 3)  # some rows padded (num_frames < T)


def make_inputs():
    """Fixed inputs; padding rows hold garbage (not zeros): the models must ignore it."""
    from yt8m_kit import FEATURE_DIM, NUM_CLASSES

    rng = np.random.default_rng(7)
    labels = np.zeros((B, NUM_CLASSES), np.float32)
    for i in range(B):
        labels[i, rng.choice(NUM_CLASSES, size=3, replace=False)] = 1.0
    return {"frames": rng.normal(size=(B, T, FEATURE_DIM)).astype(np.float32),
            "num_frames": np.array(NUM_FRAMES, np.int32),
            "features": rng.normal(size=(B, FEATURE_DIM)).astype(np.float32), "labels": labels}


def model_inputs(data, level):
    if level == "video":
        return {"features": data["features"]}
    return {"frames": data["frames"], "num_frames": data["num_frames"]}


def tensorflow_side(work):
    """Build every case under TensorFlow, save weights, inputs and outputs; the trainer's step."""
    import keras
    import tensorflow as tf

    from yt8m_kit.train import trainer
    from yt8m_kit.train.config import TrainConfig
    from yt8m_kit.train.loop import cross_entropy, make_train_step
    from yt8m_kit.models import create_model, model_info

    assert keras.backend.backend() == "tensorflow"
    data = make_inputs()
    np.savez(work / "inputs.npz", **data)
    outputs = {}
    for i, (key, name, overrides) in enumerate(CASES):
        keras.utils.set_random_seed(i)
        model = create_model(name, **overrides)
        model.save_weights(str(work / f"{key}.weights.h5"))
        outputs[key] = model(model_inputs(data, model_info(name)["level"]), training=False).numpy()
        keras.backend.clear_session()
    # The trainer's own model, optimizer and step (forward, BCE, global-norm clip, Adam).
    config = TrainConfig(model=GRAD_MODEL, train="", out="", steps=1, batch_size=B, frames=T)
    strategy = tf.distribute.get_strategy()
    model, optimizer = trainer.build(config, strategy)
    model.save_weights(str(work / "grad.weights.h5"))
    x, labels = model_inputs(data, "frame"), tf.constant(data["labels"])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(cross_entropy(labels, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    step_loss = make_train_step(strategy, model, optimizer, config)(x, labels)
    grad = {"loss": float(loss), "step_loss": float(step_loss),
            "grads": {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads)},
            "updated": {v.path: v.numpy() for v in model.trainable_variables}}
    keras.backend.clear_session()
    return outputs, grad


def jax_worker(work):
    """The JAX side (run as a script with KERAS_BACKEND=jax): results into WORK/jax_*.npz, jax.json."""
    import importlib.util

    import jax
    import keras

    sys.path.insert(0, str(ROOT))
    from yt8m_kit.models import create_model, model_info

    spec = importlib.util.spec_from_file_location("yt8m_bench_gpu", ROOT / "bench" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    work = Path(work)
    data = dict(np.load(work / "inputs.npz"))
    outputs, grad_model = {}, None
    for key, name, overrides in CASES:
        # unseeded (keras.utils.set_random_seed would import TensorFlow): the weights loaded count
        model = create_model(name, **overrides)
        model.load_weights(str(work / f"{key}.weights.h5"))
        forward = jax.jit(lambda tr, nt, x, model=model: model.stateless_call(tr, nt, x, training=False)[0])
        outputs[key] = np.asarray(forward([v.value for v in model.trainable_variables],
                                          [v.value for v in model.non_trainable_variables],
                                          model_inputs(data, model_info(name)["level"])))
        if key == GRAD_MODEL:
            grad_model = model  # reused below: building is the slow part here (a compile per weight shape)
    model = grad_model
    model.load_weights(str(work / "grad.weights.h5"))
    x, labels = model_inputs(data, "frame"), data["labels"]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    (loss, _), grads = gpu.make_grad_fn(model)(trainable, non_trainable, x, labels)
    optimizer = keras.optimizers.Adam(learning_rate=gpu.LR)
    step_loss, (updated, _, _) = gpu.make_train_step(model, optimizer)(gpu.initial_state(model, optimizer), x, labels)
    paths = [v.path for v in model.trainable_variables]
    np.savez(work / "jax_outputs.npz", **outputs)
    np.savez(work / "jax_grads.npz", **{p: np.asarray(g) for p, g in zip(paths, grads)})
    np.savez(work / "jax_updated.npz", **{p: np.asarray(u, np.float32) for p, u in zip(paths, updated)})
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    with open(work / "jax.json", "w") as f:
        json.dump({"backend": keras.backend.backend(), "tensorflow_modules": loaded, "paths": paths,
                   "loss": float(loss), "step_loss": float(step_loss)}, f)


def jax_env():
    """KERAS_BACKEND=jax on the CPU. XLA's LLVM back end at -O0 halves the compile time that
    dominates these tiny models; without fast-math (XLA's default) it computes the same IEEE
    float32 arithmetic, only slower (the outputs below agree to ~1e-7 either way)."""
    flags = " ".join(f for f in [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"] if f)
    return dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu", XLA_FLAGS=flags,
                PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    pytest.importorskip("jax")
    work = tmp_path_factory.mktemp("backends")
    tf_outputs, tf_grad = tensorflow_side(work)
    proc = subprocess.run([sys.executable, __file__, str(work)], env=jax_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((work / "jax.json").read_text())
    jax_side = {"outputs": dict(np.load(work / "jax_outputs.npz")), "grads": dict(np.load(work / "jax_grads.npz")),
                "updated": dict(np.load(work / "jax_updated.npz")), "meta": meta}
    return tf_outputs, tf_grad, jax_side


def test_jax_side_ran_without_tensorflow(both):
    meta = both[2]["meta"]
    assert meta["backend"] == "jax"
    assert meta["tensorflow_modules"] == []


@pytest.mark.parametrize("key,name,overrides", CASES, ids=[c[0] for c in CASES])
def test_same_outputs_on_both_backends(both, key, name, overrides):
    tf_out, jax_out = both[0][key], both[2]["outputs"][key]
    assert tf_out.shape == jax_out.shape == (B, 3862) and jax_out.dtype == np.float32
    assert np.isfinite(jax_out).all()
    diff = float(np.abs(tf_out.astype(np.float64) - jax_out).max())
    assert diff < ATOL[overrides.get("dtype", "float32")], f"{key}: max abs diff {diff:.3g}"


def test_training_step_matches_the_trainer(both):
    _, tf_grad, jax_side = both
    assert sorted(tf_grad["grads"]) == sorted(jax_side["meta"]["paths"])
    assert abs(tf_grad["loss"] - jax_side["meta"]["loss"]) < 1e-4 * abs(tf_grad["loss"])
    assert abs(tf_grad["step_loss"] - jax_side["meta"]["step_loss"]) < 1e-4 * abs(tf_grad["loss"])
    largest = max(float(np.abs(g).max()) for g in tf_grad["grads"].values())
    assert largest > 0
    for path, g in tf_grad["grads"].items():
        scale = max(float(np.abs(g).max()), GRAD_FLOOR * largest)
        diff = float(np.abs(g - jax_side["grads"][path]).max())
        assert diff <= GRAD_RTOL * scale, f"{path}: gradient differs by {diff:.3g} (scale {scale:.3g})"
    for path, w in tf_grad["updated"].items():  # after one clipped Adam step at lr 2e-4
        diff = float(np.abs(w - jax_side["updated"][path]).max())
        assert diff < 2e-6, f"{path}: weights after one step differ by {diff:.3g}"


def test_gpu_benchmark_smoke_runs_under_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--json", "--models",
                           "soft_bof_4k_tiny", "--out", str(out)], env=jax_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    assert json.loads(out.read_text())["train"] == results["train"]
    meta = results["meta"]
    assert meta["backend"] == "jax" and meta["complete"] and meta["tensorflow_loaded"] is False
    for dtype in ("float32", "bfloat16"):
        assert results["peak"][dtype]["max"] > 0
    for kind, precision, unit in [("train", "mixed_bfloat16", "examples_per_s"), ("train", "float32", "examples_per_s"),
                                  ("infer", "bfloat16", "videos_per_s"), ("infer", "float32", "videos_per_s")]:
        r = results[kind][precision]["soft_bof_4k_tiny"]
        assert r[unit]["median"] > 0 and r[unit]["runs"] >= 5
        assert r["flops_per_item"] > 0 and r["flops_per_s"] > 0 and 0 < r["utilisation"]
        assert r["compile_s"] > 0 and r["params"] > 0


if __name__ == "__main__":
    jax_worker(sys.argv[1])
