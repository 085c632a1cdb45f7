"""Frame helpers: the padding mask from `num_frames`, zeroed padding, feature slices.

Frame-level batches are (B, T, 1152) with `num_frames` (B,) real frames per row; rows past
`num_frames` are padding and must change nothing downstream. Models zero the padding once at
the input (robust even to NaN/inf garbage there) and pass the (B, T) mask to every pooling
layer, which multiplies its per-frame assignments by it.
"""

import keras
from keras import ops

from yt8m_kit.layers.numerics import frame_mask, masked_mean


@keras.saving.register_keras_serializable(package="yt8m_kit")
class FrameMasking(keras.layers.Layer):
    """[frames (B, T, D), num_frames (B,)] -> [frames with padding zeroed, mask (B, T)].

    The mask has the layer's compute dtype (0/1 are exact in bfloat16).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def call(self, inputs):
        frames, num_frames = inputs
        mask = frame_mask(num_frames, ops.shape(frames)[1], self.compute_dtype)
        keep = ops.expand_dims(ops.greater(mask, 0), -1)  # (B, T, 1)
        frames = ops.where(keep, frames, ops.zeros_like(frames))
        return [frames, mask]

    def compute_output_shape(self, input_shape):
        frames_shape = tuple(input_shape[0])
        return [frames_shape, frames_shape[:2]]

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="yt8m_kit")
class FeatureSlice(keras.layers.Layer):
    """x[..., start:stop]: e.g. rgb = FeatureSlice(0, 1024), audio = FeatureSlice(1024, 1152)."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= int(start) < int(stop):
            raise ValueError(f"feature slice [{start}:{stop}] is empty or negative: need 0 <= start < stop")
        self.start, self.stop = int(start), int(stop)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is not None and self.stop > dim:
            raise ValueError(f"feature slice [{self.start}:{self.stop}] exceeds the feature size ({dim})")

    def call(self, inputs):
        return inputs[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.stop - self.start,)

    def get_config(self):
        config = super().get_config()
        config.update({"start": self.start, "stop": self.stop})
        return config


@keras.saving.register_keras_serializable(package="yt8m_kit")
class MaskedMeanFrames(keras.layers.Layer):
    """[frames (B, T, D), num_frames (B,)] -> (B, D) mean of each video's real frames: the video-level
    features a video-level ensemble member gets from a frame-level batch."""

    def call(self, inputs):
        frames, num_frames = inputs
        return masked_mean(frames, num_frames)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])
