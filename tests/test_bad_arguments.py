"""Bad paths and values on the command lines give one clear message and exit 2 (issue 17 items 9,
10 and 12): a missing or directory CSV, a count of upload attempts below one, a negative budget."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import submit as submit_cli  # noqa: E402
from yt8m_kit.evaluate.cli import main as evaluate_main  # noqa: E402
from yt8m_kit.kaggle import inference_job, merge, upload  # noqa: E402


def _run(main, argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_csv_paths_that_are_not_files(kind, tmp_path, video_data, capsys):
    path = str(tmp_path / "nothing.csv") if kind == "missing" else str(tmp_path)
    why = "No such file or directory" if kind == "missing" else "Is a directory"
    data = str(video_data / "validate*.tfrecord")
    for main, argv in ((evaluate_main, ["--predictions", path, "--data", data]),
                       (merge.main, [path, "--output", str(tmp_path / "out.csv")]),
                       (upload.main, [path, "--message", "m", "--dry-run"])):
        code, err = _run(main, argv, capsys)
        assert code == 2 and f"file {path}: cannot read this CSV: {why}" in err, (main.__module__, err)
        assert "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("attempts", ["0", "-1"])
def test_upload_attempts_below_one_are_refused(attempts, tmp_path, capsys):
    csv = tmp_path / "s.csv"
    csv.write_text("VideoId,LabelConfidencePairs\n")
    code, err = _run(upload.main, [str(csv), "--message", "m", "--attempts", attempts], capsys)
    assert code == 2 and f"--attempts ({attempts}) must be at least 1" in err
    with pytest.raises(upload.UploadError, match="must be at least 1"):
        upload.submit(str(csv), message="m", attempts=int(attempts), api=object())
    code, err = _run(inference_job.main, ["--model", str(tmp_path), "--input", "x*.tfrecord", "--output",
                                          str(tmp_path / "o.csv"), "--upload-attempts", attempts], capsys)
    assert code == 2 and "--upload-attempts" in err and "at least 1" in err


def test_a_negative_budget_gets_the_real_message(capsys):
    code, err = _run(submit_cli.main, ["--budget", "-1GB"], capsys)
    assert code == 2 and "cannot read size '-1GB'" in err and "expected one argument" not in err


@pytest.mark.parametrize("budget", ["1e400", "1e30GB"])
def test_a_budget_too_large_to_hold_is_refused(budget, capsys):
    code, err = _run(submit_cli.main, ["--budget", budget], capsys)
    assert code == 2 and f"--budget: size {budget!r} is too large" in err and "Traceback" not in err


def test_average_of_a_run_that_does_not_exist_says_so(tmp_path, capsys):
    from yt8m_kit.train.averaging import main as average_main

    missing = str(tmp_path / "typo")
    code, err = _run(average_main, [missing], capsys)
    assert code == 2 and f"run directory {missing} does not exist" in err
    assert not os.path.exists(missing)  # nothing created under the mistyped name


def test_train_with_fewer_steps_than_the_run_has_is_refused_and_run_json_kept(tmp_path, video_data, capsys):
    import json

    from yt8m_kit.train.cli import main as train_main

    out = tmp_path / "run"
    argv = ["--model", "video_logistic", "--train", str(video_data / "train*.tfrecord"), "--out", str(out),
            "--batch-size", "8", "--checkpoint-every", "4", "--no-progress"]
    assert train_main(argv + ["--steps", "4"]) == 0
    before = json.loads((out / "run.json").read_text())
    code, err = _run(train_main, argv + ["--steps", "2"], capsys)
    assert code == 2 and "is at step 4, past the 2 steps asked for: nothing to train" in err
    assert json.loads((out / "run.json").read_text()) == before  # not rewritten with the smaller total
    code, err = _run(train_main, argv + ["--steps", "4"], capsys)
    assert code == 0 and "already at step 4: nothing to train" in err


def test_a_binary_file_given_as_a_csv_is_named_not_a_traceback(tmp_path, video_data, capsys):
    """e.g. `evaluate --predictions FILE.h5` (a prediction file, not a Kaggle CSV): was a UnicodeDecodeError."""
    path = tmp_path / "predictions.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    for main, argv in ((evaluate_main, ["--predictions", str(path), "--data", str(video_data / "validate*.tfrecord")]),
                       (merge.main, [str(path), "--output", str(tmp_path / "out.csv")]),
                       (upload.main, [str(path), "--message", "m", "--dry-run"])):
        code, err = _run(main, argv, capsys)
        assert code == 2 and f"file {path}: not a text CSV" in err and "Traceback" not in err, (main.__module__, err)


def test_submit_without_runs_names_where_it_looked_and_the_demo_runs(tmp_path, monkeypatch, capsys):
    """After `make demo`, `python submit.py --budget 1GB` looked in checkpoints/ and said only 'train first'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_out" / "runs").mkdir(parents=True)
    (tmp_path / "checkpoints").mkdir()
    code, err = _run(submit_cli.main, ["--budget", "1GB"], capsys)
    assert code == 2 and "no run with a checkpoint under checkpoints (looked for checkpoints/NAME/ckpt-*)" in err
    assert "the demo's runs are in demo_out/runs: python submit.py --budget 1GB --runs demo_out/runs" in err
    code, err = _run(submit_cli.main, ["--budget", "1GB", "--runs", "elsewhere"], capsys)
    assert code == 2 and "--runs elsewhere is not a directory" in err and "--runs demo_out/runs" in err
