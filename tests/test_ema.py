"""Weight EMA (train --ema): the arithmetic over a few steps, an exact resume, and the EMA checkpoint
loading and evaluating wherever a run is used."""

import json

import numpy as np
import pytest

from yt8m_kit.errors import ConfigError
from yt8m_kit.evaluate import cli as evaluate
from yt8m_kit.train import checkpoint as ck
from yt8m_kit.train import cli as train_cli
from yt8m_kit.train.ema import parse_ema

MODEL = ["--model", "video", "--set", "hidden=[16]"]  # the registered video model, small, with batch norm


def train(video_data, out, steps, *extra):
    argv = MODEL + ["--train", str(video_data / "train*.tfrecord"), "--out", str(out), "--steps", str(steps),
                    "--batch-size", "8", "--checkpoint-every", "1", "--keep", "10", "--no-progress", *extra]
    assert train_cli.main(argv) == 0


def trainable(path):
    model, _ = ck.load_model(str(path))
    return [v.numpy() for v in model.trainable_variables]


def test_parse_ema():
    assert parse_ema("0.999") == 0.999
    assert parse_ema("700") == pytest.approx(0.5 ** (1 / 700))
    assert parse_ema(700) ** 700 == pytest.approx(0.5)
    for bad in ("0", "-1", "abc"):
        with pytest.raises(ConfigError):
            parse_ema(bad)


@pytest.fixture(scope="module")
def ema_run(video_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ema") / "run"
    train(video_data, out, 4, "--ema", "0.5")
    return out


def test_ema_arithmetic_over_four_steps(ema_run):
    """a_1 = w_1, a_t = d a_{t-1} + (1 - d) w_t, with w_t the weights after step t (checkpoint t)."""
    steps = [trainable(ema_run / ck.checkpoint_name(t)) for t in range(1, 5)]
    expected = steps[0]
    for w in steps[1:]:
        expected = [0.5 * a + 0.5 * x for a, x in zip(expected, w)]
    got = trainable(ema_run / ck.EMA)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(got, steps[-1]))  # not the raw weights
    meta = json.load(open(ema_run / ck.EMA / ck.MODEL_JSON))
    assert meta["ema"] == {"decay": 0.5, "step": 4} and meta["step"] == 4
    assert meta["bn_update"]["batches"] >= 1  # the video model has batch norm: recomputed for the EMA weights


def test_resumed_run_continues_the_average_exactly(ema_run, video_data, tmp_path):
    out = tmp_path / "resumed"
    train(video_data, out, 2, "--ema", "0.5")
    train(video_data, out, 4, "--ema", "0.5")
    for a, b in zip(trainable(out / ck.EMA), trainable(ema_run / ck.EMA)):
        np.testing.assert_array_equal(a, b)
    assert train_cli.main(MODEL + ["--train", str(video_data / "train*.tfrecord"), "--out", str(out), "--steps", "6",
                                   "--batch-size", "8", "--no-progress"]) == 2  # --ema dropped: refused


def test_the_run_resolves_to_its_ema_and_evaluates(ema_run, video_data, capsys):
    assert ck.resolve_checkpoint(str(ema_run)) == str(ema_run / ck.EMA)
    rc = evaluate.main(["--checkpoint", str(ema_run), "--data", str(video_data / "validate*.tfrecord"), "--json"])
    out = capsys.readouterr()
    assert rc == 0 and "weight EMA (decay 0.5) at step 4" in out.err
    assert 0 <= json.loads(out.out)["gap"] <= 1


def test_an_ema_older_than_the_latest_checkpoint_is_not_used(ema_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ema_run, run)
    newer = run / ck.checkpoint_name(5)
    shutil.copytree(run / ck.checkpoint_name(4), newer)
    meta = json.load(open(newer / ck.MODEL_JSON))
    json.dump(dict(meta, step=5), open(newer / ck.MODEL_JSON, "w"))
    assert ck.resolve_checkpoint(str(run)) == str(newer)
