"""The model registry: every variant is a name; `create_model(name, **overrides)` is the door.

Each name's configuration is data in models/configs.py (MODELS: level, architecture dataclass,
trainer settings, paper size); its builder is the function of that name in frame_models or
video_models (NAME_tiny uses NAME's). Overrides may change any field of the architecture and
nothing else. `dtype` ("float32" | "bfloat16" | "mixed_bfloat16") is a field of every model and
sets the Keras dtype policy of every layer; outputs are float32 probabilities whatever the policy.
"""

import dataclasses
import difflib
import fnmatch
import inspect

from yt8m_kit.errors import ConfigError
from yt8m_kit.models import configs

DTYPES = ("float32", "bfloat16", "mixed_bfloat16")


def _builders():
    """name -> builder; imported on first use, so that listing models and reading their configs (and the
    commands' --help) need no Keras."""
    from yt8m_kit.models import frame_models, video_models

    return {**frame_models.BUILDERS, **video_models.BUILDERS}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    level: str  # "frame": inputs frames + num_frames; "video": input features
    config: object  # the architecture dataclass (models/configs.py), defaults filled in
    train: configs.TrainSettings
    paper_mib: float = None  # Tang et al. Table 1 size (MiB of fp32 parameters), if any

    @property
    def defaults(self):
        return dataclasses.asdict(self.config)

    @property
    def build(self):
        """function(name=..., **architecture fields) -> keras.Model (imports Keras)."""
        return _builders()[self.name.removesuffix("_tiny")]

    @property
    def doc(self):
        base = self.name.removesuffix("_tiny")
        if base != self.name:
            ref = configs.MODELS[base][1]
            changes = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)
                       if getattr(self.config, f.name) != getattr(ref, f.name)}
            return f"Tiny {base} (same architecture): {changes}"
        return inspect.getdoc(self.build) or ""


def _spec(name, level, config, train, paper_mib):
    return ModelSpec(name, level, config, train, paper_mib)


_REGISTRY = {name: _spec(name, *row) for name, row in configs.MODELS.items()}


def get_spec(name):
    """The ModelSpec of `name`; ConfigError naming close matches when unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def resolve_config(name, overrides):
    """The architecture of `name` with `overrides` applied, as a dict; ConfigError on unknown keys or dtype."""
    spec = get_spec(name)
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown override(s) {unknown}; "
                          f"valid keys: {', '.join(sorted(spec.defaults))}")
    config = {**spec.defaults, **overrides}
    if config["dtype"] not in DTYPES:
        raise ConfigError(f"model {name!r}: dtype {config['dtype']!r} is not one of {', '.join(DTYPES)}")
    return config


def _with_versioned_fields(name, overrides, values):
    """`overrides`, each field of configs.LEGACY_VALUES that the model has and they lack taken from
    `values`; unregistered names are returned as they are (building them reports the name)."""
    defaults = _REGISTRY[name].defaults if name in _REGISTRY else {}
    return {**{k: values[k] for k in configs.LEGACY_VALUES if k in defaults}, **dict(overrides or {})}


def explicit_overrides(name, overrides):
    """`overrides` plus the current value of every field in configs.LEGACY_VALUES the model has:
    what every record written now stores, so that it reads back the same whatever defaults change."""
    return _with_versioned_fields(name, overrides, get_spec(name).defaults if name in _REGISTRY else {})


def saved_overrides(name, overrides):
    """The overrides of a saved record (model.json, run.json, an ensemble member): a field of
    configs.LEGACY_VALUES that the record lacks predates it and takes its legacy value, so that a
    checkpoint keeps predicting as it was trained."""
    return _with_versioned_fields(name, overrides, configs.LEGACY_VALUES)


def create_model(name, **overrides):
    """Build registered model `name` (a fresh keras.Model named `name`) with `overrides`.

    Frame level: inputs {"frames": (B, T, 1152) float32, "num_frames": (B,) int32};
    video level: {"features": (B, 1152) float32}; output (B, 3862) float32 probabilities.
    """
    config = resolve_config(name, overrides)
    try:
        return get_spec(name).build(name=name, **config)
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model {name!r} cannot be built with overrides {overrides}: {e}") from e


def list_models(pattern=None):
    """Sorted registered names, optionally filtered by a glob pattern ('*_tiny', 'lfnl_*')."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def model_info(name):
    """{name, level, config, defaults, paper_mib, doc, train} of a registered model: `config` the
    architecture dataclass, `defaults` it as a dict, `train` the trainer settings that are set
    (a copy; safe to mutate)."""
    spec = get_spec(name)
    return {"name": spec.name, "level": spec.level, "config": spec.config, "defaults": spec.defaults,
            "paper_mib": spec.paper_mib, "doc": spec.doc, "train": spec.train.as_dict()}


def model_inputs(model, batch):
    """The part of a reader batch `model` takes: e.g. {"frames", "num_frames"} of a frame-level
    model. Pass this, not the whole batch: Keras matches extra keys ("id", "labels") wrongly."""
    names = list(model.input) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    missing = [k for k in names if k not in batch]
    if missing:
        raise ConfigError(f"model {model.name!r} needs input(s) {missing}; the batch has {sorted(batch)} "
                          f"(a frame-level model needs a frame-level reader, a video-level one video-level)")
    return {k: batch[k] for k in names}
