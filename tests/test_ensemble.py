"""The one-graph ensemble: int8 storage, members at their precisions, save/load, bytes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from yt8m_kit.ensemble import artifact as E
from yt8m_kit.layers import MaskedMeanFrames
from yt8m_kit.ensemble import precision as Q
from yt8m_kit.models import create_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stated tolerances on probabilities vs the float32 members (tiny random models).
BF16_TOL, INT8_TOL = 2e-2, 5e-3


def test_int8_roundtrip_error_and_bytes():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((300, 40)).astype(np.float32) * np.linspace(0.01, 3, 40, dtype=np.float32)
    q, scale = Q.quantize_int8(w)
    assert q.dtype == np.int8 and scale.shape == (40,)
    err = np.abs(Q.dequantize_int8(q, scale) - w)
    assert np.all(err <= scale / 2 + 1e-7)  # per output channel: half a step at most
    arrays = Q.storage_arrays(w, "int8")
    assert set(arrays) == {"int8", "scale"}
    small = np.ones(10, np.float32)
    assert Q.storage_arrays(small, "int8") == {"": small} or "int8" not in Q.storage_arrays(small, "int8")
    assert Q.storage_bytes([w, small], "int8") == w.size + 40 * 4 + small.nbytes
    assert Q.storage_bytes([w, small], "float32") == w.nbytes + small.nbytes


def test_keras_quantize_misses_our_custom_layers():
    """Why ensemble/precision.py has its own int8: Keras' int8 only converts exact Dense layers."""
    m = create_model("lfnl_netvlad_tiny")
    fp32 = sum(v.numpy().nbytes for v in m.variables)
    ours = Q.storage_bytes([v.numpy() for v in m.variables], "int8")
    with pytest.warns(UserWarning):
        m.quantize("int8")
    keras_bytes = sum(v.numpy().nbytes for v in m.variables)
    assert keras_bytes > 0.75 * fp32  # the MoE and NetVLAD weights stay float32
    assert ours < 0.35 * fp32


@pytest.fixture(scope="module")
def members():
    keras.utils.set_random_seed(0)
    return {name: create_model(name) for name in ("lfnl_netvlad_tiny", "soft_bof_4k_tiny", "video_logistic")}


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((6, 12, 1152)).astype(np.float32)
    num_frames = np.array([12, 1, 5, 7, 12, 3], np.int32)
    frames[np.arange(12)[None, :] >= num_frames[:, None]] = 0
    return {"frames": frames, "num_frames": num_frames}


SPECS = [{"model": "lfnl_netvlad_tiny", "precision": "int8", "run": "a"},
         {"model": "soft_bof_4k_tiny", "precision": "bfloat16", "run": "b"},
         {"model": "video_logistic", "precision": "float32", "run": "c"}]


def member_prediction(model, batch, precision):
    cast = E.cast_weights(model, E.build_member(model.name, {}, precision), precision)
    x = batch if "frames" in cast.input else {
        "features": MaskedMeanFrames()([batch["frames"], batch["num_frames"]]).numpy()}
    return cast.predict(x, verbose=0)


def test_ensemble_is_the_mean_of_its_members_and_loads_in_a_new_process(members, batch, tmp_path):
    ens = E.build_ensemble(SPECS, [members[s["model"]] for s in SPECS])
    assert set(ens.input) == {"frames", "num_frames"}
    out = ens.predict(batch, verbose=0)
    per_member = [member_prediction(members[s["model"]], batch, s["precision"]) for s in SPECS]
    np.testing.assert_allclose(out, np.mean(per_member, axis=0), atol=1e-6)
    fp32 = [member_prediction(members[s["model"]], batch, "float32") for s in SPECS]
    assert np.abs(per_member[0] - fp32[0]).max() < INT8_TOL
    assert np.abs(per_member[1] - fp32[1]).max() < BF16_TOL
    assert np.abs(per_member[0] - fp32[0]).max() > 0  # int8 really changed the weights

    path = tmp_path / "ensemble.keras"
    size = E.save_ensemble(ens, path)
    stored = sum(layer.stored_bytes() for layer in E.ensemble_members(ens))
    assert stored <= size <= stored + 64 * 1024  # the file is the stored arrays plus headers
    np.savez(tmp_path / "batch.npz", **batch)
    code = ("import sys, numpy as np; from yt8m_kit.ensemble.artifact import load_ensemble; "
            "m = load_ensemble(sys.argv[1]); b = dict(np.load(sys.argv[2])); "
            "np.save(sys.argv[3], m.predict(b, verbose=0)); "
            "print(*[l.precision for l in __import__('yt8m_kit.ensemble.artifact').ensemble.artifact.ensemble_members(m)])")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "batch.npz"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["int8", "bfloat16", "float32"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), out, atol=1e-6)


def test_bytes_per_precision_and_video_only_ensemble(members, tmp_path):
    model = members["video_logistic"]
    sizes, written = {}, {}
    for p in Q.PRECISIONS:
        ens = E.build_ensemble([{"model": "video_logistic", "precision": p}], [model])
        assert set(ens.input) == {"features"}
        sizes[p] = E.ensemble_members(ens)[0].stored_bytes()
        written[p] = E.save_ensemble(ens, tmp_path / f"{p}.keras")
        assert sizes[p] <= written[p] == os.path.getsize(tmp_path / f"{p}.keras") <= sizes[p] + 64 * 1024
    with pytest.raises(E.OverBudget):  # the int8 file is over this limit: nothing is replaced
        E.save_ensemble(ens, tmp_path / "float32.keras", max_bytes=written["int8"] - 1)
    assert os.path.getsize(tmp_path / "float32.keras") == written["float32"]
    assert sorted(os.listdir(tmp_path)) == ["bfloat16.keras", "float32.keras", "int8.keras"]
    params = model.count_params()
    assert sizes["float32"] == 4 * params
    assert sizes["bfloat16"] == 2 * params
    assert sizes["int8"] == 3862 * 1152 + 3862 * 4 + 3862 * 4  # kernel int8 + scales + float32 bias


def test_load_errors_are_clear(tmp_path):
    from yt8m_kit.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        E.load_ensemble(tmp_path / "missing.keras")
    with pytest.raises(ConfigError, match="precision"):
        E.build_ensemble([{"model": "video_logistic", "precision": "int4"}])


def test_member_bytes_are_the_bytes_written(tmp_path):
    """plan.json's member bytes must be what the file holds: compare with the h5 inside the .keras."""
    import zipfile

    import h5py

    from yt8m_kit.ensemble import artifact as E

    bias = np.linspace(-1, 1, 7724).astype(np.float32)  # a 1-D tensor big enough for int8 by size
    assert Q.storage_bytes([bias], "int8") == bias.nbytes  # 1-D tensors stay float32 under int8
    specs = [{"model": "lfnl_netrvlad_tiny", "overrides": {}, "precision": "int8", "run": "a"},
             {"model": "gru_tiny", "overrides": {}, "precision": "bfloat16", "run": "b"}]
    model = E.build_ensemble(specs)
    path = tmp_path / "ensemble.keras"
    E.save_ensemble(model, str(path))
    with zipfile.ZipFile(path) as z:
        z.extract("model.weights.h5", tmp_path)
    written = {}
    with h5py.File(tmp_path / "model.weights.h5", "r") as f:
        def add(name, obj):
            if isinstance(obj, h5py.Dataset):
                top = name.split("/")[1]
                written[top] = written.get(top, 0) + obj.size * obj.dtype.itemsize
        f.visititems(add)
    members = E.ensemble_members(model)
    assert sorted(written.values()) == sorted(m.stored_bytes() for m in members)


def test_weighted_ensemble_is_the_weighted_mean_and_survives_save_and_load(members, batch, tmp_path):
    weights = [3.0, 1.0, 0.5]
    ens = E.build_ensemble(SPECS, [members[s["model"]] for s in SPECS], weights=weights)
    out = ens.predict(batch, verbose=0)
    per_member = [member_prediction(members[s["model"]], batch, s["precision"]) for s in SPECS]
    expected = sum(w * p for w, p in zip(weights, per_member)) / sum(weights)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert np.abs(out - np.mean(per_member, axis=0)).max() > 1e-4  # not the plain mean
    E.save_ensemble(ens, tmp_path / "w.keras")
    np.testing.assert_allclose(E.load_ensemble(tmp_path / "w.keras").predict(batch, verbose=0), out, atol=1e-6)
    with pytest.raises(E.ConfigError):
        E.build_ensemble(SPECS, [members[s["model"]] for s in SPECS], weights=[1.0, 0.0, 1.0])
