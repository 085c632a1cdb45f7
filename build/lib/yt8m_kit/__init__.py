"""yt8m_kit: the 4th-place system of the 2nd YouTube-8M challenge (Tang et al. 2018), as a toolkit."""

__version__ = "0.1.0"

NUM_CLASSES = 3862  # 2018 vocabulary; 2017 had 4716
NUM_CLASSES_2017 = 4716
RGB_DIM = 1024
AUDIO_DIM = 128
FEATURE_DIM = RGB_DIM + AUDIO_DIM  # 1152: rgb then audio, per frame or per video
MAX_FRAMES = 300  # readers keep at most this many frames (videos have up to 360)
TOP_K = 20  # GAP@20 and the Kaggle CSV
# Prediction defaults shared by evaluate, submit.py and inference.py (--help reads them without TensorFlow).
DEFAULT_BATCH_SIZE = 32  # videos per batch; the model sees batch_size * repeats rows
DEFAULT_NUM_SAMPLES = MAX_FRAMES  # frames per random sub-sample
# Sub-samples averaged per video by inference.py and, so that it plans with what inference runs, by
# submit.py: the paper's best (1x 0.8842, 5x 0.8846, 10x 0.8847 validation GAP; 0.88763 public).
DEFAULT_REPEATS = 10
