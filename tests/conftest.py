"""Shared pytest fixtures: small generated data sets and the real video-level shards.

Fixtures (session-scoped, built once per test run):
- frame_data: Path to a directory made by synth.generate(level="frame", videos=120, seed=0,
  shards=2, classes=50, short videos): train-0000x-of-00002.tfrecord, validate-*, test-*.
- video_data: the same at video level.
- real_video_dir: Path to $YT8M_DATA/validate, else ../shared/data/yt8m_2018_video/validate (skips when absent).
- ops: the loaded yt8m_kit.data.native op module (fails when a compiler is here but it is not built;
  skips without a compiler).
The summary dict returned by synth.generate is in `<dir>/summary.json`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from yt8m_kit.runtime import configure_process  # noqa: E402

configure_process()  # as every command line does (the suite calls the library directly)

REPO_ROOT = Path(__file__).resolve().parent.parent
from yt8m_kit.data.synth import real_data_dir  # noqa: E402

REAL_VIDEO_DIR = real_data_dir() / "validate"  # $YT8M_DATA/validate, else ../shared/... beside the clone

# Short videos keep the fixture small (~120 videos x ~20 frames x 1152 bytes per split).
FIXTURE_VIDEOS = 120
FIXTURE_CLASSES = 50
FIXTURE_MAX_FRAMES = 40


def _generate(tmp_path_factory, level):
    from yt8m_kit.data import synth

    out = tmp_path_factory.mktemp(f"synth_{level}")
    synth.generate(out, level, FIXTURE_VIDEOS, seed=0, shards=2, classes=FIXTURE_CLASSES,
                   vocabulary=None, max_frames=FIXTURE_MAX_FRAMES)  # Zipf: the same data in every clone
    return out


@pytest.fixture(scope="session")
def frame_data(tmp_path_factory):
    """Directory with generated frame-level train/validate/test shards (2 each)."""
    return _generate(tmp_path_factory, "frame")


@pytest.fixture(scope="session")
def video_data(tmp_path_factory):
    """Directory with generated video-level train/validate/test shards (2 each)."""
    return _generate(tmp_path_factory, "video")


@pytest.fixture(scope="session")
def real_video_dir():
    """Path to the real 2018 video-level validate shards; skips the test when absent."""
    if not REAL_VIDEO_DIR.is_dir() or not any(REAL_VIDEO_DIR.glob("*.tfrecord")):
        pytest.skip(f"real data not found at {REAL_VIDEO_DIR} (set YT8M_DATA to the folder holding validate/)")
    return REAL_VIDEO_DIR


@pytest.fixture(scope="session")
def ops():
    import shutil

    from yt8m_kit.data import native

    if not native.available():
        if shutil.which("g++") or shutil.which("c++"):
            pytest.fail("a C++ compiler is here but the native reader is not built or does not load: "
                        "`python -m yt8m_kit.native` (make test builds it)")
        pytest.skip("no C++ compiler: the native reader cannot be built here")
    return native.ops()
