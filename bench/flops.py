"""Analytic matmul FLOPs of the registered models: forward per video, and per training step.

No TensorFlow import (bench/gpu.py uses it under Keras' JAX backend). What is counted, and how
tests/test_bench.py checks it against traced graphs: bench/README.md.
"""


def _layer_flops(layer, frames):
    """Forward matmul FLOPs per video of one layer, with `frames` frames per video."""
    from yt8m_kit import layers as L

    name = type(layer).__name__
    if isinstance(layer, L.NetVLAD):  # assignment (T,D)x(D,K) and aggregation (K,T)x(T,D)
        return 2 * 2 * frames * layer.feature_size * layer.num_clusters
    if isinstance(layer, L.SoftBoF):
        return 2 * frames * int(layer.cluster_kernel.shape[0]) * layer.num_clusters
    if isinstance(layer, L.NonLocalBlock):  # theta/phi/g (K,D)x(D,E), (K,E)x(E,K), (K,K)x(K,E), out (K,E)x(E,D)
        k, d = int(layer.input.shape[1]), int(layer.input.shape[2])
        e = int(layer.theta_kernel.shape[1])
        return 2 * (3 * k * d * e + 2 * k * k * e + k * e * d)
    if isinstance(layer, L.ContextGating):
        rows = frames if len(layer.input.shape) == 3 else 1
        d = int(layer.bias.shape[0])
        return 2 * rows * (d * d if layer.rank is None else 2 * d * layer.rank)
    if isinstance(layer, L.MixtureOfExperts):
        return 2 * int(layer.gate_kernel.shape[0]) * (int(layer.gate_kernel.shape[1]) + int(layer.expert_kernel.shape[1]))
    if isinstance(layer, L.StackedGRU):  # per step: inputs (D, 3U) and recurrent (U, 3U) kernels
        total, d = 0, int(layer.cells[0].cell.kernel.shape[0])
        for cell in layer.cells:
            u = cell.cell.units
            total += 2 * frames * (d + u) * 3 * u
            d = u
        return total
    if name == "Dense":
        return 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return 0


def forward_flops(model, frames):
    """Analytic forward FLOPs per video of a frame-level model from create_model (see docstring)."""
    return sum(_layer_flops(layer, frames) for layer in model.layers)


def _reads_frames(layer):
    """True when the layer's input is the model's frames, through masking, per-frame L2 normalisation
    and slicing only (weightless steps: no gradient flows back through them)."""
    tensor = layer._inbound_nodes[0].input_tensors[0]
    producer = tensor._keras_history.operation
    while type(producer).__name__ in ("FrameMasking", "FeatureSlice", "L2Normalize"):
        tensor = producer._inbound_nodes[0].input_tensors[0]
        producer = tensor._keras_history.operation
    return type(producer).__name__ == "InputLayer"


def train_flops(model, frames):
    """Matmul FLOPs per video of a training step: forward, plus the gradients with respect to each
    matmul's two operands (2x forward), less those with respect to the input frames, which autodiff
    never computes (the frames are no variable): for the layers that read the frames directly
    (NetVLAD of the late-fusion models, Soft-BoF, frame-level context gating's first matmul, the
    first GRU layer's input kernel) one forward's worth of those matmuls. tests/test_bench.py
    checks this against the matmuls a traced training step depends on."""
    from yt8m_kit import layers as L

    total = 3 * forward_flops(model, frames)
    for layer in model.layers:
        if not isinstance(layer, (L.NetVLAD, L.SoftBoF, L.ContextGating, L.StackedGRU)) or not _reads_frames(layer):
            continue
        if isinstance(layer, L.StackedGRU):  # the first layer's input kernel
            cell = layer.cells[0].cell
            total -= 2 * frames * int(cell.kernel.shape[0]) * 3 * cell.units
        elif isinstance(layer, L.ContextGating) and layer.rank is not None:  # x (D, r) only, not (r, D)
            total -= 2 * frames * int(layer.bias.shape[0]) * layer.rank
        else:
            total -= _layer_flops(layer, frames)
    return total
