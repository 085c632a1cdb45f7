"""The model registry: every variant is a name; `create_model(name, **overrides)` is the door.

A registered builder is a function whose keyword arguments (or an explicit `defaults` dict)
are the model's whole configuration; overrides may change any of them and nothing else.
`dtype` ("float32" | "bfloat16" | "mixed_bfloat16") is accepted by every model and sets the
Keras dtype policy of every layer; outputs are float32 probabilities whatever the policy.
"""

import dataclasses
import difflib
import fnmatch
import inspect

from yt8m_kit.errors import ConfigError

DTYPES = ("float32", "bfloat16", "mixed_bfloat16")
LEVELS = ("frame", "video")
_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    level: str  # "frame": inputs frames + num_frames; "video": input features
    build: object  # function(**config) -> keras.Model
    defaults: dict  # the whole configuration, dtype included
    paper_mib: float = None  # Tang et al. Table 1 size (MiB of fp32 parameters), if any
    doc: str = ""
    train: dict = dataclasses.field(default_factory=dict)  # recommended trainer settings (lr, epochs, ...)


def register_model(level, paper_mib=None, defaults=None, name=None, train=None):
    """Decorator: register `fn` under `name` (default fn.__name__).

    The configuration is `defaults` if given, else fn's keyword defaults. `train` holds the
    trainer settings this model was tuned with (TrainConfig keys, e.g. lr, batch_size, epochs):
    `python -m yt8m_kit.train` uses them where the command line does not say otherwise.
    """
    if level not in LEVELS:
        raise ValueError(f"model level ({level!r}) must be one of {LEVELS}")

    def wrap(fn):
        if defaults is not None:
            config = dict(defaults)
        else:
            config = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                      if p.default is not inspect.Parameter.empty}
        config.setdefault("dtype", "float32")
        add_spec(ModelSpec(name or fn.__name__, level, fn, config, paper_mib, inspect.getdoc(fn) or "",
                           dict(train or {})))
        return fn

    return wrap


def register_variant(name, base, doc, train=None, **changes):
    """Register `name` as `base` with some defaults changed (e.g. the *_tiny variants), and
    optionally its own trainer settings (`train`, as in register_model)."""
    spec = _REGISTRY[base]
    unknown = sorted(set(changes) - set(spec.defaults))
    if unknown:
        raise ValueError(f"variant {name!r} of {base!r} changes unknown keys {unknown}")
    add_spec(dataclasses.replace(spec, name=name, defaults={**spec.defaults, **changes},
                                 paper_mib=None, doc=doc, train={**spec.train, **(train or {})}))


def add_spec(spec):
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec


def get_spec(name):
    """The ModelSpec of `name`; ConfigError naming close matches when unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown model {name!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def resolve_config(name, overrides):
    """defaults of `name` updated by `overrides`; ConfigError on unknown keys or dtype."""
    spec = get_spec(name)
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown override(s) {unknown}; "
                          f"valid keys: {', '.join(sorted(spec.defaults))}")
    config = {**spec.defaults, **overrides}
    if config["dtype"] not in DTYPES:
        raise ConfigError(f"model {name!r}: dtype {config['dtype']!r} is not one of {', '.join(DTYPES)}")
    return config


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
    """{name, level, defaults, paper_mib, doc, train} of a registered model (a copy; safe to mutate)."""
    spec = get_spec(name)
    return {"name": spec.name, "level": spec.level, "defaults": dict(spec.defaults),
            "paper_mib": spec.paper_mib, "doc": spec.doc, "train": dict(spec.train)}


def model_inputs(model, batch):
    """The part of a reader batch `model` takes: e.g. {"frames", "num_frames"} of a frame-level
    model. Pass this, not the whole batch: Keras matches extra keys ("id", "labels") wrongly."""
    names = list(model.input) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    missing = [k for k in names if k not in batch]
    if missing:
        raise ConfigError(f"model {model.name!r} needs input(s) {missing}; the batch has {sorted(batch)} "
                          f"(a frame-level model needs a frame-level reader, a video-level one video-level)")
    return {k: batch[k] for k in names}
