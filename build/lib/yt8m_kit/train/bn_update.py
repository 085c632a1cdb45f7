"""Batch-norm statistics recomputed for averaged weights (SWA's bn_update, Izmailov et al. 2018).

An average of checkpoints is a new set of weights: the moving means and variances each checkpoint
learnt describe the activations of *its* weights, and their mean describes neither. As SWA does,
the statistics are recomputed by running the averaged model over training batches in training
mode, each BatchNormalization layer set to the exact average of the batch statistics it sees:
at batch i its momentum is (i - 1) / i, so after n batches
    moving_mean = (1/n) sum_i mean_i,   moving_variance = (1/n) sum_i var_i
(Keras' BN keeps the biased batch variance; so do these). Everything else in the model is left
as averaged. Dropout is active in training mode, as during training and in SWA.
"""

import keras
import numpy as np


def batch_norm_layers(model):
    """Every BatchNormalization layer in `model`, nested ones (inside custom layers) included."""
    found, stack, seen = [], [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        children = list(getattr(layer, "layers", []) or [])
        children += [v for v in vars(layer).values() if isinstance(v, keras.layers.Layer)]
        stack.extend(children)
    return sorted(found, key=lambda layer: layer.path)


def update_batch_norm(model, batches, max_batches):
    """Set every BN layer's moving statistics to the average of its batch statistics over at most
    `max_batches` batches (reader batch dicts); returns {"layers", "batches", "videos"}.

    A model without BN layers is left as is (zero batches read)."""
    from yt8m_kit.models import model_inputs

    layers = batch_norm_layers(model)
    if not layers or max_batches < 1:
        return {"layers": len(layers), "batches": 0, "videos": 0}
    saved = [layer.momentum for layer in layers]
    count = videos = 0
    try:
        for batch in batches:
            if count >= max_batches:
                break
            count += 1
            for layer in layers:
                layer.momentum = (count - 1) / count  # batch 1 replaces the statistics outright
            inputs = model_inputs(model, batch)
            model(inputs, training=True)
            videos += int(np.shape(next(iter(inputs.values())))[0])
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return {"layers": len(layers), "batches": count, "videos": videos}
