"""Checkpoints (save/list/resolve/load/fingerprint, atomicity) and prediction h5 files."""

import json
import os
import shutil

import numpy as np
import pytest

from yt8m_kit import NUM_CLASSES
from yt8m_kit.train import checkpoint as ck
from yt8m_kit.train.train_state import restore_train_state
from yt8m_kit.errors import ConfigError, DataError
from yt8m_kit.evaluate.prediction_files import PredictionWriter, load_predictions, read_attrs, save_predictions

# A small video-level model with batch norm (non-trainable weights) and dropout (a seed
# generator, a variable that save_weights skips).
OVERRIDES = {"hidden": [16], "experts": 1, "dropout": 0.5}


def small_model(seed=0, **extra):
    import keras

    from yt8m_kit.models import create_model

    keras.utils.set_random_seed(seed)
    return create_model("video", **{**OVERRIDES, **extra})


def meta(**extra):
    return {"model": "video", "overrides": {**OVERRIDES, **extra}, "level": "video"}


def features(n=4, seed=1):
    return {"features": np.random.default_rng(seed).normal(size=(n, 1152)).astype(np.float32)}


def all_weights(model):
    return [np.asarray(w.numpy(), np.float32) for w in model.weights]


def test_save_load_roundtrip_needs_only_the_checkpoint(tmp_path):
    model = small_model()
    path = ck.save_checkpoint(tmp_path, 7, model, meta())
    assert os.path.basename(path) == "ckpt-00000007"
    assert sorted(os.listdir(path)) == ["model.json", "model.weights.h5"]
    loaded, m = ck.load_model(tmp_path)
    assert m["step"] == 7 and m["model"] == "video" and m["path"] == path
    for a, b in zip(all_weights(model), all_weights(loaded)):
        np.testing.assert_array_equal(a, b)
    x = features()
    np.testing.assert_array_equal(model(x, training=False).numpy(), loaded(x, training=False).numpy())
    # Another precision on load: bfloat16 weights, close outputs.
    bf, _ = ck.load_model(path, dtype="bfloat16")
    assert "bfloat16" in str(bf.weights[0].dtype)
    np.testing.assert_allclose(bf(x, training=False).numpy(), model(x, training=False).numpy(), atol=0.05)


def test_keep_last_k_and_resolve(tmp_path):
    model = small_model()
    with pytest.raises(ConfigError, match="no checkpoint"):
        ck.resolve_checkpoint(tmp_path)
    for step in (10, 20, 30, 40, 50):
        ck.save_checkpoint(tmp_path, step, model, meta(), keep=3)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [30, 40, 50]
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000030", "ckpt-00000040", "ckpt-00000050"]
    assert ck.resolve_checkpoint(tmp_path) == str(tmp_path / "ckpt-00000050")
    ck.save_checkpoint(tmp_path, 0, model, meta(), name=ck.AVERAGED)
    assert ck.resolve_checkpoint(tmp_path) == str(tmp_path / ck.AVERAGED)
    assert ck.resolve_checkpoint(tmp_path / "ckpt-00000040") == str(tmp_path / "ckpt-00000040")
    # A directory without model.json (e.g. a copy cut short) is not a checkpoint.
    os.makedirs(tmp_path / "ckpt-00000099")
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [30, 40, 50]


def test_failed_save_leaves_nothing_visible(tmp_path, monkeypatch):
    model = small_model()
    ck.save_checkpoint(tmp_path, 1, model, meta())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(tmp_path, 2, model, meta())
    assert os.listdir(tmp_path) == ["ckpt-00000001"]  # no ckpt-2, no temporary left behind


def test_mismatched_model_is_refused_naming_the_difference(tmp_path):
    ck.save_checkpoint(tmp_path, 1, small_model(), meta())
    with pytest.raises(ConfigError, match=r"overrides\.hidden \(\[16\] vs \[32\]\)"):
        ck.load_model(tmp_path, expect={"model": "video", "overrides": {**OVERRIDES, "hidden": [32]}})
    with pytest.raises(ConfigError, match=r"model \('video' vs 'video_moe'\)"):
        ck.check_meta(ck.read_meta(tmp_path), {"model": "video_moe", "overrides": OVERRIDES}, "x")
    # Tuples and lists are the same override once written as JSON; dtype is precision, not architecture.
    ck.check_meta(ck.read_meta(tmp_path), {"model": "video", "overrides": {**OVERRIDES, "hidden": (16,),
                                                                            "dtype": "mixed_bfloat16"}}, "x")
    # Weights of another architecture under a lying model.json: a ConfigError, not a traceback.
    other = tmp_path / "other"
    ck.save_checkpoint(other, 1, small_model(hidden=[8]), meta())
    with pytest.raises(ConfigError, match="cannot load"):
        ck.load_model(other)


def test_fingerprint_is_the_weights_content(tmp_path):
    model = small_model()
    a = ck.save_checkpoint(tmp_path / "run", 5, model, meta())
    b = str(tmp_path / "copy" / "ckpt-00000123")
    shutil.copytree(a, b)
    meta_b = json.load(open(os.path.join(b, "model.json")))
    meta_b["step"] = 123
    json.dump(meta_b, open(os.path.join(b, "model.json"), "w"))
    assert ck.fingerprint(a) == ck.fingerprint(b) == ck.fingerprint(tmp_path / "run")
    model.weights[0].assign(model.weights[0].numpy() + 1e-3)
    c = ck.save_checkpoint(tmp_path / "run", 6, model, meta())
    assert ck.fingerprint(c) != ck.fingerprint(a)


@pytest.mark.parametrize("damage", ["truncated npz", "deleted npz", "bit-flipped npz", "deleted state.json",
                                    "state.json without variables"])
def test_a_damaged_training_state_is_named_with_how_to_go_on(tmp_path, damage):
    """Was a zipfile.BadZipFile / FileNotFoundError traceback, or, with state.json deleted as advised, only
    'does not exist'."""
    import keras

    model = small_model()
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    path = ck.save_checkpoint(tmp_path, 3, model, meta(), optimizer=opt, state={})
    npz, js = os.path.join(path, "train_state", "variables.npz"), os.path.join(path, "train_state", "state.json")
    blob = open(npz, "rb").read()
    if damage == "truncated npz":
        open(npz, "wb").write(blob[: len(blob) // 2])
    elif damage == "deleted npz":
        os.unlink(npz)
    elif damage == "bit-flipped npz":
        flipped = bytearray(blob)
        for k in range(64, len(flipped) - 64, 97):
            flipped[k] ^= 0xFF
        open(npz, "wb").write(bytes(flipped))
    elif damage == "deleted state.json":
        os.unlink(js)
    else:
        json.dump({"step": 3}, open(js, "w"))
    with pytest.raises(ConfigError) as e:
        restore_train_state(path, model, opt)
    text = str(e.value)
    bad = js if "state.json" in damage else npz
    assert text.startswith(f"checkpoint {path} cannot be resumed: its training state {bad} is missing or unreadable")
    assert f"delete {path} and rerun, which resumes from the checkpoint before it" in text


def test_train_state_roundtrip(tmp_path):
    import keras

    model = small_model()
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    grads = [np.full(v.shape, 0.1, np.float32) for v in model.trainable_variables]
    opt.apply(grads, model.trainable_variables)
    model(features(), training=True)  # advances the dropout seed generator
    path = ck.save_checkpoint(tmp_path, 3, model, meta(), optimizer=opt, state={"examples_seen": 96})

    fresh = small_model(seed=5)
    opt2 = keras.optimizers.Adam(1e-3)
    opt2.build(fresh.trainable_variables)
    ck.load_weights_into(fresh, path)
    state = restore_train_state(path, fresh, opt2)
    assert state["step"] == 3 and state["examples_seen"] == 96
    assert int(opt2.iterations.numpy()) == 1
    for a, b in zip(opt.variables, opt2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.variables, fresh.variables):  # seed-generator states too
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = features()
    np.testing.assert_array_equal(model(x, training=True).numpy(), fresh(x, training=True).numpy())


def test_predictions_roundtrip_streaming_and_csr(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["aB3x", "ü-é", "zz"]
    scores = rng.random((3, NUM_CLASSES), dtype=np.float32)
    multihot = np.zeros((3, NUM_CLASSES), np.float32)
    multihot[0, [1, 5]] = 1
    multihot[2, 3861] = 1
    attrs = {"checkpoint": "runs/a/ckpt-00000010", "checkpoint_fingerprint": "abc", "data": "v*.tfrecord",
             "repeats": 10, "seed": 0, "precision": "bfloat16"}
    path = save_predictions(tmp_path / "p.h5", np.array(ids), scores, multihot, attrs)
    got = load_predictions(path)
    assert got["ids"] == ids
    np.testing.assert_array_equal(got["scores"], scores)
    assert [list(r) for r in got["labels"]] == [[1, 5], [], [3861]]
    assert {k: got["attrs"][k] for k in attrs} == attrs
    assert read_attrs(path)["repeats"] == 10

    # Streaming in several batches (labels as lists) gives the same file content.
    with PredictionWriter(tmp_path / "s.h5", attrs) as w:
        w.add(ids[:2], scores[:2], [[1, 5], []])
        w.add([b"zz"], scores[2:], [[3861]])
    got2 = load_predictions(tmp_path / "s.h5")
    assert got2["ids"] == ids and [list(r) for r in got2["labels"]] == [[1, 5], [], [3861]]
    np.testing.assert_array_equal(got2["scores"], scores)

    # Unlabelled data: no CSR; a failure mid-way leaves no file.
    save_predictions(tmp_path / "u.h5", ids, scores)
    assert load_predictions(tmp_path / "u.h5")["labels"] is None
    with pytest.raises(ValueError, match="scores shape"):
        with PredictionWriter(tmp_path / "bad.h5") as w:
            w.add(ids, scores[:, :10])
    assert not os.path.exists(tmp_path / "bad.h5")
    assert sorted(os.listdir(tmp_path)) == ["p.h5", "s.h5", "u.h5"]
    (tmp_path / "junk.h5").write_text("not h5")
    with pytest.raises(DataError, match="junk.h5"):
        load_predictions(tmp_path / "junk.h5")


def test_checkpoint_written_before_frame_l2_predicts_as_trained(tmp_path):
    """model.json of a checkpoint written before the frame_l2 field existed has no such key: it loads
    without the normalisation it was trained without, and predicts exactly as saved. New records
    state the field explicitly."""
    import keras

    from yt8m_kit.models import create_model, explicit_overrides
    from yt8m_kit.train.config import TrainConfig, model_overrides

    from yt8m_kit.models.configs import LEGACY_VALUES

    keras.utils.set_random_seed(1)
    versioned = explicit_overrides("soft_bof_4k_tiny", {})  # every field added after checkpoints were first written
    assert {"frame_l2", "input_bn", "cluster_bn", "pooling", "debiased_bn", "hidden_init"} <= set(versioned)
    legacy = {k: LEGACY_VALUES[k] for k in versioned}
    old = create_model("soft_bof_4k_tiny", **legacy)  # what that checkpoint was: before every one of them
    path = ck.save_checkpoint(tmp_path / "old", 5, old, {"model": "soft_bof_4k_tiny", "overrides": {"frame_l2": False},
                                                         "level": "frame"})
    meta_path = os.path.join(path, ck.MODEL_JSON)
    written = json.load(open(meta_path))
    # stated, as every record written now: the given value, and the current default of each other field
    assert written["overrides"] == dict(versioned, frame_l2=False)
    json.dump(dict(written, overrides={}), open(meta_path, "w"))  # as the code before the fields wrote it
    rng = np.random.default_rng(0)
    x = {"frames": rng.normal(size=(3, 7, 1152)).astype(np.float32) * 3, "num_frames": np.array([7, 4, 1], np.int32)}
    loaded, meta = ck.load_model(tmp_path / "old")
    assert meta["overrides"] == legacy and "frame_l2" not in [layer.name for layer in loaded.layers]
    np.testing.assert_allclose(loaded(x, training=False), old(x, training=False), rtol=1e-6, atol=1e-7)

    assert explicit_overrides("soft_bof_4k_tiny", {})["frame_l2"] is True  # the paper's models normalise
    assert explicit_overrides("video", {}) == {}  # video-level models have no such field
    cfg = TrainConfig(model="gru_tiny", train="x", out="y", steps=1)
    assert model_overrides(cfg) == {"frame_l2": True, "input_bn": False, "debiased_bn": True}  # run.json carries them
    new = create_model("soft_bof_4k_tiny")
    ck.save_checkpoint(tmp_path / "new", 5, new, {"model": "soft_bof_4k_tiny", "overrides": model_overrides(
        TrainConfig(model="soft_bof_4k_tiny", train="x", out="y", steps=1)), "level": "frame"})
    loaded, meta = ck.load_model(tmp_path / "new")
    assert meta["overrides"]["frame_l2"] is True and "frame_l2" in [layer.name for layer in loaded.layers]
    np.testing.assert_allclose(loaded(x, training=False), new(x, training=False), rtol=1e-6, atol=1e-7)


def test_ensemble_member_saved_before_frame_l2_is_rebuilt_without_it():
    from yt8m_kit.ensemble.artifact import EnsembleMember

    member = EnsembleMember("gru_tiny", {})  # built now: the current defaults, stated
    assert member.get_config()["overrides"] == {"frame_l2": True, "input_bn": False, "debiased_bn": True}
    old = EnsembleMember.from_config(dict(member.get_config(), overrides={}))  # an artifact from before
    assert old.overrides == {"frame_l2": False, "input_bn": False, "debiased_bn": False}
    assert "frame_l2" not in [layer.name for layer in old.member().layers]


def test_nextvlad_checkpoint_from_before_gating_bn_predicts_as_trained(tmp_path):
    """NeXtVLAD's SE squeeze gained the authors' BN (no biases): a record that lacks `gating_bn` was built
    with Dense + bias -> ReLU and loads as such; new records state the field, and build the BN."""
    import keras

    from yt8m_kit.models import create_model, explicit_overrides

    assert explicit_overrides("nextvlad_tiny", {}) == {"frame_l2": True, "gating_bn": True, "input_bn": True,
                                                       "debiased_bn": True, "cluster_bn": True}
    assert "gating_bn" not in explicit_overrides("soft_bof_4k_tiny", {})  # only models that have the field
    keras.utils.set_random_seed(2)
    old = create_model("nextvlad_tiny", gating_bn=False, input_bn=False, debiased_bn=False, cluster_bn=False)
    assert "gating_bn" not in [layer.name for layer in old.layers] and old.get_layer("gating_excite").use_bias
    path = ck.save_checkpoint(tmp_path / "old", 5, old, {"model": "nextvlad_tiny", "level": "frame",
                                                         "overrides": {"frame_l2": True, "gating_bn": False}})
    meta_path = os.path.join(path, ck.MODEL_JSON)
    written = json.load(open(meta_path))
    # as the code of 2026-12-06 wrote it: frame_l2 stated, the later fields not (built then: their legacy values)
    json.dump(dict(written, overrides={"frame_l2": True}), open(meta_path, "w"))
    rng = np.random.default_rng(0)
    x = {"frames": rng.normal(size=(3, 7, 1152)).astype(np.float32), "num_frames": np.array([7, 4, 1], np.int32)}
    loaded, meta = ck.load_model(tmp_path / "old")
    assert meta["overrides"]["gating_bn"] is False
    np.testing.assert_allclose(loaded(x, training=False), old(x, training=False), rtol=1e-6, atol=1e-7)
    new = create_model("mix_nextvlad_tiny")
    names = [layer.name for layer in new.layers]
    assert all(f"branch{b}_gating_bn" in names for b in range(3))
    assert not new.get_layer("branch0_gating_squeeze").use_bias and not new.get_layer("branch0_gating_excite").use_bias


def test_a_checkpoint_removed_while_loading_is_not_called_incomplete(tmp_path):
    """A run that prunes (--keep) removes whole checkpoint directories: was 'it is incomplete; delete it'."""
    model = small_model()
    path = ck.save_checkpoint(tmp_path, 3, model, meta())
    shutil.rmtree(path)
    with pytest.raises(ConfigError, match="was removed while it was being loaded") as e:
        ck.load_weights_into(model, path)
    assert "incomplete" not in str(e.value)
    os.makedirs(path)  # a directory without weights: that one is incomplete
    with pytest.raises(ConfigError, match="it is incomplete; delete it"):
        ck.load_weights_into(model, path)
