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
                 "validation_gap": 0.65, "members": []},
        "csv_metrics": {"gap": 0.66, "hit_at_1": 0.9, "perr": 0.6, "map": 0.5, "videos": 500},
        "timings": [("x", 60.0)],
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
