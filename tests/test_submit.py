"""submit.py end to end on two tiny runs: budgets, the artifact, the cache, a fresh-process load."""

import json
import os
import subprocess
import sys
import tarfile

import keras
import numpy as np
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
    """The artifact, loaded in a new process and run as inference runs it (10 repeats, seed 0), scores
    the plan's GAP on the videos that chose it, and the held-out GAP on the others."""
    code = ("import sys; from yt8m_kit.ensemble.artifact import load_ensemble; from yt8m_kit.evaluate.predict_loop import predict_batches; "
            "from yt8m_kit.evaluate.metrics import gap; from yt8m_kit.ensemble.noise import split_videos; import numpy as np\n"
            "m = load_ensemble(sys.argv[1]); i, s, l = [], [], []\n"
            "for ids, scores, labels in predict_batches(m, sys.argv[2], repeats=10, seed=0):\n"
            "    i += list(ids); s.append(scores); l.append(labels)\n"
            "s, l = np.concatenate(s), np.concatenate(l); choose, report = split_videos(i, 0.5)\n"
            "print(len(i), gap(s[choose], l[choose]), gap(s[report], l[report]))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code, os.path.join(cfg.out, "ensemble.keras"), cfg.valid],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos, choose_gap, report_gap = map(float, proc.stdout.split()[-3:])
    assert choose_gap == pytest.approx(result["validation_gap"], abs=1e-5)
    assert report_gap == pytest.approx(result["heldout"]["gap"], abs=1e-5)
    assert result["choice"]["videos"] > 0 and result["heldout"]["videos"] > 0
    assert result["choice"]["videos"] + result["heldout"]["videos"] == videos


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


def test_unlabelled_valid_records_are_refused_and_the_previous_artifact_kept(runs, frame_data, tmp_path, capsys):
    """`--valid` on test records (no labels): was every GAP 0.0000 and the artifact written over the previous."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "plan.json").write_text("{}")
    rc = submit_cli.main(["--budget", "1GB", "--runs", str(runs), "--valid", str(frame_data / "test*.tfrecord"),
                          "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "has a label (test records?): plans are scored on labelled validation records" in err, err
    assert (out / "plan.json").read_text() == "{}"


def test_a_run_without_checkpoint_is_named_and_a_run_of_an_unknown_model_is_refused_naming_it(frame_data, tmp_path,
                                                                                                capsys):
    """Were: the first skipped without a word, the second refused without naming the run."""
    root = tmp_path / "runs"
    (root / "empty").mkdir(parents=True)
    ckpt_lib.save_checkpoint(str(root / "odd"), 10, create_model(MODELS[0]),
                             {"model": MODELS[0], "overrides": {}, "level": "frame"})
    meta = root / "odd" / "ckpt-00000010" / ckpt_lib.MODEL_JSON
    meta.write_text(meta.read_text().replace(f'"{MODELS[0]}"', '"no_such_model"'))
    rc = submit_cli.main(["--budget", "1GB", "--runs", str(root), "--valid", str(frame_data / "validate*.tfrecord"),
                          "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert f"skipping {root / 'empty'}: no checkpoint in it" in err
    assert rc == 2 and f"run {root / 'odd'}: cannot build model 'no_such_model'" in err, err
    assert "unknown model 'no_such_model'" in err


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


def test_artifact_names_runs_relatively_and_counts_its_weights(big, runs):
    cfg, result, _, _ = big
    with open(os.path.join(cfg.out, "ensemble.json")) as f:
        text = f.read()
    assert str(runs) not in text and os.path.abspath(REPO) not in text  # nothing absolute
    members = json.loads(text)["members"]
    assert {m["run"] for m in members} <= set(MODELS)
    assert all(m["checkpoint"].split(os.sep)[0] == m["run"] for m in members)
    from yt8m_kit.ensemble.artifact import ensemble_members, load_ensemble

    model = load_ensemble(os.path.join(cfg.out, "ensemble.keras"))
    expected = sum(layer.member().count_params() for layer in ensemble_members(model))
    assert expected > 0 and model.count_params() == expected
    assert len(model.weights) == sum(len(layer.member().weights) for layer in ensemble_members(model))
    assert [layer.run for layer in ensemble_members(model)] == [m["run"] for m in members]


def test_submit_plans_with_inference_defaults():
    from yt8m_kit.kaggle import inference_job

    planned = submit_cli.build_parser().parse_args(["--budget", "1GB"])
    inferred = inference_job.build_parser().parse_args(["--model", "m", "--input", "x"])
    assert planned.repeats == inference_job.resolve_repeats(inferred.repeats, inferred.all_frames) == 10
    assert planned.num_samples == inferred.num_samples == 300
    assert (S.SubmitConfig(1, "x").repeats, S.SubmitConfig(1, "x").num_samples) == (10, 300)


def test_plan_png_shows_the_plans_when_the_budget_is_far(tmp_path):
    from yt8m_kit.ensemble.search import Plan
    from yt8m_kit.ensemble.summary import plot_plans

    plans = [Plan((0,), 2**20, 0.5), Plan((0, 1), 2 * 2**20, 0.6)]
    left, right = plot_plans(str(tmp_path / "far.png"), plans, plans[1], budget=2**30)
    assert right < 3  # MiB: the plans fill the axis; the 1 GiB budget is marked at the edge
    left, right = plot_plans(str(tmp_path / "near.png"), plans, plans[1], budget=int(2.5 * 2**20))
    assert right >= 2.5


KILLER = """
import os, sys, runpy
import yt8m_kit.fileio as F
target, count = os.environ["KILL_AT"], [0]
real_replace, real_exchange = os.replace, F.exchange_paths
def replace(a, b):
    real_replace(a, b)
    count[0] += 1
    if target == str(count[0]):
        os._exit(9)  # as a SIGKILL would: no cleanup, no finally
def exchange(a, b):
    done = real_exchange(a, b)
    if target == "exchange":
        os._exit(9)
    return done
os.replace, F.exchange_paths = replace, exchange
sys.argv = ["submit.py"] + sys.argv[1:]
runpy.run_path("submit.py", run_name="__main__")
"""


def test_killed_submit_leaves_one_consistent_set(big, runs, tmp_path):
    """submit.py killed after its first and third file writes, and right after the directory swap:
    the output directory always holds one complete set (old or new) that inference accepts, and the
    leftovers of the killed run are removed by the next one."""
    import shutil

    from yt8m_kit.ensemble.artifact import check_artifact

    cfg = big[0]
    out = tmp_path / "submission"
    shutil.copytree(cfg.out, out)
    old = check_artifact(str(out))["sha256"]
    argv = ["--budget", "1GB", "--runs", str(runs), "--valid", cfg.valid, "--out", str(out), "--precisions", "int8"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    seen = []
    for point in ("1", "3", "exchange"):
        proc = subprocess.run([sys.executable, "-c", KILLER] + argv, capture_output=True, text=True, cwd=REPO,
                              env=dict(env, KILL_AT=point))
        assert proc.returncode == 9, proc.stderr[-2000:]
        plan = check_artifact(str(out))  # raises on a mixed set
        assert sorted(os.listdir(out)) == sorted(S.ARTIFACT_FILES)
        seen.append(plan["sha256"])
    assert seen[:2] == [old, old]  # killed before the swap: the old set, untouched
    assert seen[2] != old and {m["precision"] for m in json.load(open(out / "plan.json"))["members"]} == {"int8"}
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert leftovers  # the killed run's old directory, never renamed back
    proc = subprocess.run([sys.executable, "submit.py"] + argv, capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_inference_refuses_a_mixed_set(big, runs, frame_data, tmp_path):
    import shutil

    from yt8m_kit.errors import ConfigError
    from yt8m_kit.kaggle.inference_job import load_artifact

    cfg = big[0]
    other = tmp_path / "other"
    S.run_submit(config(runs, frame_data, other, 10**9, precisions=("bfloat16",)), log=lambda m: None)
    for name in ("ensemble.keras", "plan.json", "model.tgz"):
        mixed = tmp_path / f"mixed-{name}"
        shutil.copytree(cfg.out, mixed)
        shutil.copy(other / name, mixed / name)
        with pytest.raises(ConfigError, match="different submit.py runs"):
            load_artifact(str(mixed))
        with pytest.raises(ConfigError, match="different submit.py runs"):
            load_artifact(str(mixed / "ensemble.keras"))
    model, described, plan = load_artifact(cfg.out)  # the consistent set loads
    assert plan["sha256"] == big[1]["sha256"] and "ensemble" in described


def test_fit_weights_records_the_fit_and_the_check(runs, frame_data, tmp_path, monkeypatch):
    """--fit-weights end to end: plan.json records the fit and the check, and ensemble.json's averaging and
    the graph follow the decision. (The untrained members here all score GAP 0, so the plan is forced to
    hold both and the fit's outcome is set; the statistics are tested in test_noise.py.)"""
    from yt8m_kit.ensemble import noise, weighting
    from yt8m_kit.ensemble.artifact import ensemble_members, load_ensemble

    def both_float32(candidates, top, scorer, budget, overhead=0, z=2.0, seed=0):
        members = tuple(i for i, c in enumerate(candidates) if c.precision == "float32")
        return S.plan_lib.Plan(members, S.plan_lib.plan_bytes(candidates, members, overhead), 0.0), []

    monkeypatch.setattr(noise, "choose_within_noise", both_float32)
    seen = {}
    real_fit = weighting.fit

    def fit(members, scorer, **kw):
        seen["fit_videos"] = scorer.n
        real_fit(members, scorer, **kw)  # runs on the real half
        return {members[0]: 1.5, members[1]: 0.5}, 0.1

    monkeypatch.setattr(weighting, "fit", fit)
    for keep in (True, False):
        monkeypatch.setattr(weighting, "decide", lambda members, w, scorer, z=2.0, seed=0, keep=keep: {
            "keep": keep, "gap_mean": 0.0, "gap_weighted": 0.0, "diff": 0.0, "se": 0.0, "check_n": scorer.n})
        out = tmp_path / f"o{keep}"
        result = S.run_submit(config(runs, frame_data, out, 10**9, fit_weights=True), log=lambda m: None)
        record = result["weights"]
        assert record["keep"] is keep and record["weights"] == [1.5, 0.5]
        assert record["fit_videos"] == seen["fit_videos"] > 0 and record["check_videos"] == record["check_n"] > 0
        assert record["fit_videos"] + record["check_videos"] == result["choice"]["videos"]
        averaging = json.load(open(out / "ensemble.json"))["averaging"]
        model = load_ensemble(str(out / "ensemble.keras"))
        names = {layer.name for layer in model.layers}
        assert len(ensemble_members(model)) == 2
        if keep:
            assert averaging == {"weights": [1.5, 0.5]} and "weighted_mean" in names
        else:
            assert averaging == "mean" and "mean" in names and "weighted_mean" not in names


def test_the_3rd_place_models_go_through_average_submit_and_inference(frame_data, tmp_path, capsys):
    """nextvlad and mix_nextvlad (tiny) are runs like any other: trained, averaged (BN recomputed), planned
    in every precision, built into the one-graph ensemble, and run by inference.py to a complete CSV."""
    import csv

    import inference as inference_cli
    from yt8m_kit.average import main as average_main
    from yt8m_kit.train.cli import main as train_main

    runs = tmp_path / "runs"
    for name in ("nextvlad_tiny", "mix_nextvlad_tiny"):
        train_main(["--model", name, "--train", str(frame_data / "train*.tfrecord"), "--out", str(runs / name),
                    "--steps", "20", "--checkpoint-every", "10", "--batch-size", "8", "--frames", "8", "--no-progress"])
        assert average_main([str(runs / name), "--bn-batches", "4"]) == 0
    logs = []
    capsys.readouterr()  # what training and averaging printed
    plan = S.run_submit(config(runs, frame_data, tmp_path / "out", 10**9, repeats=2, num_samples=16,
                               report_fraction=0, noise_z=0), log=logs.append)
    assert sum("predict " in m for m in logs) == 6  # 2 runs x 3 precisions
    table = capsys.readouterr().out
    assert "\nmix_nextvlad_tiny  " in table and str(runs) not in table  # runs named as plan.json names them
    assert plan["members"] and {m["model"] for m in plan["members"]} <= {"nextvlad_tiny", "mix_nextvlad_tiny"}
    with open(tmp_path / "out" / "ensemble.json") as f:
        assert all(m["checkpoint"].endswith("ckpt-averaged") for m in json.load(f)["members"])
    out_csv = tmp_path / "sub.csv"
    assert inference_cli.main(["--model", str(tmp_path / "out"), "--input", str(frame_data / "test*.tfrecord"),
                               "--output", str(out_csv), "--repeats", "2", "--num-samples", "16", "--quiet"]) == 0
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(frame_data / "test_solution.csv", newline="") as f:
        assert len(rows) == len(list(csv.DictReader(f))) > 0
    assert all(len(r["LabelConfidencePairs"].split()) == 40 for r in rows)


def test_a_cached_prediction_file_of_another_class_count_is_named(tmp_path):
    """Was a ValueError traceback naming no file."""
    from yt8m_kit.ensemble.candidates import open_scores
    from yt8m_kit.errors import DataError
    from yt8m_kit.evaluate.prediction_files import save_predictions

    path = tmp_path / "float32-abc.h5"
    save_predictions(str(path), ["a", "b"], np.zeros((2, 4716), np.float32), labels=[[1], [2]])
    with pytest.raises(DataError, match=r"scores of shape \(2, 4716\) for 2 videos, not \(2, 3862\)") as e:
        open_scores(str(path), [], None)
    assert str(path) in str(e.value)
