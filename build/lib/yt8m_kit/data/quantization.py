"""The dataset's 8-bit feature quantisation (DESIGN section 2), with no TensorFlow import.

q = round((clip(x, -2, 2) + 2) * 255/4); x = q * 4/255 - 2 + 4/512 (the +4/512 centres each bucket).
yt8m_kit.data.dataset.dequantize adds the tf-tensor path used by the readers.
"""

import numpy as np

SCALE = 4.0 / 255.0
OFFSET = -2.0 + 4.0 / 512.0


def quantize(x):
    """float -> uint8 as stored: round((clip(x, -2, 2) + 2) * 255/4)."""
    return np.rint((np.clip(np.asarray(x, np.float32), -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def dequantize(q):
    """uint8 (numpy) -> float32: q*4/255 - 2 + 4/512."""
    return np.asarray(q, np.float32) * np.float32(SCALE) + np.float32(OFFSET)
