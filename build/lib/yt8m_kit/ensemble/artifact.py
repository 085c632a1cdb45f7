"""The one-graph ensemble: shared inputs -> every member (at its own precision) -> plain mean.

    model = build_ensemble([member_spec, ...], [loaded keras models])
    save_ensemble(model, "submission/ensemble.keras")
    model = load_ensemble("submission/ensemble.keras")   # needs nothing else, any process

Inputs: {"frames", "num_frames"} when any member is frame level (a video-level member then
gets the masked mean of the real frames as its "features"); {"features"} when all are video
level. Output: (B, 3862) float32, the mean of the members' probabilities.

Each member sits in an `EnsembleMember` layer that writes its member's variables itself, at
the member's storage precision: float32 (4 bytes/weight), bfloat16 (the member is built with
dtype "bfloat16", 2 bytes/weight) or int8 (yt8m_kit.ensemble.precision: weight-only, per output
channel; the member runs in float32 on the dequantised weights). Keras must not also save
the member's variables at full width, so the member model is held outside Keras' attribute
tracking (`_Hidden`); `EnsembleMember.member()` gives it back, and its `weights` are the member's, so
`count_params()`, `summary()` and `weights` of the ensemble count every member. The member is rebuilt at load
from its registered name and overrides (README "Models" contract), so the .keras file holds
one small config per member plus its weights.
"""

import os

import keras
import numpy as np
from keras import ops

from yt8m_kit.ensemble import precision as storage
from yt8m_kit.errors import ConfigError
from yt8m_kit.fileio import atomic_path
from yt8m_kit.layers import MaskedMeanFrames
from yt8m_kit.evaluate.predict_loop import model_level



class _Hidden:
    """Holds a value where Keras' saving walk (which follows layers, variables and
    lists/dicts/tuples among attributes) does not look."""

    def __init__(self, value):
        self.value = value


def build_member(model_name, overrides, precision):
    """A fresh registered model at the compute dtype of `precision`."""
    from yt8m_kit.models import create_model

    overrides = {k: v for k, v in dict(overrides or {}).items() if k != "dtype"}
    return create_model(model_name, dtype=storage.compute_dtype(precision), **overrides)


def cast_weights(source, target, precision):
    """Copy source's variables into target (same architecture), as `precision` stores them:
    cast to target's dtype; int8 members get the quantise-dequantise round trip."""
    src, dst = source.variables, target.variables
    if len(src) != len(dst):
        raise ConfigError(f"cannot copy weights of {source.name} ({len(src)} variables) into "
                          f"{target.name} ({len(dst)} variables): different architectures")
    for s, d in zip(src, dst):
        value = np.asarray(s.numpy())
        if tuple(value.shape) != tuple(d.shape):
            raise ConfigError(f"variable {s.path} has shape {value.shape}, {d.path} has {tuple(d.shape)}")
        if precision == "int8" and storage.should_quantize(value):
            value = storage.roundtrip_int8(value)
        d.assign(ops.cast(value, d.dtype))
    return target


@keras.saving.register_keras_serializable(package="yt8m_kit")
class EnsembleMember(keras.layers.Layer):
    """One registered model inside the ensemble graph, stored at `precision`."""

    def __init__(self, model_name, overrides=None, precision="float32", run=None, member=None, **kwargs):
        super().__init__(**kwargs)
        self.model_name, self.precision, self.run = model_name, precision, run
        from yt8m_kit.models import explicit_overrides

        self.overrides = explicit_overrides(model_name, {k: v for k, v in dict(overrides or {}).items() if k != "dtype"})
        if member is None:
            member = build_member(model_name, self.overrides, precision)
        elif member.variables and member.variables[0].dtype != storage.compute_dtype(precision):
            raise ConfigError(f"member {model_name} has {member.variables[0].dtype} weights; "
                              f"precision {precision} needs {storage.compute_dtype(precision)}")
        self._member = _Hidden(member)
        self.level = model_level(member)

    def member(self):
        """The member keras.Model (a method, not a property: Keras' saving walk reads properties)."""
        return self._member.value

    def build(self, input_shape):
        self.built = True

    @property
    def weights(self):
        """The member's weights, so that Keras sees them (count_params, summary, weights): its saving
        walk skips this property (a Layer attribute) and save_own_variables stores them instead."""
        return self.member().weights

    def call(self, inputs):
        return ops.cast(self.member()(inputs, training=False), "float32")

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.member().outputs[0].shape, dtype="float32")

    def stored_bytes(self):
        """Exact bytes of the arrays save_own_variables writes."""
        return storage.storage_bytes([np.asarray(v.numpy()) for v in self.member().variables], self.precision)

    def save_own_variables(self, store):
        for i, v in enumerate(self.member().variables):
            for suffix, array in storage.storage_arrays(v.numpy(), self.precision).items():
                store[f"{i}.{suffix}" if suffix else str(i)] = array

    def load_own_variables(self, store):
        for i, v in enumerate(self.member().variables):
            if f"{i}.int8" in store:
                value = storage.dequantize_int8(np.asarray(store[f"{i}.int8"]), np.asarray(store[f"{i}.scale"]))
            elif str(i) in store:
                value = np.asarray(store[str(i)])
            else:
                raise ConfigError(f"ensemble member {self.name} ({self.model_name}) lacks variable {i} "
                                  f"({v.path}) in the saved file: it was written by a different model")
            if tuple(value.shape) != tuple(v.shape):
                raise ConfigError(f"ensemble member {self.name}: saved variable {i} has shape {value.shape}, "
                                  f"{v.path} needs {tuple(v.shape)}: written by a different model version")
            v.assign(ops.cast(value, v.dtype))

    @classmethod
    def from_config(cls, config):
        """A member of a saved ensemble, rebuilt as it was written (a versioned field its record lacks
        takes its legacy value: models.saved_overrides)."""
        from yt8m_kit.models import saved_overrides

        config = dict(config, overrides=saved_overrides(config["model_name"], config.get("overrides")))
        return super().from_config(config)

    def get_config(self):
        return {**super().get_config(), "model_name": self.model_name, "overrides": self.overrides,
                "precision": self.precision, "run": self.run}


@keras.saving.register_keras_serializable(package="yt8m_kit")
class WeightedMean(keras.layers.Layer):
    """sum_i w_i x_i / sum_i w_i over a list of (B, C) inputs, with fixed weights (submit.py --fit-weights)."""

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self.member_weights = [float(w) for w in weights]
        if not self.member_weights or min(self.member_weights) <= 0:
            raise ConfigError(f"member weights must be positive: {self.member_weights}")

    def call(self, inputs):
        total = sum(self.member_weights)
        return sum(ops.cast(x, "float32") * (w / total) for w, x in zip(self.member_weights, inputs))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "weights": self.member_weights}


def ensemble_inputs(level):
    from yt8m_kit import FEATURE_DIM

    if level == "frame":
        return {"frames": keras.Input((None, FEATURE_DIM), name="frames"),
                "num_frames": keras.Input((), dtype="int32", name="num_frames")}
    return {"features": keras.Input((FEATURE_DIM,), name="features")}


def build_ensemble(specs, models=None, name="ensemble", weights=None):
    """One keras.Model averaging the members.

    specs: [{"model", "overrides", "precision", "run"}]. models: the trained models (any
    dtype, same order; their weights are cast to each spec's precision) or None for fresh
    members (load_ensemble fills them). weights: one positive weight per member for a weighted
    mean (None: the plain mean).
    """
    if not specs:
        raise ConfigError("an ensemble needs at least one member")
    layers = []
    for i, spec in enumerate(specs):
        member = build_member(spec["model"], spec.get("overrides"), spec["precision"])
        if models is not None:
            cast_weights(models[i], member, spec["precision"])
        layers.append(EnsembleMember(spec["model"], spec.get("overrides"), spec["precision"],
                                     spec.get("run"), member=member, name=f"member_{i}_{spec['model']}"))
    level = "frame" if any(layer.level == "frame" for layer in layers) else "video"
    inputs = ensemble_inputs(level)
    features = MaskedMeanFrames(name="video_features")([inputs["frames"], inputs["num_frames"]]) \
        if level == "frame" and any(layer.level == "video" for layer in layers) else None
    outputs = []
    for layer in layers:
        if layer.level == "video":
            outputs.append(layer({"features": inputs["features"] if level == "video" else features}))
        else:
            outputs.append(layer({"frames": inputs["frames"], "num_frames": inputs["num_frames"]}))
    if weights is not None and len(weights) != len(outputs):
        raise ConfigError(f"{len(weights)} weights for {len(outputs)} members")
    if len(outputs) == 1:
        mean = outputs[0]
    elif weights is not None:
        mean = WeightedMean(weights, name="weighted_mean", dtype="float32")(outputs)
    else:
        mean = keras.layers.Average(name="mean", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=name)


def ensemble_members(model):
    """The EnsembleMember layers of an ensemble, in order."""
    return [layer for layer in model.layers if isinstance(layer, EnsembleMember)]


class OverBudget(ConfigError):
    """The written file is larger than allowed; nothing was replaced."""

    def __init__(self, path, size, max_bytes):
        self.size, self.max_bytes = size, max_bytes
        super().__init__(f"{path} would take {size} bytes, over the limit of {max_bytes} bytes")


def save_ensemble(model, path, max_bytes=None):
    """Write the ensemble as one .keras file, atomically; return its size in bytes.

    max_bytes: measure the written file first and raise OverBudget (leaving any existing
    file at `path` untouched) when it is larger.
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ConfigError(f"ensemble path {path} must end in .keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
        size = os.path.getsize(tmp)
        if max_bytes is not None and size > max_bytes:
            raise OverBudget(path, size, max_bytes)
    return size


def load_ensemble(path):
    """keras.Model from a file written by save_ensemble; needs no other file."""
    import yt8m_kit.layers  # noqa: F401  (registers the custom layers)
    import yt8m_kit.models  # noqa: F401

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"ensemble file {path} does not exist: write it with python submit.py --out DIR")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, KeyError, OSError) as e:
        raise ConfigError(f"cannot load the ensemble {path}: {e}") from e


def check_artifact(directory):
    """Refuse (ConfigError) a submit.py output directory whose files do not belong together: the
    sha256 of ensemble.keras must be the one ensemble.json, plan.json and model.tgz's ensemble.json
    name. Returns the plan.json dict (or None for an artifact written before fingerprints)."""
    import json
    import tarfile

    from yt8m_kit.fileio import read_json, sha256_file

    keras_path = os.path.join(directory, "ensemble.keras")
    config_path = os.path.join(directory, "ensemble.json")
    if not os.path.isfile(config_path):
        return None
    config = read_json(config_path, "ensemble config")
    if "sha256" not in config:
        return None  # written before fingerprints: nothing to compare
    digest = sha256_file(keras_path)
    mixed = f"{directory} holds files of different submit.py runs"
    advice = "rerun python submit.py --out DIR to write a consistent set"
    if digest != config["sha256"]:
        raise ConfigError(f"{mixed}: ensemble.keras (sha256 {digest[:12]}) is not the model ensemble.json "
                          f"describes ({config['sha256'][:12]}); {advice}")
    plan_path = os.path.join(directory, "plan.json")
    plan = read_json(plan_path, "plan") if os.path.isfile(plan_path) else None
    if plan is not None and plan.get("sha256") != digest:
        raise ConfigError(f"{mixed}: plan.json was written for another ensemble.keras "
                          f"({str(plan.get('sha256'))[:12]}, not {digest[:12]}); {advice}")
    tgz = os.path.join(directory, "model.tgz")
    if os.path.isfile(tgz):
        try:
            with tarfile.open(tgz, "r:gz") as tar:
                member = tar.next()
                inner = json.load(tar.extractfile(member)) if member and member.name == "ensemble.json" else {}
        except (tarfile.TarError, OSError, ValueError) as e:
            raise ConfigError(f"{tgz} cannot be read ({e}); {advice}") from None
        if inner.get("sha256") != digest:
            raise ConfigError(f"{mixed}: model.tgz (the file an upload sends) holds another ensemble "
                              f"({str(inner.get('sha256'))[:12]}, not {digest[:12]}); {advice}")
    return plan
