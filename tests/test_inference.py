"""inference.py end to end: reproducible CSVs, all-frames, shards + merge, atomicity, upload, progress."""

import io
import os

import numpy as np
import pytest

from kaggle_stub import SUBMISSION_REF, KaggleStub, point_kaggle_at
from yt8m_kit.kaggle import inference_job as infer
from yt8m_kit.kaggle import merge
from yt8m_kit.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL = "soft_bof_4k_tiny"
FAST = ["--num-samples", "8", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from yt8m_kit.train.checkpoint import save_checkpoint
    from yt8m_kit.models import create_model

    out = tmp_path_factory.mktemp("infer_run") / "run"
    save_checkpoint(out, 1, create_model(MODEL), {"model": MODEL, "overrides": {}, "level": "frame", "step": 1})
    return str(out)


@pytest.fixture
def test_glob(frame_data):
    return str(frame_data / "test*.tfrecord")


def run(argv, capsys):
    rc = infer.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def read_rows(path):
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs"
    return {line.split(",")[0]: line.split(",")[1] for line in lines[1:]}


def test_same_seed_byte_identical_other_seed_differs(run_dir, test_glob, tmp_path, capsys):
    paths = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        paths[name] = tmp_path / f"{name}.csv"
        rc, _, err = run(["--model", run_dir, "--input", test_glob, "--repeats", "10", "--seed", str(seed),
                          "--output", str(paths[name]), "--dry-run", *FAST], capsys)
        assert rc == 0, err
        assert "valid" in err and "repeats 10" in err
    a, b, c = (paths[k].read_bytes() for k in "abc")
    assert a == b
    assert a != c
    rows = read_rows(paths["a"])
    assert len(rows) == 120  # the fixture's test split, one row per video
    pairs = next(iter(rows.values())).split()
    assert len(pairs) == 40  # 20 label/confidence pairs
    confs = [float(x) for x in pairs[1::2]]
    assert confs == sorted(confs, reverse=True)


def test_all_frames_deterministic_and_conflicting_repeats(run_dir, test_glob, tmp_path, capsys):
    out1, out2 = tmp_path / "x.csv", tmp_path / "y.csv"
    for out, seed in ((out1, "1"), (out2, "2")):
        rc, _, err = run(["--model", run_dir, "--input", test_glob, "--all-frames", "--seed", seed,
                          "--output", str(out), "--quiet"], capsys)
        assert rc == 0, err
    assert out1.read_bytes() == out2.read_bytes()  # no sampling: the seed plays no part
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--all-frames", "--repeats", "3",
                      "--output", str(tmp_path / "z.csv")], capsys)
    assert rc == 2 and "--all-frames" in err and not (tmp_path / "z.csv").exists()


def test_shards_merge_exactly_once(run_dir, test_glob, tmp_path, capsys):
    shards = []
    for i in range(2):
        shards.append(str(tmp_path / f"part{i}.csv"))
        rc, _, err = run(["--model", run_dir, "--input", test_glob, "--repeats", "2", "--seed", "4",
                          "--shard", f"{i}/2", "--output", shards[-1], *FAST], capsys)
        assert rc == 0, err
    full = tmp_path / "full.csv"
    assert infer.main(["--model", run_dir, "--input", test_glob, "--repeats", "2", "--seed", "4",
                       "--output", str(full), *FAST]) == 0
    merged = tmp_path / "merged.csv"
    assert merge.main([*shards, "--output", str(merged), "--data", test_glob]) == 0
    got, want = read_rows(merged), read_rows(full)
    assert sorted(got) == sorted(want)
    for vid in want:  # same frames (seed, id, repeat) -> same scores up to batch-size rounding
        g, w = got[vid].split(), want[vid].split()
        np.testing.assert_allclose(np.float64(g[1::2]), np.float64(w[1::2]), atol=2e-6)
        assert len(set(g[0::2]) & set(w[0::2])) >= 18  # near-ties may swap places at the edge
    capsys.readouterr()
    # a missing shard and a duplicated shard are both refused, and nothing is written
    assert merge.main([shards[0], "--output", str(tmp_path / "m1.csv"), "--data", test_glob]) == 2
    err = capsys.readouterr().err  # the inputs blamed, not the output that was never written (was: "file m1.csv: ...")
    assert f"the 1 input CSV(s) ({shards[0]}) do not hold exactly the videos of --data {test_glob}: " in err
    assert "expected video(s) missing" in err and f"file {tmp_path / 'm1.csv'}" not in err
    assert f"Nothing was written to {tmp_path / 'm1.csv'}" in err
    assert merge.main([shards[0], shards[0], "--output", str(tmp_path / "m2.csv")]) == 2
    assert "twice" in capsys.readouterr().err
    assert not (tmp_path / "m1.csv").exists() and not (tmp_path / "m2.csv").exists()
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--shard", "0/3", "--output",
                      str(tmp_path / "s.csv")], capsys)
    assert rc == 2 and "at most 2 shards" in err


def test_interrupted_run_leaves_no_csv(run_dir, test_glob, tmp_path, capsys, monkeypatch):
    from yt8m_kit.evaluate import predict_loop

    real = predict_loop.predict_batches

    def interrupted(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(predict_loop, "predict_batches", interrupted)
    out = tmp_path / "sub" / "submission.csv"
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--repeats", "1", "--output", str(out),
                      "--batch-size", "16", "--num-samples", "4", "--quiet"], capsys)
    assert rc == 130 and "no partial output" in err
    assert not out.exists() and os.listdir(out.parent) == []  # no half-written temp file either


def with_credentials(monkeypatch, stub, tmp_path):
    """kaggle pointed at the stub, its user and key in the environment."""
    point_kaggle_at(monkeypatch, stub, tmp_path)
    monkeypatch.setenv("KAGGLE_USERNAME", stub.username)
    monkeypatch.setenv("KAGGLE_KEY", stub.key)


def test_upload_end_to_end_and_failures(run_dir, test_glob, tmp_path, capsys, monkeypatch):
    out = tmp_path / "submission.csv"
    argv = ["--model", run_dir, "--input", test_glob, "--repeats", "2", "--output", str(out), *FAST,
            "--upload", "--competition", "youtube8m-2018", "--message", "stub run", "--upload-attempts", "1",
            "--upload-timeout", "20"]
    with KaggleStub("ok") as stub:
        with_credentials(monkeypatch, stub, tmp_path)
        rc, stdout, err = run(argv, capsys)
    assert rc == 0, err
    assert f"ref {SUBMISSION_REF}" in stdout
    assert list(stub.uploads.values()) == [out.read_bytes()]
    assert stub.submissions[0]["submissionDescription"] == "stub run"
    assert stub.key not in stdout + err

    with KaggleStub("upload_fail") as stub:
        with_credentials(monkeypatch, stub, tmp_path)
        rc, stdout, err = run(argv, capsys)
    assert rc == 2 and "Could not submit to competition" in err and "python -m yt8m_kit.upload" in err
    assert stub.key not in stdout + err


def test_upload_without_credentials_fails_before_inference(run_dir, test_glob, tmp_path, capsys, monkeypatch):
    with KaggleStub("ok") as stub:
        point_kaggle_at(monkeypatch, stub, tmp_path)
        out = tmp_path / "never.csv"
        rc, _, err = run(["--model", run_dir, "--input", test_glob, "--output", str(out), "--upload",
                          "--message", "m"], capsys)
    assert rc == 2 and "no Kaggle credentials" in err
    assert not out.exists()  # refused before any inference ran
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--output", str(out), "--upload",
                      "--shard", "0/2"], capsys)
    assert rc == 2 and "merge" in err


def test_progress_line_reports_rate_and_eta():
    now = [0.0]
    stream = io.StringIO()
    p = infer.Progress(total=100, stream=stream, clock=lambda: now[0])
    p.interval_s = 0.0  # a StringIO is not a tty (30 s between lines); report every update here
    now[0] = 2.0
    p.update(20)  # 10 videos/s, 80 left -> 8 s
    assert "20/~100 videos, 10.0 videos/s, ETA 00:00:08" in stream.getvalue()
    now[0] = 4.0
    p.update(20)
    p.close()
    assert "40/~100 videos" in stream.getvalue().splitlines()[-1]


def test_help_and_artifact_errors(tmp_path, capsys):
    text = " ".join(infer.build_parser().format_help().split())
    assert "default 10" in text and "paper" in text
    with pytest.raises(ConfigError, match="not found or not a model artifact"):
        infer.load_artifact(tmp_path / "nothing.keras")


def test_ensemble_artifact_gives_the_members_scores(run_dir, test_glob, tmp_path, capsys):
    from yt8m_kit.train.checkpoint import load_model
    from yt8m_kit.ensemble.artifact import build_ensemble, save_ensemble

    model, _ = load_model(run_dir)
    out_dir = tmp_path / "submission"
    out_dir.mkdir()
    spec = {"model": MODEL, "overrides": {}, "precision": "float32", "run": run_dir}
    save_ensemble(build_ensemble([spec], models=[model]), out_dir / "ensemble.keras")
    csvs = {}
    for name, artifact in (("ckpt", run_dir), ("ens", str(out_dir))):
        csvs[name] = tmp_path / f"{name}.csv"
        rc, _, err = run(["--model", artifact, "--input", test_glob, "--repeats", "2", "--seed", "3",
                          "--output", str(csvs[name]), *FAST], capsys)
        assert rc == 0, err
    assert "ensemble" in err
    got, want = read_rows(csvs["ens"]), read_rows(csvs["ckpt"])
    assert sorted(got) == sorted(want)
    for vid in want:
        np.testing.assert_allclose(np.float64(got[vid].split()[1::2]), np.float64(want[vid].split()[1::2]),
                                   atol=2e-6)


def test_help_answers_without_tensorflow_and_commands_are_quiet(run_dir, test_glob, tmp_path):
    """`inference.py --help` imports no TensorFlow; a run prints none of TensorFlow's INFO/WARNING lines."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    code = "import sys, runpy; sys.argv = ['inference.py', '--help']\ntry:\n    runpy.run_path('inference.py', run_name='__main__')\nexcept SystemExit:\n    pass\nprint('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.stdout.strip().endswith("False") and "--repeats" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "inference.py", "--model", run_dir, "--input", test_glob, "--output",
                           str(tmp_path / "q.csv"), "--repeats", "1", "--num-samples", "4", "--quiet"],
                          capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if line.startswith(("I0000", "W0000", "WARNING: All log"))
             or "oneDNN" in line or "cpu_feature_guard" in line]
    assert not noise, proc.stderr


def test_progress_never_shows_a_count_above_its_estimate():
    now = [0.0]
    stream = io.StringIO()
    p = infer.Progress(total=467, stream=stream, clock=lambda: now[0])
    p.interval_s = 0.0
    now[0] = 1.0
    p.update(500)
    p.close()
    lines = stream.getvalue().splitlines()
    assert all("500/~467" not in line for line in lines) and "500/500 videos" in lines[-1]


def test_user_facing_lines_have_no_raw_dicts(run_dir, test_glob, tmp_path, capsys):
    out = tmp_path / "s.csv"
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--output", str(out), "--dry-run", *FAST], capsys)
    assert rc == 0, err
    line = next(x for x in err.splitlines() if ": valid (" in x)
    assert "{" not in line and "'rows'" not in line and "rows" in line and "label pairs" in line
    rc = merge.main([str(out), "--output", str(tmp_path / "m.csv"), "--data", test_glob])
    text = capsys.readouterr().out
    assert rc == 0 and "{" not in text and "rows" in text


def test_csv_of_other_videos_blames_the_data_not_the_file(run_dir, test_glob, tmp_path, capsys):
    from yt8m_kit.kaggle.submission_csv import CsvWriter

    csv = tmp_path / "other.csv"
    with CsvWriter(str(csv)) as w:
        w.write(["zz1", "zz2"], np.random.default_rng(0).random((2, 3862)).astype(np.float32))
    rc = merge.main([str(csv), "--output", str(tmp_path / "m.csv"), "--data", test_glob])
    err = capsys.readouterr().err
    assert rc == 2 and "none of the CSV's 2 video(s)" in err and "--data" in err


def test_repeats_on_a_video_level_model_say_they_do_nothing(video_data, tmp_path, capsys):
    from yt8m_kit.models import create_model
    from yt8m_kit.train.checkpoint import save_checkpoint

    ckpt = str(tmp_path / "v")
    save_checkpoint(ckpt, 1, create_model("video_logistic"), {"model": "video_logistic", "overrides": {},
                                                               "level": "video"})
    rc, _, err = run(["--model", ckpt, "--input", str(video_data / "test*.tfrecord"), "--output",
                      str(tmp_path / "v.csv"), "--repeats", "10", "--quiet"], capsys)
    assert rc == 0 and "repeats 10 (no effect: every member is video level" in err, err


def test_upload_then_wait_for_the_leaderboard_score(run_dir, test_glob, tmp_path, capsys, monkeypatch):
    out = tmp_path / "submission.csv"
    argv = ["--model", run_dir, "--input", test_glob, "--repeats", "1", "--output", str(out), *FAST,
            "--upload", "--message", "stub run", "--upload-attempts", "1", "--wait", "30", "--poll-interval", "0.05"]
    done = (200, {"ref": SUBMISSION_REF, "status": "COMPLETE", "publicScore": "0.8123"})
    with KaggleStub("ok", scoring=[(200, {"ref": SUBMISSION_REF, "status": "PENDING"}), done]) as stub:
        with_credentials(monkeypatch, stub, tmp_path)
        rc, stdout, err = run(argv, capsys)
    assert rc == 0, err
    assert f"submission {SUBMISSION_REF} scored: public 0.8123" in stdout
    rc, _, err = run(["--model", run_dir, "--input", test_glob, "--wait"], capsys)
    assert rc == 2 and "add --upload" in err
