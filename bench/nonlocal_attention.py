"""How far a trained model's non-local blocks attend away from uniform.

    python bench/nonlocal_attention.py RUN_DIR --data 'validate*.tfrecord' [--frames 32] [--videos 256]

For every NonLocalBlock of the run's checkpoint (RUN_DIR resolves as everywhere: its average, else its
latest) and of a freshly initialised model of the same configuration, the attention rows
softmax(theta(v) phi(v)^T) on the given videos, and their mean entropy divided by log K (1.0: uniform,
0.0: each cluster attends to one other). Prints one line per block: at init and trained.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from yt8m_kit.errors import cli_main  # noqa: E402


def block_entropies(model, batches):
    """{block name: mean normalised entropy of its attention rows} over `batches`."""
    import keras

    from yt8m_kit.layers import NonLocalBlock
    from yt8m_kit.models import model_inputs

    blocks = [layer for layer in model.layers if isinstance(layer, NonLocalBlock)]
    probe = keras.Model(model.inputs, [b.input for b in blocks])
    sums = {b.name: [] for b in blocks}
    for batch in batches:
        outs = probe(model_inputs(model, batch), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for block, v in zip(blocks, outs):
            v = np.asarray(v, np.float64)
            theta = v @ block.theta_kernel.numpy() + block.theta_bias.numpy()
            logits = np.einsum("bke,ble->bkl", theta, v @ block.phi_kernel.numpy())
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            sums[block.name].append((-(p * np.log(p + 1e-30)).sum(-1) / np.log(p.shape[-1])).ravel())
    return {name: float(np.concatenate(rows).mean()) for name, rows in sums.items()}


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory or checkpoint of a model with non-local blocks")
    p.add_argument("--data", required=True, help="frame-level TFRecords to look at (e.g. the validation split)")
    p.add_argument("--frames", type=int, default=32, help="frames sampled per video (default 32, the demo's)")
    p.add_argument("--videos", type=int, default=256, help="videos to average over (default 256)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    import keras

    from yt8m_kit.data import dataset as data
    from yt8m_kit.train.checkpoint import build_model, describe, load_model

    trained, meta = load_model(a.run)
    keras.utils.set_random_seed(a.seed)
    fresh = build_model(meta)

    def batches():
        ds = data.make_dataset(a.data, 32, level="frame", frames="sample", num_samples=a.frames, seed=a.seed)
        seen = 0
        for batch in data.iterate(ds):
            if seen >= a.videos:
                break
            seen += int(batch["num_frames"].shape[0])
            yield batch

    init, done = block_entropies(fresh, batches()), block_entropies(trained, batches())
    print(f"{describe(meta['path'])}: attention entropy / log K (1 = uniform), {a.videos} videos of {a.data}")
    for name in done:
        print(f"  {name:<20} at init {init[name]:.4f}   trained {done[name]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
