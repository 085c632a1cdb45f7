"""SIGTERM (what schedulers and `timeout` send) ends a command as Ctrl-C does: its atomic writers remove their
temporaries, it says "interrupted: no partial output was written" and exits 143 (128 + SIGTERM)."""

import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sigterm_mid_run_leaves_no_temporary_and_says_so(tmp_path):
    out = tmp_path / "synth"
    proc = subprocess.Popen([sys.executable, "-m", "yt8m_kit.synth", "--out", str(out), "--level", "frame",
                             "--videos", "3000", "--shards", "6", "--classes", "20", "--max-frames", "60",
                             "--vocabulary", "zipf"],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.endswith(".tfrecord") for p in out.glob("*")):
        time.sleep(0.05)  # the first shard written: the command is past its imports, in the middle of its work
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted: no partial output was written" in err
    assert "Traceback" not in err
    left = [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert not left, left
    assert not (out / "summary.json").exists()  # written last: the run did not pretend to finish
