"""`yt8m <stage> [options]`: one command for every stage of the pipeline, in pipeline order.

    yt8m --help                 the stages
    yt8m <stage> --help         a stage's options (the same as its alias's --help)

Installed by `pip install .` (pyproject.toml's [project.scripts]); `python -m yt8m_kit` is the same command
from a clone. Each stage is also reachable as it was before the command existed (the aliases in STAGES:
`python -m yt8m_kit.train`, `python submit.py`, `python inference.py`, ...), with the same options. Nothing
here imports TensorFlow or Keras: a stage's module is imported only when that stage runs, and each
stage's --help answers before its own heavy imports.
"""

import importlib
import sys

# stage -> (module with main(argv), what it does, the alias that runs it without the command)
STAGES = {
    "inspect": ("yt8m_kit.data.inspect", "report what TFRecord files hold (format, videos, frames, problems)",
                "python -m yt8m_kit.inspect"),
    "synth": ("yt8m_kit.data.synth", "generate YouTube-8M-format TFRecords with learnable structure",
              "python -m yt8m_kit.synth"),
    "models": ("yt8m_kit.models.__main__", "list the registered models, their sizes and settings",
               "python -m yt8m_kit.models"),
    "train": ("yt8m_kit.train.cli", "train one sub-model from TFRecords into a run directory",
              "python -m yt8m_kit.train"),
    "average": ("yt8m_kit.train.averaging", "average a run's checkpoints, batch-norm statistics recomputed",
                "python -m yt8m_kit.average"),
    "evaluate": ("yt8m_kit.evaluate.cli", "score a checkpoint, an ensemble or a CSV on labelled records (GAP)",
                 "python -m yt8m_kit.evaluate"),
    "submit": ("yt8m_kit.ensemble.submit_cli", "plan the best ensemble under a size budget, write one graph",
               "python submit.py"),
    "infer": ("yt8m_kit.kaggle.inference_job", "predict the test set with the ensemble, write the Kaggle CSV",
              "python inference.py"),
    "merge": ("yt8m_kit.kaggle.merge", "merge per-shard prediction CSVs into one submission",
              "python -m yt8m_kit.merge"),
    "upload": ("yt8m_kit.kaggle.upload", "check a submission CSV and upload it through the Kaggle API",
               "python -m yt8m_kit.upload"),
    "demo": ("yt8m_kit.demo", "the whole pipeline end to end on generated data (~5 min on 2 cores)",
             "python -m yt8m_kit.demo"),
}


def usage():
    width = max(map(len, STAGES))
    lines = ["usage: yt8m <stage> [options]     (yt8m <stage> --help: the stage's options)", "",
             "The YouTube-8M toolkit of Tang et al. 2018's non-local NetVLAD system. Stages, in pipeline order:", ""]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what, _) in STAGES.items()]
    lines += ["", "Each stage also runs as before, with the same options: "
              + "; ".join(f"{name}: {alias}" for name, (_, _, alias) in STAGES.items()) + "."]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        close = [name for name in STAGES if name.startswith(stage[:3])]
        print(f"yt8m: unknown stage {stage!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
              + f"; the stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[stage][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
