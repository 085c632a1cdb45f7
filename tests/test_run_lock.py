"""One process trains a run directory at a time: a second `train` on a directory that a live process trains
is refused, naming that process; once the first is killed (SIGKILL: no chance to clean up) the directory is
free again, with no stale lock to delete."""

import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO)


def train_cmd(data, out, steps):
    return [sys.executable, "-m", "yt8m_kit.train", "--model", "video_logistic", "--train",
            str(data / "train*.tfrecord"), "--out", str(out), "--steps", str(steps), "--batch-size", "8",
            "--checkpoint-every", "1000000", "--no-progress"]


def test_a_second_trainer_is_refused_naming_the_first_and_a_killed_one_leaves_no_lock(tmp_path):
    from yt8m_kit.data import synth

    data = tmp_path / "data"
    synth.generate(str(data), "video", 64, seed=0, shards=1, classes=10, vocabulary=None)
    out = tmp_path / "run"
    first = subprocess.Popen(train_cmd(data, out, 10 ** 7), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "run.json").exists():  # written under the lock
            assert first.poll() is None, first.communicate()[1][-2000:]
            time.sleep(0.1)
        second = subprocess.run(train_cmd(data, out, 10 ** 7), cwd=REPO, env=ENV, capture_output=True, text=True,
                                timeout=180)  # before the lock it trained alongside the first
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by another live process (pid {first.pid}: " in second.stderr, second.stderr[-2000:]
        assert first.poll() is None  # the first goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = subprocess.run(train_cmd(data, out, 2), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert third.returncode == 0, third.stderr[-2000:]
    assert (out / "ckpt-00000002").is_dir()
