"""bench/gpu.py's step functions under Keras 3's JAX backend (pure; no TensorFlow import).

make_train_step is the trainer's step (stateless_call, BCE loss, jax.value_and_grad, global-norm
clip, optimizer.stateless_apply) jitted over an explicit state; make_infer_step averages R repeats
per video; synthetic_batch makes the inputs; count_flops reads bench/flops.py's analytic counts.
tests/test_backends.py checks these against yt8m_kit.train.loop under TensorFlow.
"""

import functools
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from yt8m_kit import FEATURE_DIM, NUM_CLASSES
from yt8m_kit.data import quantization as features  # noqa: E402

LR, CLIP_NORM = 2e-4, 1.0  # Tang et al.; yt8m_kit.train.config defaults


def bce_loss(labels, probs, eps=1e-6):
    """yt8m_kit.train.loop.cross_entropy averaged over the batch: (B, C) multi-hot, (B, C) probs -> ()."""
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
