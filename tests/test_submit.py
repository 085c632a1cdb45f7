"""submit.py end to end on two tiny runs: budgets, the artifact, the cache, a fresh-process load."""

import json
import os
import subprocess
import sys
import tarfile

import keras
import pytest

import submit as submit_cli
from yt8m_kit.train import checkpoint as ckpt_lib
from yt8m_kit.ensemble import submit_job as S
from yt8m_kit.ensemble.candidates import build_candidates, default_valid
from yt8m_kit.models import create_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("lfnl_netvlad_tiny", "video_logistic")  # one frame level, one video level (masked mean)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for i, name in enumerate(MODELS):
        keras.utils.set_random_seed(i)
        level = "video" if name.startswith("video") else "frame"
        ckpt_lib.save_checkpoint(str(root / name), 10, create_model(name),
                                 {"model": name, "overrides": {}, "level": level})
    return root


def config(runs, frame_data, out, budget, **kw):
    return S.SubmitConfig(budget=budget, valid=str(frame_data / "validate*.tfrecord"), runs=str(runs),
                          out=str(out), **kw)


@pytest.fixture(scope="module")
def big(runs, frame_data, tmp_path_factory):
    """One planning job with a generous budget; returns (config, plan dict, stdout, log)."""
    out = tmp_path_factory.mktemp("out_big")
    logs = []
    cfg = config(runs, frame_data, out, 10**9)
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        result = S.run_submit(cfg, log=logs.append)
    return cfg, result, buf.getvalue(), logs


def test_generous_budget_writes_everything(big):
    cfg, result, table, logs = big
    assert sum("predict " in m for m in logs) == 6  # 2 runs x 3 precisions, measured
    with open(os.path.join(cfg.out, "plan.json")) as f:
        plan = json.load(f)
    assert plan == json.loads(json.dumps(result))
    for key in ("budget_bytes", "total_bytes", "validation_gap", "artifact", "artifact_bytes", "members"):
        assert key in plan
    artifact = os.path.join(cfg.out, plan["artifact"])
    assert os.path.getsize(artifact) == plan["artifact_bytes"] <= plan["budget_bytes"]
    assert plan["upload_bytes"] == os.path.getsize(os.path.join(cfg.out, "model.tgz"))  # the file uploaded
    assert plan["total_bytes"] == sum(m["bytes"] for m in plan["members"]) <= plan["artifact_bytes"]
    assert plan["search"]["method"] == "exhaustive" and plan["search"]["plans_scored"] == 15
    with tarfile.open(os.path.join(cfg.out, "model.tgz")) as tar:
        assert sorted(tar.getnames()) == ["ensemble.json", "ensemble.keras"]
    with open(os.path.join(cfg.out, "ensemble.json")) as f:
        members = json.load(f)["members"]
    assert [(m["model"], m["precision"]) for m in members] == [(m["model"], m["precision"]) for m in plan["members"]]
    with open(os.path.join(cfg.out, "plan.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Candidates" in table and "Plan:" in table
    assert table.count("\n") >= 2 + 6 + 3  # header + 6 candidates + plan lines


def test_fresh_process_load_reproduces_the_plan_gap(big):
    cfg, result, _, _ = big
    code = ("import sys; from yt8m_kit.ensemble.artifact import load_ensemble; from yt8m_kit.evaluate.predict_loop import predict_batches; "
            "from yt8m_kit.evaluate.metrics import gap; import numpy as np\n"
            "m = load_ensemble(sys.argv[1]); s, l = [], []\n"
            "for ids, scores, labels in predict_batches(m, sys.argv[2]): s.append(scores); l.append(labels)\n"
            "print(gap(np.concatenate(s), np.concatenate(l)))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code, os.path.join(cfg.out, "ensemble.keras"), cfg.valid],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) == pytest.approx(result["validation_gap"], abs=1e-4)


def test_tight_budget_keeps_the_smallest_member_and_says_why(big, runs, frame_data, tmp_path, capsys):
    logs = []
    # The smallest candidate is lfnl_netvlad_tiny at int8; give just enough room for it.
    tight_cfg = config(runs, frame_data, tmp_path / "out", 10**9)
    candidates, *_ = build_candidates(tight_cfg, logs.append, [])
    assert all("reuse" in m for m in logs if "predictions" in m)  # cache hit: nothing recomputed
    small = min(candidates, key=lambda c: c.bytes)
    assert small.precision == "int8"
    budget = small.bytes + S.BASE_OVERHEAD + S.MEMBER_OVERHEAD * len(MODELS)
    plan = S.run_submit(config(runs, frame_data, tmp_path / "out", budget), log=logs.append)
    table = capsys.readouterr().out
    assert [(m["model"], m["precision"]) for m in plan["members"]] == [(small.model, "int8")]
    assert plan["artifact_bytes"] <= budget and plan["total_bytes"] <= budget
    assert "cast to int8" in plan["members"][0]["why"]
    assert len(plan["dropped"]) == 1 and "exceeds the budget" in plan["dropped"][0]["why"]
    assert "cast to int8" in table and "dropped" in table


def test_budget_nothing_fits_exits_nonzero(runs, frame_data, tmp_path, capsys):
    rc = submit_cli.main(["--budget", "1000", "--runs", str(runs), "--valid", str(frame_data / "validate*.tfrecord"),
                          "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "nothing fits" in err and "smallest possible ensemble" in err
    assert not os.path.exists(tmp_path / "o" / "plan.json")


def test_cache_is_keyed_by_seed(runs, frame_data, tmp_path):
    logs = []
    build_candidates(config(runs, frame_data, tmp_path, 10**9, seed=7, precisions=("int8",)), logs.append, [])
    assert sum("predict " in m for m in logs) == 2  # a new seed is a new key: recomputed


def test_help_states_the_units(capsys):
    with pytest.raises(SystemExit):
        submit_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "G/GB/GiB = 2^30" in text and "1,073,741,824" in text and "1e9" in text


def test_size_is_checked_after_writing(big, runs, frame_data, tmp_path, monkeypatch):
    """With no overhead allowance the members' bytes fit but the written file does not:
    the artifact is refused before it replaces anything, and the search retries."""
    logs = []
    candidates, *_ = build_candidates(config(runs, frame_data, tmp_path, 10**9), logs.append, [])
    small = min(c.bytes for c in candidates)
    monkeypatch.setattr(S, "BASE_OVERHEAD", 0)
    monkeypatch.setattr(S, "MEMBER_OVERHEAD", 0)
    with pytest.raises(S.ConfigError, match="nothing fits"):
        S.run_submit(config(runs, frame_data, tmp_path / "o", small + 1000), log=logs.append)
    assert any("over the limit" in m for m in logs), logs[-4:]
    assert not os.path.exists(tmp_path / "o" / "ensemble.keras")


def test_default_valid_comes_from_the_runs(tmp_path, monkeypatch):
    import json as _json
    from yt8m_kit.ensemble import candidates as submit_lib
    from yt8m_kit.errors import ConfigError as _ConfigError

    runs = []
    for name, valid in (("a", "v/validate*.tfrecord"), ("b", "v/validate*.tfrecord"), ("c", None)):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(_json.dumps({"schedule": {"valid": valid}}))
        runs.append(str(run))
    monkeypatch.setattr(submit_lib, "find_runs", lambda runs_dir: runs)
    assert default_valid(str(tmp_path)) == "v/validate*.tfrecord"

    (tmp_path / "c" / "run.json").write_text(_json.dumps({"schedule": {"valid": "other*.tfrecord"}}))
    with pytest.raises(_ConfigError, match="pass --valid PATTERN.*other"):
        default_valid(str(tmp_path))
