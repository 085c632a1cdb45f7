"""The built-in demo: the whole pipeline, end to end, on generated data (`make demo`).

Every stage runs the real command a user would type (synth, inspect, train, average,
evaluate, submit.py, inference.py, upload dry run), so the demo proves the commands, not a
shortcut around them. About 10 minutes on 2 cores.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (scoring runs in-process)

from yt8m_kit.errors import Yt8mError, cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open, read_json  # noqa: E402

# The paper's six sub-models, in their tiny variants (same architecture, < 1M parameters).
DEMO_MODELS = ("lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Stage:
    """Runs one command, shows it, times it, and keeps what it printed on stdout."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.timings = []
        self.shown = {}  # title -> the command as shown (python ...)

    def run(self, title, args, capture_json=False):
        cmd = [sys.executable] + [str(a) for a in args]
        shown = " ".join(shlex.quote(os.path.relpath(a, ROOT) if os.path.isabs(a) else a) for a in map(str, args))
        print(f"\n==> {title}\n    $ python {shown}", flush=True)
        self.shown[title] = f"python {shown}"
        start = time.perf_counter()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE if capture_json else None,
        )
        seconds = time.perf_counter() - start
        self.timings.append((title, seconds))
        if proc.returncode != 0:
            raise Yt8mError(f"demo stage '{title}' failed (exit {proc.returncode}): python {shown}")
        print(f"    done in {seconds:.1f}s", flush=True)
        if capture_json:
            return json.loads(proc.stdout)
        return None


def run_demo(out, videos=500, classes=40, steps=400, batch_size=32, keep=4, checkpoint_every=25, frames=32,
             max_frames=150, budget="2MB", seed=0):
    """Run the pipeline into `out`; return the summary dict it prints."""
    started = time.perf_counter()
    out = os.path.abspath(out)
    if os.path.exists(out):
        shutil.rmtree(out)
    data, runs, sub = (os.path.join(out, d) for d in ("data", "runs", "submission"))
    train_glob, valid_glob, test_glob = (os.path.join(data, f"{s}*.tfrecord") for s in ("train", "validate", "test"))
    stage = Stage(out)
    summary = {"out": out, "models": {}, "frames": frames, "seed": seed}

    stage.run("Generate frame-level data in the real YouTube-8M format",
              ["-m", "yt8m_kit.synth", "--out", data, "--level", "frame", "--videos", videos,
               "--seed", seed, "--classes", classes, "--max-frames", max_frames, "--vocabulary", "zipf"])
    summary["data"] = stage.run("Inspect it (every record's length and CRC)",
                                ["-m", "yt8m_kit.inspect", os.path.join(data, "*.tfrecord"), "--json"],
                                capture_json=True)

    from yt8m_kit.evaluate.predict_loop import evaluate_checkpoint  # the function behind `evaluate --checkpoint`

    for name in DEMO_MODELS:
        run_dir = os.path.join(runs, name)
        stage.run(f"Train {name}_tiny ({steps} steps, {frames} sampled frames per video)",
                  ["-m", "yt8m_kit.train", "--model", f"{name}_tiny", "--train", train_glob,
                   "--out", run_dir, "--steps", steps, "--batch-size", batch_size, "--frames", frames,
                   "--lr-decay", 0.3, "--lr-decay-examples", steps * batch_size // 4,
                   "--checkpoint-every", checkpoint_every, "--keep", keep, "--seed", seed,
                   "--valid", valid_glob, "--valid-every", steps,  # once, at the end: run.json records it for submit.py
                   "--no-progress"])
        stage.run(f"Average the last {keep} checkpoints of {name}",
                  ["-m", "yt8m_kit.average", run_dir, "--last", keep])
        print(f"    scoring {name}'s last {keep} checkpoints and their average on validation", flush=True)
        members = [evaluate_checkpoint(os.path.join(run_dir, c), valid_glob, seed=seed, num_samples=frames)["gap"]
                   for c in sorted(d for d in os.listdir(run_dir) if d.startswith("ckpt-0"))]
        averaged = evaluate_checkpoint(run_dir, valid_glob, seed=seed, num_samples=frames)["gap"]
        bn = read_json(os.path.join(run_dir, "ckpt-averaged", "model.json")).get("bn_update", {})
        print(f"    members {' '.join(f'{g:.4f}' for g in members)} -> averaged {averaged:.4f}", flush=True)
        print(f"    each reproduces with: python -m yt8m_kit.evaluate --checkpoint {os.path.relpath(run_dir)}"
              f"[/ckpt-N] --data '{os.path.relpath(valid_glob)}' --num-samples {frames} --seed {seed}", flush=True)
        summary["models"][name] = {
            "run": run_dir, "checkpoint_gaps": members,
            "mean_checkpoint_gap": sum(members) / len(members), "latest_gap": members[-1],
            "averaged_gap": averaged, "bn_update": bn,
        }

    plan_title = f"Plan the ensemble under a {budget} budget (python submit.py)"
    stage.run(plan_title,
              ["submit.py", "--budget", budget, "--runs", runs, "--valid", valid_glob, "--out", sub,
               "--num-samples", frames])
    with open(os.path.join(sub, "plan.json")) as f:
        summary["plan"] = json.load(f)

    csv_path = os.path.join(out, "submission.csv")
    stage.run("Inference with 10 repeats on the test split, upload dry run (python inference.py)",
              ["inference.py", "--model", sub, "--input", test_glob, "--repeats", 10,
               "--num-samples", frames, "--output", csv_path, "--seed", seed, "--dry-run"])
    valid_csv = os.path.join(out, "validate.csv")
    stage.run("The same ensemble on the validation split, to score the CSV path",
              ["inference.py", "--model", sub, "--input", valid_glob, "--repeats", 10,
               "--num-samples", frames, "--output", valid_csv, "--seed", seed])
    csv_title = "Score that CSV (python -m yt8m_kit.evaluate --predictions)"
    summary["csv_metrics"] = stage.run(csv_title,
                                       ["-m", "yt8m_kit.evaluate", "--predictions", valid_csv,
                                        "--data", valid_glob, "--json"], capture_json=True)
    summary["submission_csv"] = csv_path
    summary["timings"] = stage.timings
    summary["wall_seconds"] = time.perf_counter() - started  # the commands and the in-process scoring
    summary["commands"] = {"plan": stage.shown[plan_title], "csv": stage.shown[csv_title]}
    return summary


def print_summary(s):
    print("\n" + "=" * 78)
    print("Demo summary")
    print("=" * 78)
    d = s["data"]
    print(f"data: {d['files']} files, {d['videos']} videos, level {d['level']}, version {d['version']}, "
          f"corrupt records: {len(d['corrupt'])}")
    print(f"\n{'model (tiny)':<16}{'checkpoint GAPs (last K)':<34}{'latest':>8}{'averaged':>10}"
          "  (averaged: BN statistics recomputed)")
    for name, m in s["models"].items():
        gaps = " ".join(f"{g:.4f}" for g in m["checkpoint_gaps"])
        latest = m["checkpoint_gaps"][-1]
        gain = m["averaged_gap"] - latest
        bn = m.get("bn_update", {})
        why = f"BN recomputed on {bn['videos']} videos" if "videos" in bn else bn.get("skipped", "")
        flag = "" if gain >= 0 else f"  (below the latest by {-gain:.4f}; {why})"
        print(f"{name:<16}{gaps:<34}{latest:>8.4f}{m['averaged_gap']:>10.4f}{flag}")
    any_run = next(iter(s["models"].values()))["run"]
    valid = os.path.join(os.path.dirname(os.path.dirname(any_run)), "data", "validate*.tfrecord")
    print(f"each row reproduces with: python -m yt8m_kit.evaluate --checkpoint {os.path.relpath(os.path.dirname(any_run))}"
          f"/NAME[/ckpt-N] --data '{os.path.relpath(valid)}' --num-samples {s.get('frames', 32)} --seed {s.get('seed', 0)}")
    p = s["plan"]
    print(f"\nplan: budget {p['budget_bytes']:,} B, total {p['total_bytes']:,} B, artifact "
          f"{p['artifact_bytes']:,} B on disk, validation GAP {p['validation_gap']:.4f} (the videos that chose)")
    held = p.get("heldout")
    if held:
        print(f"  held out from every choice ({held['videos']} videos): GAP {held['gap']:.4f} \u00b1 {held['se']:.4f}, "
              f"best member alone {held['best_member_gap']:.4f}, margin {held['margin']:+.4f} \u00b1 {held['margin_se']:.4f}")
    for m in p["members"]:
        print(f"  member {m['model']:<22}{m['precision']:<10}{m['bytes']:>12,} B  GAP {m['gap']:.4f}")
    commands = s.get("commands", {})
    if "plan" in commands:
        print(f"these reproduce with: {commands['plan']}")
    c = s["csv_metrics"]
    print(f"\nensemble CSV on validation, 10 repeats: GAP {c['gap']:.4f}  Hit@1 {c['hit_at_1']:.4f}  "
          f"PERR {c['perr']:.4f}  mAP {c['map']:.4f}  ({c['videos']} videos)")
    if "csv" in commands:
        print(f"this reproduces with: {commands['csv']}")
    commands_s = sum(t for _, t in s["timings"])
    total = s.get("wall_seconds", commands_s)
    print(f"\nproduced under {s['out']}:")
    print("  data/         generated train/validate/test TFRecords (frame level)")
    print("  runs/NAME/    checkpoints, ckpt-averaged, TensorBoard logs, cached predictions")
    print("  submission/   ensemble.keras, ensemble.json, model.tgz, plan.json, plan.png")
    print("  submission.csv  Kaggle CSV for the test split (validated; upload dry run)")
    print(f"total time {total / 60:.1f} min of wall clock ({commands_s / 60:.1f} min in the commands, "
          f"{(total - commands_s) / 60:.1f} min scoring checkpoints in-process)")


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", help="output folder, replaced if it exists (default: demo_out)")
    p.add_argument("--videos", type=int, default=500, help="videos per split to generate (default: 500)")
    p.add_argument("--steps", type=int, default=400, help="training steps per model (default: 400)")
    p.add_argument("--budget", default="2MB", help="ensemble size budget (default: 2MB, which forces choices)")
    args = p.parse_args(argv)
    summary = run_demo(args.out, videos=args.videos, steps=args.steps, budget=args.budget)
    print_summary(summary)
    with atomic_open(os.path.join(args.out, "summary.json")) as f:
        json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
