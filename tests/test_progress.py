"""Progress on stderr: plain lines, no escape codes, when stderr is not a terminal (Keras' Progbar drew its
bar with backspaces, carriage returns and ANSI colours into redirected logs); the bar itself on a terminal."""

import io
import os
import subprocess
import sys

from yt8m_kit.progress import Progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_not_a_terminal_gets_plain_lines_at_most_every_interval_and_at_the_end():
    out = io.StringIO()
    bar = Progress(100, "step", every=3600, stream=out)
    for step in range(0, 101):
        bar.update(step, [("loss", 0.123456), ("ex/s", 512.0)])
    assert out.getvalue() == "step 100/100 (100%) loss 0.1235 ex/s 512\n"  # the interval never passed: the end only
    out = io.StringIO()
    bar = Progress(4, "file", every=0.0, stream=out)
    for k in range(5):
        bar.update(k)
    assert out.getvalue().splitlines() == ["file 1/4 (25%)", "file 2/4 (50%)", "file 3/4 (75%)", "file 4/4 (100%)"]
    quiet = io.StringIO()
    bar = Progress(4, "model", quiet_if_not_tty=True, stream=quiet)
    for k in range(5):
        bar.update(k)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_bar():
    tty = Tty()
    bar = Progress(3, "step", stateful=("loss",), stream=tty)
    for step in range(1, 4):
        bar.update(step, [("loss", 0.5)])
    assert "3/3" in tty.getvalue() and "loss: 0.5" in tty.getvalue()


def test_a_training_run_logged_to_a_file_has_no_escape_codes(tmp_path, video_data):
    log = tmp_path / "log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "yt8m_kit.train", "--model", "video_logistic", "--train",
                               str(video_data / "train*.tfrecord"), "--out", str(tmp_path / "run"), "--steps", "6",
                               "--batch-size", "8"],
                              cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=f)
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert not any(c in text for c in "\x1b\r\x08"), repr(text[-500:])
    assert "step 6/6 (100%) loss " in text
