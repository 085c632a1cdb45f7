"""The trainer's configuration: TrainConfig / TrainResult, run.json records, and how settings are
resolved (command line, else the model's registered trainer settings, else the defaults)."""

import dataclasses
import json

from yt8m_kit.errors import ConfigError

# Keys of TrainConfig that a resumed run may change; every other key must match run.json.
# skip_bad may be turned on to resume a run that stopped at a bad record (it drops only those).
SCHEDULE_KEYS = ("steps", "epochs", "checkpoint_every", "keep", "valid", "valid_every",
                 "valid_batch_size", "strategy", "xla", "log_every", "out", "tf_config", "progress",
                 "allow_2017", "skip_bad")
# The averaging window (train/averaging.py) and the checkpoint schedule that fills it: Tang et al. average the
# last 10 checkpoints, 10,000 steps apart, of a ~300,000-step run, i.e. its last third. By default a run keeps
# its last 10 checkpoints, spaced 1/30 of its length apart (whole thousands, at least 1,000), and `average`
# takes the kept checkpoints of the last third of the run. Each checkpoint holds the weights and Adam's two
# moments: about 3x the model's float32 size (10 of lfnl_netvlad: ~18 GB).
AVERAGE_FRACTION = 1 / 3
AVERAGE_CHECKPOINTS = 10


def checkpoint_spacing(total_steps):
    """The default steps between checkpoints of a run of `total_steps`: 1/30 of it in whole thousands, at
    least 1,000 (300,000 -> 10,000, the authors'; 30,000 or fewer -> 1,000)."""
    per = -(-int(total_steps) // round(AVERAGE_CHECKPOINTS / AVERAGE_FRACTION))
    return max(1000, -(-per // 1000) * 1000)


PURE_BF16_REASON = (
    "pure bfloat16 training is refused: bfloat16 has an 8-bit mantissa, so Adam's beta_2 = 0.999 "
    "rounds to 1.0 and the weights do not move (DESIGN.md section 4). Train in float32 or "
    "--precision mixed_bfloat16 (float32 variables, bfloat16 compute) and cast to bfloat16 after "
    "training (submit.py does).")


@dataclasses.dataclass
class TrainConfig:
    model: str
    train: str  # TFRecord pattern(s), comma-separated globs
    out: str  # RUN_DIR
    steps: int = None  # exactly one of steps / epochs
    epochs: float = None
    batch_size: int = 64  # global batch, split over replicas
    lr: float = 2e-4  # Tang et al. 2018
    lr_decay: float = 0.8  # YouTube-8M starter code: x0.8 ...
    lr_decay_examples: int = 4_000_000  # ... every 4M examples (staircase)
    clip_norm: float = 1.0  # global gradient norm, after the all-reduce
    overrides: dict = dataclasses.field(default_factory=dict)
    valid: str = None
    valid_every: int = None  # default: at every checkpoint
    valid_batch_size: int = 64
    checkpoint_every: int = None  # None: checkpoint_spacing(total steps)
    keep: int = AVERAGE_CHECKPOINTS
    precision: str = "float32"  # or mixed_bfloat16
    strategy: str = "default"  # default | mirrored | multi_worker
    tf_config: str = None  # TF_CONFIG JSON for multi_worker (the CLI reads the environment)
    seed: int = 0
    frames: int = 300  # frames sampled per video per step (frame-level models)
    xla: bool = False  # jit_compile the step (default strategy only): measure, it may not help
    log_every: int = 10
    progress: bool = True
    allow_2017: bool = False  # read 2017 files (key video_id); training on them is refused (4716 classes)
    skip_bad: bool = False  # drop bad records (counted in TrainResult.skipped_records) instead of stopping
    ema: float = None  # weight EMA decay per step (train/ema.py); None: no EMA
    teacher: str = None  # offline distillation (train/distill.py): an ensemble, checkpoint or prediction file
    distill_lambda: float = 0.5  # weight of the teacher's BCE (1 - it: the labels'), with --teacher; the 1st place's


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    checkpoint: str
    resumed_from: int  # step the run started from (0 when fresh)
    loss: float  # mean loss over the last logging window (None when no step ran)
    valid: dict  # last validation metrics (gap, ...) or None
    steps_per_sec: float
    examples_per_sec: float
    skipped_records: int = 0  # with skip_bad: bad records dropped (training: once per pass over the data)


def run_record(config, level):
    """The content of run.json: what must stay the same for a resume, plus the schedule."""
    fixed = {k: v for k, v in dataclasses.asdict(config).items() if k not in SCHEDULE_KEYS + ("model", "overrides")}
    return {"model": config.model, "overrides": model_overrides(config), "level": level, "train": fixed,
            "schedule": {k: getattr(config, k) for k in SCHEDULE_KEYS if k not in ("tf_config", "progress")}}


def run_differences(old, new):
    from yt8m_kit.train.checkpoint import as_json

    old, new, diffs = as_json(old), as_json(new), []
    for key in ("model", "level"):
        if old.get(key) != new.get(key):
            diffs.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    # A trainer setting added after a run.json was written (ema, teacher, distill_lambda, ...) is absent from
    # it: the run was trained as that setting's default does, so the default is what it is compared with.
    added = {"train": {f.name: f.default for f in dataclasses.fields(TrainConfig)
                       if f.default is not dataclasses.MISSING}}
    for group in ("overrides", "train"):
        a, b = old.get(group) or {}, new.get(group) or {}
        a = {**{k: v for k, v in added.get(group, {}).items() if k in b and k not in a}, **a}
        diffs += [f"{group}.{k} ({a.get(k)!r} -> {b.get(k)!r})"
                  for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs


def model_overrides(config):
    overrides = dict(config.overrides)
    dtype = overrides.get("dtype")
    if config.precision not in ("float32", "mixed_bfloat16"):
        raise ConfigError(PURE_BF16_REASON if config.precision == "bfloat16" else
                          f"precision {config.precision!r} must be float32 or mixed_bfloat16")
    if dtype == "bfloat16":
        raise ConfigError(PURE_BF16_REASON)
    if dtype is not None and dtype != config.precision and config.precision != "float32":
        raise ConfigError(f"--set dtype={dtype} contradicts --precision {config.precision}: give only --precision")
    if config.precision == "mixed_bfloat16" or dtype == "mixed_bfloat16":
        overrides["dtype"] = "mixed_bfloat16"
    from yt8m_kit.models import explicit_overrides

    return explicit_overrides(config.model, overrides)  # run.json and checkpoints state every versioned field


def validate_config(config):
    if (config.steps is None) == (config.epochs is None):
        raise ConfigError("give exactly one of --steps N or --epochs N")
    for key in ("batch_size", "checkpoint_every", "keep", "frames", "log_every", "valid_batch_size"):
        if getattr(config, key) is not None and getattr(config, key) < 1:
            raise ConfigError(f"{key} ({getattr(config, key)}) must be at least 1")
    if config.steps is not None and config.steps < 1 or config.epochs is not None and config.epochs <= 0:
        raise ConfigError(f"steps/epochs ({config.steps or config.epochs}) must be positive")
    if config.strategy not in ("default", "mirrored", "multi_worker"):
        raise ConfigError(f"strategy {config.strategy!r} must be default, mirrored or multi_worker")
    if config.xla and config.strategy != "default":
        raise ConfigError(f"--xla compiles the whole step, all-reduce included: use it with --strategy default, "
                          f"not {config.strategy}")
    model_overrides(config)


def parse_set(items):
    """['num_clusters=32', 'dropout=0.5', 'name=x'] -> {'num_clusters': 32, 'dropout': 0.5, 'name': 'x'}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


TUNABLE = ("steps", "epochs", "batch_size", "lr", "lr_decay", "lr_decay_examples", "clip_norm")


def resolve_tunables(model, given):
    """Trainer settings: the command line's where given, else the model's registered ones
    (model_info(name)["train"], e.g. the tuned `video` model's), else TrainConfig's defaults."""
    from yt8m_kit.models import model_info

    registered = model_info(model)["train"]
    chosen = {k: given[k] if given.get(k) is not None else registered.get(k) for k in TUNABLE}
    if given.get("steps") is not None or given.get("epochs") is not None:  # one of them, never both
        chosen["steps"], chosen["epochs"] = given.get("steps"), given.get("epochs")
    if chosen["steps"] is None and chosen["epochs"] is None:
        raise ConfigError(f"say how long to train model {model!r}: --steps N or --epochs N "
                          "(it has no registered default)")
    return {k: v for k, v in chosen.items() if v is not None}


def describe_settings(model, given, xla_given=None, strategy="default"):
    """One line: every tunable trainer setting the run uses, and where it came from (command line, the
    model's registered settings, or the trainer's default). Printed when training starts."""
    from yt8m_kit.models import model_info

    registered = model_info(model)["train"]
    chosen = resolve_tunables(model, given)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    parts = []
    for key in TUNABLE:
        if key not in chosen:
            continue
        if given.get(key) is not None:
            source = "command line"
        elif registered.get(key) is not None:
            source = f"registered for {model}"
        else:
            source = "default"
        parts.append(f"{key} {chosen.get(key, defaults[key])} ({source})")
    for key in TUNABLE:
        if key not in chosen and key not in ("steps", "epochs"):
            parts.append(f"{key} {defaults[key]} (default)")
    xla = resolve_xla(model, xla_given, strategy)
    xla_source = "command line" if xla_given is not None else (
        f"registered for {model}" if "xla" in registered else "default")
    parts.append(f"xla {'on' if xla else 'off'} ({xla_source})")
    return "settings: " + ", ".join(parts)


def resolve_xla(model, given, strategy):
    """--xla / --no-xla where given; else the model's registered setting, which only applies
    with the default strategy (XLA compiles the whole step, all-reduce included)."""
    from yt8m_kit.models import model_info

    if given is not None:
        return given
    return bool(model_info(model)["train"].get("xla", False)) and strategy == "default"
