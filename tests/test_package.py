"""The package as users install it: pyproject.toml's pins are requirements.txt's, `pip install .` gives the
`yt8m` command, and every stage's --help answers through it without TensorFlow or Keras (imports of either
are made to fail, so a stage that reached for them would exit with an ImportError)."""

import os
import re
import subprocess
import sys
import tomllib

import pytest

from yt8m_kit.cli import STAGES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as `python -m yt8m_kit ARGS` with tensorflow and keras unimportable.
NO_TF = ("import sys\n"
         "class Refuse:\n"
         "    def find_spec(self, name, path=None, target=None):\n"
         "        if name.split('.')[0] in ('tensorflow', 'keras', 'jax'):\n"
         "            raise ImportError(f'{name} imported by --help')\n"
         "sys.meta_path.insert(0, Refuse())\n"
         "import runpy\n"
         "sys.argv = ['yt8m'] + sys.argv[1:]\n"
         "runpy.run_module('yt8m_kit', run_name='__main__')\n")


def yt8m(*args):
    return subprocess.run([sys.executable, "-c", NO_TF, *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO))


def pins(lines):
    return {re.split(r"[=<>\[]", line)[0].strip().lower().replace("_", "-"): line.replace(" ", "")
            for line in lines if line.strip() and not line.strip().startswith("#")}


def test_pyproject_pins_what_requirements_pins_and_installs_the_command():
    project = tomllib.loads(open(os.path.join(REPO, "pyproject.toml")).read())["project"]
    assert project["scripts"] == {"yt8m": "yt8m_kit.cli:main"}
    assert project["requires-python"] == ">=3.11"
    required = pins(open(os.path.join(REPO, "requirements.txt")).read().splitlines())
    declared = pins(project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra])
    assert declared == required  # every pin in both, the same version
    import yt8m_kit

    assert project["version"] == yt8m_kit.__version__


def test_the_command_lists_every_stage_in_pipeline_order():
    proc = yt8m("--help")
    assert proc.returncode == 0, proc.stderr
    order = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert order == ["inspect", "synth", "models", "train", "average", "evaluate", "submit", "infer", "merge",
                     "upload", "demo"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_answers_help_through_the_command_without_tensorflow(stage):
    """The same --help as its alias (the alias's own parser), with TensorFlow, Keras and JAX unimportable."""
    import importlib

    proc = yt8m(stage, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    module = importlib.import_module(STAGES[stage][0])
    if hasattr(module, "build_parser"):
        assert proc.stdout == module.build_parser().format_help()
    else:
        assert proc.stdout.startswith("usage: ")


def test_an_unknown_or_missing_stage_is_refused_with_the_stages_named():
    proc = yt8m("trian")
    assert proc.returncode == 2 and "unknown stage 'trian' (did you mean train?)" in proc.stderr
    assert "inspect, synth, models" in proc.stderr
    proc = yt8m()
    assert proc.returncode == 2 and proc.stderr.startswith("usage: yt8m <stage>")


def test_the_aliases_still_run():
    for cmd in (["submit.py", "--help"], ["inference.py", "--help"], ["-m", "yt8m_kit.train", "--help"]):
        proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=REPO))
        assert proc.returncode == 0 and proc.stdout.startswith("usage: "), (cmd, proc.stderr[-500:])
