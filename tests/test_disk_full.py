"""A full disk (ENOSPC) in every command: exit 2 with a message naming the path, previous outputs kept,
no partial or temporary file left; evaluate still prints the score it computed."""

import errno
import io
import os

import numpy as np
import pytest

from yt8m_kit.data import synth
from yt8m_kit.evaluate import cli as evaluate
from yt8m_kit.evaluate import prediction_files
from yt8m_kit.kaggle import inference_job as infer
from yt8m_kit.kaggle import submission_csv
from yt8m_kit.models import create_model
from yt8m_kit.train import checkpoint as ckpt_lib
from yt8m_kit.train import cli as train

MODEL = "video_logistic"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    rng = np.random.default_rng(0)
    synth.write_records(d / "v.tfrecord", [synth.video_example(f"v{i}", [i % 7], rng.normal(size=1024),
                                                               rng.normal(size=128)) for i in range(40)])
    ckpt_lib.save_checkpoint(str(d / "run"), 1, create_model(MODEL), {"model": MODEL, "overrides": {}, "level": "video"})
    return d


class Full(io.FileIO):
    """A file on a disk that fills up after `room` bytes."""

    room = 3000

    def write(self, b):
        if self.tell() + len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(b)


def full_open(path, mode="r", *args, **kwargs):
    return Full(path, mode.replace("+b", "+").replace("b", "") or "r") if "w" in mode else open(path, mode, *args, **kwargs)


def test_evaluate_save_predictions_on_a_full_disk(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prediction_files, "open", full_open, raising=False)
    out = tmp_path / "p.h5"
    rc = evaluate.main(["--checkpoint", str(setup / "run"), "--data", str(setup / "v.tfrecord"),
                        "--save-predictions", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 2
    assert '"gap"' in captured.out  # the score was computed and printed
    assert "no space left" in captured.err and str(out) in captured.err and "Traceback" not in captured.err
    assert os.listdir(tmp_path) == []  # neither the file nor a temporary


def test_inference_on_a_full_disk_keeps_the_old_csv(setup, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sub.csv"
    out.write_text("the previous CSV\n")

    def no_room(self, ids, pairs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._file.name)

    monkeypatch.setattr(submission_csv.CsvWriter, "_write_lines", no_room)
    rc = infer.main(["--model", str(setup / "run"), "--input", str(setup / "v.tfrecord"), "--output", str(out),
                     "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "no space left" in err and "Traceback" not in err, err
    assert out.read_text() == "the previous CSV\n" and os.listdir(tmp_path) == ["sub.csv"]


def test_train_on_a_full_disk_exits_2(setup, tmp_path, monkeypatch, capsys):
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "r" / "ckpt-2"))

    monkeypatch.setattr(ckpt_lib, "save_checkpoint", no_room)
    rc = train.main(["--model", MODEL, "--train", str(setup / "v.tfrecord"), "--out", str(tmp_path / "r"),
                     "--steps", "2", "--batch-size", "8", "--checkpoint-every", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "no space left" in err and "ckpt-2" in err and "Traceback" not in err, err


def test_other_os_errors_are_not_disguised(monkeypatch):
    from yt8m_kit.errors import cli_main

    @cli_main
    def main(argv=None):
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        main([])
