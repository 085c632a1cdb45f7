"""Weight-only int8 storage: large float tensors as int8 plus one float32 scale per output unit.

What the 2018 winners did to fit more members under 1 GB: store 8-bit weights, dequantise
them once at load, run in float. Why not Keras 3.15's `model.quantize("int8")`: it only
converts layers whose type is exactly Dense, EinsumDense or Embedding (our MoE, NetVLAD,
gating and GRU weights, ~all the bytes, are custom layers or GRU cells, so it would leave
them in float32), and its int8 Dense also quantises the *activations* on every call (W8A8,
`AbsMaxQuantizer` on the inputs). The two side by side: bench/README.md;
tests/test_ensemble.py::test_keras_quantize_misses_our_custom_layers keeps the comparison true.

Scheme: symmetric, per output channel (the last axis), for tensors of 2 or more axes:
    scale = max|w| / 127 over all but the last axis;  q = round(w / scale) in [-127, 127]
    w' = q * scale   (error at most scale / 2 per weight)
1-D tensors (biases, batch-norm moments and scales, whatever their size) and tensors with fewer
than `MIN_INT8_ELEMENTS` elements stay float32. A 1-D tensor has one output channel, so it would
get one scale for all its values: a batch norm's moving variances spread over orders of magnitude,
and with one scale all but the largest rounded to 0 (Soft-BoF-4K's 4,096 variances, the MoE's
biases, before 2026-12-07). Their bytes are ~0.1% of a model's.
"""

import numpy as np

PRECISIONS = ("float32", "bfloat16", "int8")  # how a member's weights can be stored
# The dtype a member computes in at each precision: int8 weights are dequantised to float32 at load.
COMPUTE_DTYPE = {"float32": "float32", "bfloat16": "bfloat16", "int8": "float32"}
MIN_INT8_ELEMENTS = 4096


def compute_dtype(precision):
    """The Keras dtype policy a member stored at `precision` runs in."""
    from yt8m_kit.errors import ConfigError

    if precision not in COMPUTE_DTYPE:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return COMPUTE_DTYPE[precision]


def should_quantize(value, min_elements=MIN_INT8_ELEMENTS):
    """True for float tensors of 2 or more axes big enough to be worth 8 bits (1-D tensors stay float)."""
    dtype = np.dtype(value.dtype)
    return dtype.kind == "f" and value.ndim >= 2 and value.size >= min_elements


def quantize_int8(value):
    """float array (..., U) -> (q int8 same shape, scale float32 (U,))."""
    w = np.asarray(value, dtype=np.float32)
    reduce_axes = tuple(range(w.ndim - 1))
    amax = np.max(np.abs(w), axis=reduce_axes) if reduce_axes else np.max(np.abs(w), keepdims=True)
    scale = (np.maximum(amax, 1e-30) / 127.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.reshape(-1)


def dequantize_int8(q, scale):
    """Inverse of quantize_int8: float32 array, the shape of q."""
    scale = np.asarray(scale, dtype=np.float32)
    return np.asarray(q, dtype=np.float32) * (scale if q.ndim else scale[0])


def roundtrip_int8(value):
    """What a weight becomes after int8 storage and load (float32)."""
    return dequantize_int8(*quantize_int8(value))


def storage_arrays(value, precision, min_elements=MIN_INT8_ELEMENTS):
    """The arrays one variable is written as: {"": value} or {"int8": q, "scale": s}."""
    value = np.asarray(value)
    if precision == "int8" and should_quantize(value, min_elements):
        q, scale = quantize_int8(value)
        return {"int8": q, "scale": scale}
    return {"": value}


def storage_bytes(values, precision, min_elements=MIN_INT8_ELEMENTS):
    """Exact data bytes that `values` (variables at their stored dtype) take when written: the
    arrays storage_arrays makes, counted, not estimated (1-D tensors at float32 under int8)."""
    return int(sum(a.nbytes for value in values
                   for a in storage_arrays(value, precision, min_elements).values()))

