"""Training: resume after SIGKILL equals an uninterrupted run; run.json pinning; strategies."""

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from yt8m_kit.train import averaging as average
from yt8m_kit.train import cli as train_cli
from yt8m_kit.train.config import TrainConfig
from yt8m_kit.train.trainer import train
from yt8m_kit.train import checkpoint as ck

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "gru_tiny"  # has dropout: its seed-generator state must survive the resume too
STEPS, EVERY = 12, 3


def train_cmd(frame_data, out, *extra):
    return [sys.executable, "-m", "yt8m_kit.train", "--model", MODEL,
            "--train", str(frame_data / "train*.tfrecord"), "--out", str(out), "--steps", str(STEPS),
            "--batch-size", "8", "--frames", "8", "--checkpoint-every", str(EVERY), "--keep", "10",
            "--seed", "3", "--no-progress", *extra]


def env(**extra):
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def h5_arrays(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def assert_complete(run_dir):
    """Every visible ckpt-* directory is a whole checkpoint."""
    for entry in os.listdir(run_dir):
        if entry.startswith("ckpt-"):
            have = set(os.listdir(os.path.join(run_dir, entry)))
            assert {"model.json", "model.weights.h5", "train_state"} <= have, (entry, have)
            assert set(os.listdir(os.path.join(run_dir, entry, "train_state"))) == {"state.json", "variables.npz"}


def run_in_process(cmd):
    """`python -m yt8m_kit.train ARGS` through train_cli.main(ARGS) here: the same command without
    another TensorFlow start-up (~10 s on a busy 2-core machine). Returns its result JSON."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert train_cli.main(cmd[3:]) == 0
    return json.loads(buf.getvalue().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(frame_data, tmp_path_factory):
    """An uninterrupted run, and a run SIGKILLed (a real subprocess) after its first checkpoint
    then rerun with the same command."""
    root = tmp_path_factory.mktemp("train")
    whole, killed = root / "whole", root / "killed"
    proc = subprocess.Popen(train_cmd(frame_data, killed), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if killed.is_dir():
            assert_complete(killed)
            if ck.list_checkpoints(killed):
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    assert_complete(killed)
    at_kill = [s for s, _ in ck.list_checkpoints(killed)]
    assert at_kill and at_kill[-1] < STEPS
    return {"whole": whole, "killed": killed, "at_kill": at_kill,
            "resumed_result": run_in_process(train_cmd(frame_data, killed)),
            "whole_result": run_in_process(train_cmd(frame_data, whole))}


def test_resume_after_sigkill_matches_uninterrupted_run(runs):
    resumed = runs["resumed_result"]
    assert resumed["resumed_from"] == runs["at_kill"][-1] > 0
    assert resumed["step"] == STEPS and runs["whole_result"]["step"] == STEPS
    assert [s for s, _ in ck.list_checkpoints(runs["whole"])] == list(range(EVERY, STEPS + 1, EVERY))
    assert [s for s, _ in ck.list_checkpoints(runs["killed"])] == list(range(EVERY, STEPS + 1, EVERY))
    assert not [e for e in os.listdir(runs["killed"]) if e.startswith(".tmp")]
    final = ck.checkpoint_name(STEPS)
    a = h5_arrays(runs["whole"] / final / ck.WEIGHTS)
    b = h5_arrays(runs["killed"] / final / ck.WEIGHTS)
    assert a.keys() == b.keys() and len(a) > 0
    # Same process layout, same batches, restored optimizer and RNG states: bit-identical on CPU.
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with np.load(runs["whole"] / final / "train_state/variables.npz") as x, \
            np.load(runs["killed"] / final / "train_state/variables.npz") as y:
        assert x.files == y.files
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
    # And training moved the weights: the first checkpoint differs from the last.
    early = h5_arrays(runs["whole"] / ck.checkpoint_name(EVERY) / ck.WEIGHTS)
    assert any(not np.array_equal(early[n], a[n]) for n in a)
    assert ck.fingerprint(runs["whole"] / final) == ck.fingerprint(runs["killed"] / final)
    run = json.load(open(runs["whole"] / "run.json"))
    assert run["model"] == MODEL and run["level"] == "frame" and run["train"]["batch_size"] == 8
    assert {"loss", "learning_rate", "examples_per_sec"} <= logged_tags(runs["whole"] / "logs")


def logged_tags(log_dir):
    """Tags of the TensorBoard scalars (plugin "scalars") in a log directory."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    tags = set()
    for record in tf.data.TFRecordDataset([str(p) for p in log_dir.iterdir()]):
        for value in event_pb2.Event.FromString(record.numpy()).summary.value:
            if value.metadata.plugin_data.plugin_name == "scalars":
                tags.add(value.tag)
    return tags


def test_rerun_with_other_config_is_refused(runs, frame_data, capsys):
    argv = train_cmd(frame_data, runs["whole"])[3:]
    assert train_cli.main(argv + ["--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    from yt8m_kit.models import model_info

    lr0 = model_info(MODEL)["train"].get("lr", 2e-4)  # the model's registered rate, used by default
    assert f"train.lr ({lr0} -> 0.001)" in err and "new --out" in err
    bs = argv.index("--batch-size")
    assert train_cli.main(argv[:bs + 1] + ["16"] + argv[bs + 2:] + ["--set", "units=32"]) == 2
    err = capsys.readouterr().err
    assert "train.batch_size (8 -> 16)" in err and "overrides.units" in err
    # A longer --steps is not a different run: it continues (here: from the final step).
    assert json.load(open(runs["whole"] / "run.json"))["schedule"]["steps"] == STEPS


def test_average_last_k_of_a_run(runs):
    assert average.main([str(runs["whole"]), "--last", "3"]) == 0
    steps = [STEPS - 2 * EVERY, STEPS - EVERY, STEPS]
    parts = [h5_arrays(runs["whole"] / ck.checkpoint_name(s) / ck.WEIGHTS) for s in steps]
    avg = h5_arrays(runs["whole"] / ck.AVERAGED / ck.WEIGHTS)
    for name, value in avg.items():
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(value, np.mean([p[name] for p in parts], axis=0), rtol=1e-6, atol=1e-7)
    model, meta = ck.load_model(runs["whole"])
    assert meta["averaged_steps"] == steps and meta["model"] == MODEL
    assert meta["bn_update"] == {"skipped": "the model has no batch norm"}  # gru_tiny: nothing to recompute
    x = {"frames": np.zeros((2, 5, 1152), np.float32), "num_frames": np.array([5, 3], np.int32)}
    assert model(x, training=False).shape == (2, 3862)


def test_refusals_before_any_training(frame_data, video_data, tmp_path, capsys):
    base = ["--train", str(frame_data / "train*.tfrecord"), "--steps", "2", "--no-progress"]
    assert train_cli.main(["--model", MODEL, "--out", str(tmp_path / "a"), "--precision", "bfloat16"] + base) == 2
    assert "beta_2" in capsys.readouterr().err
    assert train_cli.main(["--model", MODEL, "--out", str(tmp_path / "b"), "--set", "dtype=bfloat16"] + base) == 2
    assert "mixed_bfloat16" in capsys.readouterr().err
    assert train_cli.main(["--model", "video_logistic", "--out", str(tmp_path / "c")] + base) == 2
    assert "video level" in capsys.readouterr().err
    assert train_cli.main(["--model", MODEL, "--out", str(tmp_path / "d"), "--strategy", "multi_worker"] + base) == 2
    assert "TF_CONFIG" in capsys.readouterr().err
    assert train_cli.main(["--model", MODEL, "--out", str(tmp_path / "e"), "--set", "bogus=3"] + base) == 2
    assert "unknown override(s) ['bogus']" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/ckpt-*")) and not list(tmp_path.glob("*/run.json"))


def test_mirrored_strategy_mixed_bfloat16_epochs(frame_data, tmp_path):
    config = TrainConfig(model="soft_bof_4k_tiny", train=str(frame_data / "train*.tfrecord"),
                               out=str(tmp_path / "run"), epochs=0.2, batch_size=8, frames=8,
                               checkpoint_every=2, strategy="mirrored", precision="mixed_bfloat16",
                               valid=str(frame_data / "validate*.tfrecord"), progress=False)
    result = train(config)
    assert result.step == 3  # ceil(0.2 * 120 videos / 8)
    assert np.isfinite(result.loss) and 0.0 <= result.valid["gap"] <= 1.0
    assert [s for s, _ in ck.list_checkpoints(tmp_path / "run")] == [2, 3]
    assert {"loss", "valid/gap"} <= logged_tags(tmp_path / "run" / "logs")
    model, meta = ck.load_model(tmp_path / "run")
    assert meta["overrides"]["dtype"] == "mixed_bfloat16" and meta["step"] == 3
    first = h5_arrays(tmp_path / "run" / "ckpt-00000002" / ck.WEIGHTS)
    last = h5_arrays(tmp_path / "run" / "ckpt-00000003" / ck.WEIGHTS)
    assert any(not np.array_equal(first[n], last[n]) for n in first)


def test_video_level_model_on_video_data_with_xla(video_data, tmp_path):
    result = train(TrainConfig(
        model="video_moe", overrides={"num_experts": 1}, train=str(video_data / "train*.tfrecord"),
        valid=str(video_data / "validate*.tfrecord"), out=str(tmp_path / "v"), steps=3, batch_size=16,
        checkpoint_every=3, xla=True, progress=False))
    assert result.step == 3 and result.valid["videos"] == 120 and np.isfinite(result.loss)
    assert json.load(open(tmp_path / "v" / "run.json"))["level"] == "video"
    model, meta = ck.load_model(tmp_path / "v")
    assert meta["overrides"] == {"num_experts": 1} and model.name == "video_moe"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_two_local_workers(frame_data, tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    out = tmp_path / "mw"
    cmd = [sys.executable, "-m", "yt8m_kit.train", "--model", "soft_bof_4k_tiny", "--train",
           str(frame_data / "train*.tfrecord"), "--out", str(out), "--steps", "4", "--batch-size", "8",
           "--frames", "8", "--checkpoint-every", "2", "--strategy", "multi_worker", "--no-progress"]
    procs = [subprocess.Popen(cmd, env=env(TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    results = [json.loads(stdout.splitlines()[-1]) for stdout, _ in outs]
    assert all(r["step"] == 4 for r in results)
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)  # the loss is all-reduced
    assert [s for s, _ in ck.list_checkpoints(out)] == [2, 4]  # written by the chief only
    model, _ = ck.load_model(out)
    assert model.name == "soft_bof_4k_tiny"


def test_start_prints_every_setting_and_its_source(tmp_path, monkeypatch, capsys):
    """`--model video` trains with its registered batch 256, lr 1e-3 ...: the run says so at start, with
    the source of each setting, and --help says registered models carry their own."""
    from yt8m_kit.train import trainer
    from yt8m_kit.train.config import TrainResult

    seen = {}

    def fake_train(config):
        seen["config"] = config
        return TrainResult(run_dir=config.out, step=0, checkpoint="", resumed_from=0, loss=None,
                                   valid=None, steps_per_sec=0.0, examples_per_sec=0.0)

    monkeypatch.setattr(trainer, "train", fake_train)
    assert train_cli.main(["--model", "video", "--train", "x.tfrecord", "--out", str(tmp_path / "r"),
                           "--lr", "0.002"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("settings: "))
    assert "batch_size 256 (registered for video)" in line and "epochs 12 (registered for video)" in line
    assert "lr 0.002 (command line)" in line and "xla off (default)" in line
    assert seen["config"].batch_size == 256 and seen["config"].lr == 0.002
    assert train_cli.main(["--model", "lfnl_netvlad_tiny", "--train", "x",
                           "--out", str(tmp_path / "s"), "--steps", "5"]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("settings: "))
    assert "steps 5 (command line)" in line and "clip_norm 1.0 (" in line
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a registered model may carry its own" in text and "--configs" in text


def test_tensorboard_reads_the_runs_losses_and_validation_gap(video_data, tmp_path):
    """RUN_DIR/logs holds the training loss and, with --valid, the validation GAP at each validation; the
    pinned tensorboard package reads them (README: tensorboard --logdir RUN_DIR/logs)."""
    import numpy as np
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_in_process(["python", "-m", "yt8m_kit.train", "--model", "video_logistic",
                    "--train", str(video_data / "train*.tfrecord"), "--valid", str(video_data / "validate*.tfrecord"),
                    "--out", str(out), "--steps", "4", "--batch-size", "8", "--checkpoint-every", "2", "--no-progress"])
    events = EventAccumulator(str(out / "logs"), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    assert "loss" in tags and "valid/gap" in tags, tags
    gaps = {e.step: float(np.asarray(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors("valid/gap")}
    assert sorted(gaps) == [2, 4] and all(0 <= g <= 1 for g in gaps.values())


def test_a_run_json_from_before_newer_settings_still_resumes():
    """run.json written before --ema/--teacher existed lacks them: the run was trained as their defaults do,
    so resuming it with the defaults is the same run, and asking for EMA is not."""
    from yt8m_kit.train.config import run_differences

    old = {"model": "video", "level": "video", "overrides": {}, "train": {"lr": 0.001, "batch_size": 256}}
    new = {"model": "video", "level": "video", "overrides": {},
           "train": {"lr": 0.001, "batch_size": 256, "ema": None, "teacher": None, "distill_lambda": 0.5}}
    assert run_differences(old, new) == []
    changed = dict(new, train=dict(new["train"], ema=0.999))
    assert run_differences(old, changed) == ["train.ema (None -> 0.999)"]


def test_mix_nextvlad_beats_its_own_branches(tmp_path):
    """Lin et al.'s on-the-fly distillation mixture, trained by `train` (which adds the model's branch BCEs
    and KL terms to the mixture's BCE: the loss it reports is the sum), scores at least its best branch's
    validation GAP (within 2 paired bootstrap standard errors) and more than each other branch by more than
    2 SE. Generated data (800 videos a split, 50 classes), 600 steps at the tiny models' rate.

    Measured 2026-12-07, since the scales fix (input_bn, a gate_bn no longer swamped by its epsilon): the
    gate learns, and by step 600 routes most videos to the best branch: mixture 0.6768 against branches
    0.6781 / 0.6214 / 0.6114 (seed 0), 0.6513 against 0.6513 / 0.6419 / 0.6279 (seed 1). Before it, the gate's
    input had a std of ~0.1, its logits barely moved, and the mixture was the plain mean of the branches,
    ahead of each by 0.011-0.067. The authors' gate is the same (BN of the mean frame -> dense, variance-
    scaling init -> softmax; linrongc/youtube-8m nextvlad.py)."""
    import keras
    import tensorflow as tf

    from yt8m_kit.data import synth
    from yt8m_kit.evaluate import bootstrap
    from yt8m_kit.evaluate.metrics import gap
    from yt8m_kit.evaluate.predict_loop import predict_batches
    from yt8m_kit.train.loop import cross_entropy

    data = tmp_path / "data"
    synth.generate(str(data), "frame", 800, seed=0, shards=2, classes=50, vocabulary=None, max_frames=40)
    out = tmp_path / "mix"
    result = run_in_process(["python", "-m", "yt8m_kit.train", "--model", "mix_nextvlad_tiny",
                             "--train", str(data / "train*.tfrecord"), "--out", str(out), "--steps", "600",
                             "--batch-size", "16", "--frames", "16", "--checkpoint-every", "600", "--no-progress"])
    model, _ = ck.load_model(str(out))
    valid = str(data / "validate*.tfrecord")

    def scores_of(m):
        parts = list(predict_batches(m, valid, num_samples=16))
        return np.concatenate([p for _, p, _ in parts]), np.concatenate([y for _, _, y in parts])

    scores, labels = scores_of(model)
    mixture_bce = float(np.mean(cross_entropy(tf.constant(labels), tf.constant(scores)).numpy()))
    assert result["loss"] > 2 * mixture_bce  # the reported loss holds the three branch BCEs too
    branches = [scores_of(keras.Model(model.inputs, keras.layers.Activation("sigmoid", dtype="float32")(
        model.get_layer(f"branch{b}_logits").output)))[0] for b in range(3)]
    n, c = labels.shape
    keys = np.flatnonzero(labels.ravel() > 0).astype(np.int64)
    rankings = [bootstrap.Ranking.of_scores(s, keys) for s in [scores, *branches]]
    draws = bootstrap.resample_gaps(rankings, bootstrap.positives_per_video(keys, n, c), resamples=200)
    mixture_gap = gap(scores, labels)
    best = int(np.argmax([gap(branch, labels) for branch in branches]))
    for b, branch in enumerate(branches):
        margin, se = mixture_gap - gap(branch, labels), bootstrap.standard_error(draws[:, 0] - draws[:, b + 1])
        assert gap(branch, labels) > 0.3, b  # every branch learned
        assert margin > (-2 * se if b == best else 2 * se), (b, best, mixture_gap, margin, se)
