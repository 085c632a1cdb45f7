"""The package's layout holds: rooms by pipeline stage, stages importing only from earlier ones
(named exceptions, each with its reason), no private name imported across modules, no module over 300 lines, every
module named in its stage's map, and the process untouched by `import yt8m_kit`."""

import ast
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "yt8m_kit")
STAGES = ["data", "layers", "models", "train", "evaluate", "ensemble", "kaggle"]
# Imports against the stage order, each for a reason: the trainer validates with the evaluator's
# GAP; `evaluate --predictions` reads a Kaggle CSV; `models --configs` shows the trainer's defaults;
# distillation predicts its teacher (a submit.py ensemble or a checkpoint) with the evaluator's loop.
BACKWARD = {("train/loop.py", "evaluate"), ("evaluate/cli.py", "kaggle"), ("models/__main__.py", "train"),
            ("train/distill.py", "evaluate"), ("train/distill.py", "ensemble")}


def _modules():
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, ROOT), path


def _imports(path):
    """(module, names) of every `from yt8m_kit... import names` and `import yt8m_kit...` in the file."""
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("yt8m_kit"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names if a.name.startswith("yt8m_kit"))


def test_stages_import_only_from_earlier_stages():
    wrong = []
    for rel, path in _modules():
        stage = rel.split(os.sep)[0]
        if stage not in STAGES:
            continue
        for module, names in _imports(path):
            parts = module.split(".")
            targets = [parts[1]] if len(parts) > 1 else [n for n in names if n in STAGES]
            for target in targets:
                if target in STAGES and STAGES.index(target) > STAGES.index(stage) and (rel, target) not in BACKWARD:
                    wrong.append(f"{rel} imports {module}")
    assert not wrong, wrong


def test_no_private_name_is_imported_across_modules():
    wrong = [f"{rel}: from {module} import {name}" for rel, path in _modules()
             for module, names in _imports(path) for name in names if name.startswith("_")]
    assert not wrong, wrong


def test_no_module_over_300_lines():
    long = {rel: n for rel, path in _modules() if (n := sum(1 for _ in open(path))) > 300}
    assert not long, long


@pytest.mark.parametrize("stage", ["data", "train", "evaluate", "ensemble", "kaggle"])
def test_each_stage_map_names_all_its_modules(stage):
    doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, stage, "__init__.py")).read()))
    modules = {n[:-3] for n in os.listdir(os.path.join(ROOT, stage))
               if n.endswith(".py") and not n.startswith("__")}
    modules |= {n for n in os.listdir(os.path.join(ROOT, stage)) if os.path.isdir(os.path.join(ROOT, stage, n))
                and not n.startswith("__")}
    missing = sorted(m for m in modules if not re.search(rf"\b{m}\b", doc))
    assert not missing, f"yt8m_kit/{stage}/__init__.py does not name {missing}"


def test_short_command_names_only_delegate():
    """yt8m_kit/NAME.py aliases hold no logic: a docstring, `import sys`, one import of main, the guard."""
    for name in ("inspect", "synth", "average", "merge", "upload", "native"):
        tree = ast.parse(open(os.path.join(ROOT, f"{name}.py")).read())
        kinds = [type(n).__name__ for n in tree.body]
        assert kinds == ["Expr", "Import", "ImportFrom", "If"], (name, kinds)
        assert tree.body[2].names[0].name == "main"
