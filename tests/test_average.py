"""Checkpoint averaging: the element-wise mean of every weight, written as a loadable checkpoint."""

import json
import os

import numpy as np
import pytest

from yt8m_kit.train import averaging as average
from yt8m_kit.train import checkpoint as ck
from yt8m_kit.errors import ConfigError

OVERRIDES = {"hidden": [16], "experts": 1}  # batch norm on: moving statistics must be averaged too


def make_run(run_dir, steps=(10, 20, 30, 40), seed=0):
    """A run whose checkpoints hold different weights, BN statistics included; returns the models' weights."""
    import keras

    from yt8m_kit.models import create_model

    keras.utils.set_random_seed(seed)
    model = create_model("video", **OVERRIDES)
    meta = {"model": "video", "overrides": OVERRIDES, "level": "video"}
    rng = np.random.default_rng(seed)
    saved = {}
    for step in steps:
        for w in model.weights:
            value = rng.normal(size=w.shape).astype(np.float32)
            w.assign(np.abs(value) if "variance" in w.path else value)
        saved[step] = [w.numpy().copy() for w in model.weights]
        ck.save_checkpoint(run_dir, step, model, meta)
    return model, saved


def test_average_last_k_is_the_mean_and_loads(tmp_path):
    model, saved = make_run(tmp_path)
    assert any("moving_mean" in w.path for w in model.weights)  # non-trainable weights are covered
    assert average.main([str(tmp_path), "--last", "3"]) == 0
    out = tmp_path / ck.AVERAGED
    meta = json.load(open(out / "model.json"))
    assert meta["averaged_steps"] == [20, 30, 40] and meta["model"] == "video"
    assert sorted(os.listdir(out)) == ["model.json", "model.weights.h5"]
    loaded, m = ck.load_model(tmp_path)  # RUN_DIR resolves to the averaged checkpoint
    assert m["path"] == str(out)
    for i, w in enumerate(loaded.weights):
        expected = np.mean([saved[s][i] for s in (20, 30, 40)], axis=0)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, atol=1e-6, err_msg=w.path)
    assert not np.allclose(loaded.weights[0].numpy(), saved[40][0])  # not just the last checkpoint
    x = {"features": np.random.default_rng(0).normal(size=(3, 1152)).astype(np.float32)}
    assert loaded(x, training=False).shape == (3, 3862)


def test_average_explicit_steps_and_replace(tmp_path):
    _, saved = make_run(tmp_path)
    average.average_checkpoints(tmp_path, last=2)
    path = average.average_checkpoints(tmp_path, steps=[10, 30])  # replaces the previous average
    loaded, meta = ck.load_model(path)
    assert meta["averaged_steps"] == [10, 30]
    np.testing.assert_allclose(loaded.weights[0].numpy(), (saved[10][0] + saved[30][0]) / 2, rtol=1e-6, atol=1e-6)
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".tmp")]


def test_average_refuses_bad_requests(tmp_path, capsys):
    make_run(tmp_path, steps=(10, 20))
    assert average.main([str(tmp_path), "--last", "5"]) == 2
    assert "--last 5 asks for more checkpoints" in capsys.readouterr().err
    assert average.main([str(tmp_path), "--steps", "10,15"]) == 2
    assert "no checkpoint for steps [15]" in capsys.readouterr().err
    assert average.main([str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / ck.AVERAGED).exists()
    # A checkpoint of another configuration among them.
    other = json.load(open(tmp_path / "ckpt-00000010" / "model.json"))
    other["overrides"]["hidden"] = [32]
    json.dump(other, open(tmp_path / "ckpt-00000010" / "model.json", "w"))
    with pytest.raises(ConfigError, match=r"overrides\.hidden"):
        average.average_checkpoints(tmp_path)


def test_average_bfloat16_weights(tmp_path):
    import ml_dtypes

    from yt8m_kit.models import create_model

    model = create_model("video_logistic", dtype="bfloat16")
    meta = {"model": "video_logistic", "overrides": {"dtype": "bfloat16"}, "level": "video"}
    values = []
    for step, v in ((1, 1.0), (2, 2.0)):
        for w in model.weights:
            w.assign(np.full(w.shape, v, ml_dtypes.bfloat16))
        values.append(v)
        ck.save_checkpoint(tmp_path, step, model, meta)
    loaded, _ = ck.load_model(average.average_checkpoints(tmp_path))
    assert "bfloat16" in str(loaded.weights[0].dtype)
    np.testing.assert_array_equal(np.asarray(loaded.weights[0].numpy(), np.float32), 1.5)
