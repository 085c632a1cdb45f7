"""Checkpoint averaging: the element-wise mean of every weight, written as a loadable checkpoint, then
the batch-norm statistics recomputed for the averaged weights (SWA's bn_update); stale averages."""

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
    assert average.main([str(tmp_path), "--last", "3", "--no-bn-update"]) == 0
    out = tmp_path / ck.AVERAGED
    meta = json.load(open(out / "model.json"))
    assert meta["averaged_steps"] == [20, 30, 40] and meta["model"] == "video"
    assert "--no-bn-update" in meta["bn_update"]["skipped"]
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
    average.average_checkpoints(tmp_path, last=2, bn_batches=0)
    path = average.average_checkpoints(tmp_path, steps=[10, 30], bn_batches=0)  # replaces the previous average
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
        average.average_checkpoints(tmp_path, last=2, bn_batches=0)


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
    loaded, _ = ck.load_model(average.average_checkpoints(tmp_path, last=2))
    assert "bfloat16" in str(loaded.weights[0].dtype)
    np.testing.assert_array_equal(np.asarray(loaded.weights[0].numpy(), np.float32), 1.5)


def _video_run(run_dir, video_data, batch_size=8):
    """make_run's checkpoints plus the run.json a trainer writes (its --train, batch size, seed)."""
    model, saved = make_run(run_dir)
    run = {"model": "video", "overrides": OVERRIDES, "level": "video",
           "train": {"train": f"{video_data}/train*.tfrecord", "batch_size": batch_size, "seed": 3, "frames": 300},
           "schedule": {}}
    (run_dir / "run.json").write_text(json.dumps(run))
    return model, saved


def test_bn_update_sets_the_batch_statistics_of_the_averaged_weights(tmp_path, video_data):
    """After averaging, each BN layer holds the mean over the batches read of the batch mean and
    (biased) variance of its input under the averaged weights: checked against a direct computation
    on the same batches, for the first BN layer (its input is Dense(L2-normalised features))."""
    import keras

    from yt8m_kit.data import dataset as data

    _video_run(tmp_path, video_data)
    plain = average.average_checkpoints(tmp_path, out=tmp_path / "plain", bn_batches=0)
    path = average.average_checkpoints(tmp_path, bn_batches=3)
    meta = json.load(open(os.path.join(path, "model.json")))
    assert meta["bn_update"]["batches"] == 3 and meta["bn_update"]["videos"] == 24
    assert meta["bn_update"]["layers"] == 1

    mean_model, _ = ck.load_model(plain)  # the averaged weights, statistics not yet recomputed
    bn = mean_model.get_layer("hidden0_bn")
    probe = keras.Model(mean_model.inputs, bn.input)
    ds = data.make_dataset(f"{video_data}/train*.tfrecord", 8, level="video", shuffle=True, seed=3, epochs=1)
    means, variances = [], []
    for i, batch in enumerate(data.iterate(ds)):
        if i == 3:
            break
        x = probe({"features": batch["features"]}).numpy().astype(np.float64)
        means.append(x.mean(axis=0))
        variances.append(x.var(axis=0))
    updated, _ = ck.load_model(path)
    got = updated.get_layer("hidden0_bn")
    np.testing.assert_allclose(got.moving_mean.numpy(), np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.moving_variance.numpy(), np.mean(variances, axis=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got.moving_mean.numpy(), bn.moving_mean.numpy(), atol=1e-3)  # it did change
    for a, b in zip(updated.trainable_weights, mean_model.trainable_weights):  # nothing else changed
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bn_update_needs_the_runs_data_or_train(tmp_path, video_data, capsys):
    make_run(tmp_path)  # no run.json: nothing says which records to use
    assert average.main([str(tmp_path), "--last", "2"]) == 2
    assert "pass --train PATTERN" in capsys.readouterr().err
    assert not (tmp_path / ck.AVERAGED).exists()
    assert average.main([str(tmp_path), "--last", "2", "--bn-batches", "2",
                         "--train", f"{video_data}/train*.tfrecord"]) == 0
    assert "recomputed on" in capsys.readouterr().out


def test_a_stale_average_is_refused_with_the_fix(tmp_path, capsys):
    model, _ = make_run(tmp_path, steps=(10, 20))
    average.average_checkpoints(tmp_path, last=2, bn_batches=0)
    assert ck.resolve_checkpoint(tmp_path) == str(tmp_path / ck.AVERAGED)
    ck.save_checkpoint(tmp_path, 30, model, {"model": "video", "overrides": OVERRIDES, "level": "video"})
    with pytest.raises(ConfigError, match=r"averages steps \[10, 20\], but the run has a newer checkpoint.*"
                                          r"ckpt-00000030.*re-average"):
        ck.resolve_checkpoint(tmp_path)
    assert ck.resolve_checkpoint(tmp_path / ck.AVERAGED) == str(tmp_path / ck.AVERAGED)  # named: used
    average.average_checkpoints(tmp_path, last=2, bn_batches=0)  # the fix
    assert ck.describe(ck.resolve_checkpoint(tmp_path)).endswith("average of steps [20, 30]; BN: --no-bn-update: "
                                                                 "the averaged moving statistics are kept)")


def test_a_checkpoint_pruned_while_it_is_read_is_chosen_again(tmp_path, monkeypatch):
    """`average` while `train --keep 2` prunes: was a FileNotFoundError traceback (1 call in 560). The trainer
    prunes the oldest kept checkpoint as it writes a new one: here, during the first read of the weights."""
    import shutil

    model, saved = make_run(tmp_path, steps=(10, 20, 30))
    real = average.average_weight_files
    calls = []

    def prune_then_read(paths, out):
        calls.append(list(paths))
        if len(calls) == 1:  # the run writes step 40 and prunes step 10 meanwhile
            ck.save_checkpoint(tmp_path, 40, model, {"model": "video", "overrides": OVERRIDES, "level": "video"})
            shutil.rmtree(tmp_path / "ckpt-00000010")
            raise FileNotFoundError(2, "No such file or directory", paths[0])
        return real(paths, out)

    monkeypatch.setattr(average, "average_weight_files", prune_then_read)
    notes = []
    out = average.average_checkpoints(str(tmp_path), last=3, bn_batches=0, log=notes.append)
    assert json.load(open(os.path.join(out, "model.json")))["averaged_steps"] == [20, 30, 40]
    assert len(calls) == 2 and any("pruned while it was read" in n for n in notes)

    def always_gone(paths, out):
        raise FileNotFoundError(2, "No such file or directory", paths[0])

    monkeypatch.setattr(average, "average_weight_files", always_gone)
    with pytest.raises(ConfigError, match="disappeared while it was read, 3 times"):
        average.average_checkpoints(str(tmp_path), last=2, bn_batches=0)
