"""List the registered models: python -m yt8m_kit.models [--configs] [--json] [--pattern P].

Sizes (the default): builds each model once (paper-size ones allocate up to ~600 MB each, ~40 s for
all on 2 cores); "paper MiB" is the published size (Tang et al.'s Table 1 for the six sub-models, Lin
et al.'s 78.6M parameters for nextvlad). Bytes are parameter bytes: fp32 = 4 per parameter, bf16 = 2 (as after the bfloat16
cast). --configs: each model's architecture and the trainer settings it trains with, built from
models/configs.py without building any model.
"""

import argparse
import gc
import json
import sys

from yt8m_kit.errors import ConfigError, cli_main


def model_sizes(names):
    """[{name, level, params, bytes_fp32, bytes_bf16, paper_mib}] for each name (builds each)."""
    import keras

    from yt8m_kit.models import create_model, model_info

    from yt8m_kit.progress import Progress

    bar = Progress(len(names), "model", quiet_if_not_tty=True) if len(names) > 1 else None  # a table follows
    rows = []
    for i, name in enumerate(names):
        model = create_model(name)
        params = int(model.count_params())
        info = model_info(name)
        rows.append({"name": name, "level": info["level"], "params": params, "bytes_fp32": 4 * params,
                     "bytes_bf16": 2 * params, "paper_mib": info["paper_mib"]})
        del model
        keras.backend.clear_session()
        gc.collect()
        if bar is not None:
            bar.update(i + 1)
    return rows


def format_table(rows):
    lines = [f"{'model':<22}{'level':<7}{'params':>13}{'MiB fp32':>10}{'MiB bf16':>10}{'paper MiB':>11}"]
    for r in rows:
        paper = "" if r["paper_mib"] is None else f"{r['paper_mib']:.1f}".removesuffix(".0")
        lines.append(f"{r['name']:<22}{r['level']:<7}{r['params']:>13,}{r['bytes_fp32'] / 2**20:>10.1f}"
                     f"{r['bytes_bf16'] / 2**20:>10.1f}{paper:>11}")
    return "\n".join(lines)


def model_configs(names):
    """[{name, level, paper_mib, architecture, architecture_class, train}]: `train` the settings the
    trainer uses when the command line says nothing (the model's own, else the trainer's default),
    `train_source` which of the two each came from."""
    import dataclasses

    from yt8m_kit.models import model_info
    from yt8m_kit.train.config import TUNABLE, TrainConfig

    trainer_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in TUNABLE + ("xla",)}
    rows = []
    for name in names:
        info = model_info(name)
        train = {k: info["train"].get(k, v) for k, v in trainer_defaults.items()}
        rows.append({"name": name, "level": info["level"], "paper_mib": info["paper_mib"],
                     "architecture_class": type(info["config"]).__name__, "architecture": info["defaults"],
                     "train": {k: v for k, v in train.items() if v is not None},
                     "train_source": {k: "model" if k in info["train"] else "trainer" for k in train
                                      if train[k] is not None}})
    return rows


def format_configs(rows):
    lines = []
    for r in rows:
        paper = f", paper {r['paper_mib']:g} MiB" if r["paper_mib"] is not None else ""
        lines.append(f"{r['name']} ({r['level']} level{paper})")
        arch = " ".join(f"{k}={v}" for k, v in r["architecture"].items())
        lines.append(f"  architecture {r['architecture_class']}: {arch}")
        own = " ".join(f"{k}={v}" for k, v in r["train"].items() if r["train_source"][k] == "model")
        rest = " ".join(f"{k}={v}" for k, v in r["train"].items() if r["train_source"][k] == "trainer")
        lines.append(f"  trainer: {own or '(nothing of its own)'}; trainer defaults: {rest}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m yt8m_kit.models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {name, params, bytes_fp32, bytes_bf16, paper_mib}")
    parser.add_argument("--pattern", default=None, help="only models matching this glob, e.g. '*_tiny' (default: all)")
    parser.add_argument("--configs", action="store_true",
                        help="print each model's architecture and trainer settings (models/configs.py) "
                             "instead of building it to count its parameters")
    return parser


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)

    from yt8m_kit.models import list_models

    names = list_models(args.pattern)
    if not names:
        raise ConfigError(f"no registered model matches {args.pattern!r}; see python -m yt8m_kit.models")
    if args.configs:
        rows = model_configs(names)
        print(json.dumps(rows, indent=1) if args.json else format_configs(rows))
        return 0
    rows = model_sizes(names)
    if args.json:
        keys = ("name", "params", "bytes_fp32", "bytes_bf16", "paper_mib")
        print(json.dumps([{k: r[k] for k in keys} for r in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
