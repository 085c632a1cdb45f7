"""The paper's ablations at reduced scale, on generated frame-level data, several seeds.

    python bench/ablations.py --out /tmp/yt8m_ablations --seeds 0,1,2     # ~15 min on 2 cores

Each seed generates its own data (the demo's settings: 500 videos a split, 40 classes, videos of at
most 150 frames) and trains, with the demo's trainer settings (tiny variants, 400 steps of 32 videos,
32 frames sampled a video), the six sub-models M1..M6, vanilla NetVLAD, and three of them with the
frame L2 normalisation off. Then, scored on the validation split with the toolkit's own functions:

- Table 2 of the paper: the latest checkpoint against the average of the last 4, with the averaged
  batch-norm statistics (`average --no-bn-update`) and with them recomputed (the default);
- non-local against vanilla NetVLAD (lfnl_netvlad against netvlad, both averaged);
- Table 3: the plain mean of the growing ensembles M1, M1+M2, ..., M1..M6 (averaged checkpoints);
- Table 4: 1, 5 and 10 test-time repeats, the six-model ensemble and lfnl_netvlad alone;
- frame L2 normalisation on and off (lfnl_netvlad, soft_bof_4k, gru);
- non-local against vanilla NetVLAD again on data with relations (`synth --relations`: a label shows only
  as two kinds of frames in one video), same settings, its own data per seed.

Writes OUT/results.json and bench/ABLATIONS.md (mean, standard deviation over seeds and every seed's
value, with the commands). Each training is the CLI (`python -m yt8m_kit.train`), each average
`python -m yt8m_kit.average`, so the numbers are what a user's commands give.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from yt8m_kit.errors import cli_main  # noqa: E402
from yt8m_kit.fileio import atomic_open, write_json  # noqa: E402

PAPER = ["lfnl_netvlad", "lfnl_netrvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru"]  # M1..M6
L2_OFF = ["lfnl_netvlad", "soft_bof_4k", "gru"]
RELATIONAL = ["lfnl_netvlad", "netvlad"]
TRAIN = ["--steps", "400", "--batch-size", "32", "--frames", "32", "--lr-decay", "0.3", "--lr-decay-examples",
         "3200", "--checkpoint-every", "25", "--keep", "4", "--no-progress"]
FRAMES, KEEP = 32, 4
READING = "## Reading"  # a section of ABLATIONS.md written by hand, kept when the tables are rewritten


def _cli(args, log):
    cmd = [sys.executable, *args]
    log("  $ python " + " ".join(args))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def run_seed(out, seed, log):
    """Train, average and score everything for one seed; returns its rows."""
    from yt8m_kit.data import synth
    from yt8m_kit.evaluate import metrics
    from yt8m_kit.evaluate.predict_loop import evaluate_checkpoint
    from yt8m_kit.evaluate.prediction_files import load_predictions

    data = os.path.join(out, f"seed{seed}", "data")
    synth.generate(data, "frame", 500, seed, classes=40, max_frames=150, vocabulary=synth.shared_vocabulary())
    train, valid = os.path.join(data, "train*.tfrecord"), os.path.join(data, "validate*.tfrecord")
    runs = {}
    for name, extra in [(m, []) for m in PAPER + ["netvlad"]] + [(f"{m}+nol2", ["--set", "frame_l2=false"]) for m in L2_OFF]:
        run = os.path.join(out, f"seed{seed}", "runs", name)
        model = name.split("+")[0] + "_tiny"
        _cli(["-m", "yt8m_kit.train", "--model", model, "--train", train, "--out", run, "--seed", str(seed),
              *TRAIN, *extra], log)
        _cli(["-m", "yt8m_kit.average", run, "--last", str(KEEP), "--no-bn-update", "--out", os.path.join(run, "avg-no-bn")], log)
        _cli(["-m", "yt8m_kit.average", run, "--last", str(KEEP)], log)
        runs[name] = run

    def score(path, repeats=1, save=None, data=valid):
        return evaluate_checkpoint(path, data, seed=0, num_samples=FRAMES, repeats=repeats, save_predictions=save)["gap"]

    rel = os.path.join(out, f"seed{seed}", "relational")
    synth.generate(rel, "frame", 500, seed, classes=40, max_frames=150, vocabulary=synth.shared_vocabulary(),
                   relations=True)
    relational = {}
    for name in RELATIONAL:
        run = os.path.join(out, f"seed{seed}", "runs", f"{name}+relational")
        _cli(["-m", "yt8m_kit.train", "--model", name + "_tiny", "--train", os.path.join(rel, "train*.tfrecord"),
              "--out", run, "--seed", str(seed), *TRAIN], log)
        _cli(["-m", "yt8m_kit.average", run, "--last", str(KEEP)], log)
        relational[name] = score(run, data=os.path.join(rel, "validate*.tfrecord"))
        log(f"  seed {seed} {name} relational: {relational[name]:.4f}")

    rows = {"table2": {}, "l2": {}, "table3": [], "table4": {}, "relational": relational}
    for name, run in runs.items():
        latest = sorted(d for d in os.listdir(run) if d.startswith("ckpt-0"))[-1]
        rows["table2"][name] = {"latest": score(os.path.join(run, latest)),
                                "averaged": score(os.path.join(run, "avg-no-bn")),
                                "averaged_bn": score(run)}
        log(f"  seed {seed} {name}: {rows['table2'][name]}")
    preds = {}
    for repeats in (1, 5, 10):
        for name in PAPER:
            path = os.path.join(out, f"seed{seed}", "preds", f"{name}-r{repeats}.h5")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            g = score(runs[name], repeats=repeats, save=path)
            preds[name, repeats] = load_predictions(path)
            if name == "lfnl_netvlad":
                rows["table4"][f"lfnl_netvlad r{repeats}"] = g
    labels = preds["lfnl_netvlad", 1]["labels"]
    for k in range(1, len(PAPER) + 1):
        mean = np.mean([preds[m, 1]["scores"] for m in PAPER[:k]], axis=0)
        rows["table3"].append(metrics.gap(mean, labels))
    for repeats in (1, 5, 10):
        mean = np.mean([preds[m, repeats]["scores"] for m in PAPER], axis=0)
        rows["table4"][f"ensemble M1-M6 r{repeats}"] = metrics.gap(mean, labels)
    return rows


def _stat(values):
    v = np.asarray(values, float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.4f} ({', '.join(f'{x:.4f}' for x in v)})"


def write_markdown(path, results, seeds, args_text, seconds):
    per = [results[str(s)] for s in seeds]
    lines = ["# Ablations at reduced scale (generated data)", "",
             f"Written by `python bench/ablations.py {args_text}` on {time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, in {seconds / 60:.1f} min. "
             f"Seeds {', '.join(map(str, seeds))}: each generates its own data and trains every model "
             "(tiny variants, the demo's settings). Cells: mean ± standard deviation over seeds (each seed's "
             "value). Validation GAP@20 on 500 generated videos, 32 frames sampled a video.", "",
             "## Table 2: checkpoint averaging (last 4 checkpoints)", "",
             "| model | latest | averaged (BN statistics averaged) | averaged, BN recomputed |", "|---|---|---|---|"]
    for name in per[0]["table2"]:
        if "+" in name:
            continue
        cells = [_stat([r["table2"][name][k] for r in per]) for k in ("latest", "averaged", "averaged_bn")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Non-local against vanilla NetVLAD (averaged, BN recomputed)", "",
              "| model | GAP |", "|---|---|"]
    for name in ("lfnl_netvlad", "netvlad"):
        lines.append(f"| {name} | {_stat([r['table2'][name]['averaged_bn'] for r in per])} |")
    if all("relational" in r for r in per):
        diff = np.array([r["relational"]["lfnl_netvlad"] - r["relational"]["netvlad"] for r in per])
        se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
        lines += ["", "## Non-local against vanilla NetVLAD on data with relations (`synth --relations`; averaged, "
                  "BN recomputed)", "", "| model | GAP |", "|---|---|"]
        for name in RELATIONAL:
            lines.append(f"| {name} | {_stat([r['relational'][name] for r in per])} |")
        lines.append(f"| lfnl_netvlad - netvlad (paired by seed) | {diff.mean():+.4f} ± {se:.4f} (standard error over "
                     f"{diff.size} seeds; each seed: {', '.join(f'{d:+.4f}' for d in diff)}) |")
    lines += ["", "## Table 3: growing ensembles (plain mean of averaged checkpoints, 1 repeat)", "",
              "| ensemble | GAP |", "|---|---|"]
    for k in range(len(PAPER)):
        label = f"M1 ({PAPER[0]})" if k == 0 else f"M1..M{k + 1} (+{PAPER[k]})"
        lines.append(f"| {label} | {_stat([r['table3'][k] for r in per])} |")
    lines += ["", "## Table 4: test-time repeats (random frame sub-samples averaged)", "", "| model | GAP |", "|---|---|"]
    for key in per[0]["table4"]:
        lines.append(f"| {key} | {_stat([r['table4'][key] for r in per])} |")
    lines += ["", "## Frame L2 normalisation (averaged, BN recomputed)", "", "| model | on | off |", "|---|---|---|"]
    for name in L2_OFF:
        on = _stat([r["table2"][name]["averaged_bn"] for r in per])
        off = _stat([r["table2"][f"{name}+nol2"]["averaged_bn"] for r in per])
        lines.append(f"| {name} | {on} | {off} |")
    reading = ""
    if os.path.isfile(path):  # the hand-written reading of the tables survives a rerun
        text = open(path).read()
        if READING in text:
            reading = "\n" + text[text.index(READING):]
    with atomic_open(path) as f:
        f.write("\n".join(lines) + "\n" + reading)


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/yt8m_ablations", help="work folder (data, runs, predictions)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--markdown", default=os.path.join(ROOT, "bench", "ABLATIONS.md"), help="where to write the tables")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results = {}
    path = os.path.join(a.out, "results.json")
    if os.path.isfile(path):
        with open(path) as f:
            results = json.load(f)  # resume: seeds already done are kept
    for seed in seeds:
        if str(seed) in results:
            continue
        log(f"seed {seed}")
        t0 = time.time()
        results[str(seed)] = run_seed(a.out, seed, log)
        results.setdefault("seconds", {})[str(seed)] = round(time.time() - t0, 1)
        write_json(path, results)
    seconds = sum(results.get("seconds", {}).values())
    write_markdown(a.markdown, results, seeds, " ".join(argv if argv is not None else sys.argv[1:]), seconds)
    print(open(a.markdown).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
