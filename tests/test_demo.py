"""The demo's closing summary: each model's latest checkpoint beside its average, rows where the
average falls below flagged with the amount, and the evaluate command that reproduces the scores."""

from yt8m_kit.demo import print_summary


def test_summary_shows_latest_beside_averaged_and_how_to_reproduce(capsys, tmp_path):
    runs = tmp_path / "demo_out" / "runs"
    summary = {
        "out": str(tmp_path / "demo_out"), "frames": 32, "seed": 0,
        "data": {"files": 6, "videos": 1500, "level": "frame", "version": 2018, "corrupt": []},
        "models": {
            "soft_bof_4k": {"run": str(runs / "soft_bof_4k"), "checkpoint_gaps": [0.50, 0.55, 0.60],
                            "mean_checkpoint_gap": 0.55, "latest_gap": 0.60, "averaged_gap": 0.61},
            "gru": {"run": str(runs / "gru"), "checkpoint_gaps": [0.40, 0.45, 0.48],
                    "mean_checkpoint_gap": 0.4433, "latest_gap": 0.48, "averaged_gap": 0.47,
                    "bn_update": {"skipped": "the model has no batch norm"}},
        },
        "plan": {"budget_bytes": 2_000_000, "total_bytes": 1_000_000, "artifact_bytes": 1_050_000,
                 "validation_gap": 0.65, "members": [],
                 "heldout": {"videos": 250, "gap": 0.64, "se": 0.01, "best_member_gap": 0.61, "margin": 0.03,
                             "margin_se": 0.005}},
        "csv_metrics": {"gap": 0.66, "hit_at_1": 0.9, "perr": 0.6, "map": 0.5, "videos": 500},
        "timings": [("x", 60.0)], "wall_seconds": 90.0,
        "commands": {"plan": "python submit.py --budget 2MB --runs demo_out/runs",
                     "csv": "python -m yt8m_kit.evaluate --predictions demo_out/validate.csv"},
    }
    print_summary(summary)
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("soft_bof_4k", "gru"))}
    assert "0.6000    0.6100" in lines["soft_bof_4k"] and "below" not in lines["soft_bof_4k"]
    assert "0.4800    0.4700" in lines["gru"] and "(below the latest by 0.0100; the model has no batch norm)" in lines["gru"]
    assert "python -m yt8m_kit.evaluate --checkpoint" in out and "--num-samples 32 --seed 0" in out
    assert "these reproduce with: python submit.py --budget 2MB" in out  # the plan's scores
    assert "this reproduces with: python -m yt8m_kit.evaluate --predictions" in out  # the CSV's
    assert "total time 1.5 min of wall clock (1.0 min in the commands, 0.5 min scoring" in out  # all of it
    assert "held out from every choice (250 videos): GAP 0.6400" in out and "margin +0.0300" in out


def test_demo_data_does_not_depend_on_a_shared_folder(tmp_path, monkeypatch):
    """The demo generates with a Zipf law whatever sits beside the clone (here ../shared has the real
    vocabulary), so every clone gets the README's numbers."""
    import json

    from yt8m_kit import demo
    from yt8m_kit.data import synth

    calls = []

    def first_stage_only(self, title, args, capture_json=False):
        calls.append([str(a) for a in args])
        raise RuntimeError("stop after the first stage")

    monkeypatch.setattr(demo.Stage, "run", first_stage_only)
    try:
        demo.run_demo(str(tmp_path / "d"))
    except RuntimeError:
        pass
    args = calls[0]
    assert args[:2] == ["-m", "yt8m_kit.synth"] and args[args.index("--vocabulary") + 1] == "zipf"
    assert synth.main(["--out", str(tmp_path / "z"), "--level", "video", "--videos", "3", "--shards", "1",
                       "--vocabulary", "zipf"]) == 0
    assert json.load(open(tmp_path / "z" / "summary.json"))["vocabulary"] == "zipf"
