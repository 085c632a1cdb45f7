"""Every command's --help: it answers without importing TensorFlow, every option has a help text, and
every option with a default says what it is."""

import argparse
import importlib
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {  # command -> module with build_parser()
    "python -m yt8m_kit.train": "yt8m_kit.train.cli",
    "python -m yt8m_kit.evaluate": "yt8m_kit.evaluate.cli",
    "python -m yt8m_kit.inspect": "yt8m_kit.data.inspect",
    "python -m yt8m_kit.synth": "yt8m_kit.data.synth",
    "python -m yt8m_kit.average": "yt8m_kit.train.averaging",
    "python -m yt8m_kit.merge": "yt8m_kit.kaggle.merge",
    "python -m yt8m_kit.upload": "yt8m_kit.kaggle.upload",
    "python -m yt8m_kit.models": "yt8m_kit.models.__main__",
    "python inference.py": "yt8m_kit.kaggle.inference_job",
    "python submit.py": "submit",
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_explained(command):
    parser = importlib.import_module(COMMANDS[command]).build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command} {name}: no help text"
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text = action.help % {"default": action.default} if "%(default)" in action.help else action.help
            assert "default" in text.lower(), f"{command} {name}: default {action.default!r} not stated"


def test_help_imports_no_tensorflow():
    code = ("import importlib, sys\n"
            f"for m in {sorted(set(COMMANDS.values()))!r}:\n"
            "    importlib.import_module(m).build_parser().format_help()\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_test_command_names_each_skip_reason_and_hides_no_warning_of_ours(tmp_path):
    """`make test` runs pytest with the repo's pytest.ini: a skipped test is listed with its reason, and only
    the one known third-party warning is filtered (a warning of ours still shows)."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("import warnings, pytest\n"
                     "def test_skips():\n    pytest.skip('no real data here')\n"
                     "def test_warns():\n    warnings.warn('ours', UserWarning)\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", os.path.join(REPO, "pytest.ini"),
                           "--rootdir", REPO, str(probe)], capture_output=True, text=True, cwd=REPO)
    assert "SKIPPED" in proc.stdout and "no real data here" in proc.stdout, proc.stdout
    assert "1 warning" in proc.stdout and "ours" in proc.stdout, proc.stdout
