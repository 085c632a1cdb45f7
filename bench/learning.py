"""Learning speed of the frame-level models, before against after a change: validation GAP against steps.

    python bench/learning.py --before /tmp/yt8m_before --out /tmp/yt8m_learning      # ~70 min on 2 cores

`--before` and `--after` are checkouts of the two commits (`git worktree add /tmp/yt8m_before COMMIT`;
--after defaults to this checkout: give a worktree when you edit this one meanwhile). Both train the same models from the same generated frame-level data
(`yt8m_kit.synth`: 2,000 videos a split, 100 classes, at most 150 frames), with the same command line
(`python -m yt8m_kit.train`, batch 32, 32 frames sampled a video, the registered learning rate,
`--valid-every 250` on 1,000 validation videos) and the same `--set` widths, which both commits accept:
the widths are the largest at which 42 runs of 2,000 steps fit a session on this 2-core machine (the
paper's widths take ~1 s a step here). The validation GAP is the trainer's own, in inference mode (moving
batch-norm statistics), read from the run's TensorBoard log. Two runs at a time, one thread each.

Writes OUT/results.jsonl (one line a run, appended as runs end: an interrupted bench keeps what it has,
and a rerun skips the runs already there) and bench/LEARNING.md.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["lfnl_netvlad", "lfnl_netrvlad", "netvlad", "efnl_netvlad", "soft_bof_4k", "soft_bof_8k", "gru"]
# The tiny variants' architecture, widened: the keys exist before and after the scales change.
WIDTHS = {
    "lfnl_netvlad": ["num_clusters=16", "audio_clusters=8", "hidden_size=64"],
    "lfnl_netrvlad": ["num_clusters=16", "audio_clusters=8", "hidden_size=64"],
    "netvlad": ["num_clusters=16", "audio_clusters=8", "hidden_size=64"],
    "efnl_netvlad": ["num_clusters=16", "hidden_size=64"],
    "soft_bof_4k": ["num_clusters=256", "hidden_size=64"],
    "soft_bof_8k": ["num_clusters=512", "hidden_size=64"],
    "gru": ["units=64"],
}
STEPS, EVERY = 2000, 250
TRAIN = ["--batch-size", "32", "--frames", "32", "--valid-every", str(EVERY), "--checkpoint-every", "1000",
         "--keep", "1", "--no-progress"]


def read_gaps(run_dir):
    """{step: valid GAP} from the run's TensorBoard events."""
    import tensorflow as tf

    gaps = {}
    for path in glob.glob(os.path.join(run_dir, "logs", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "valid/gap":
                    gaps[int(event.step)] = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                        else float(value.simple_value)
    return gaps


def run_one(code, label, model, seed, data, out):
    run_dir = os.path.join(out, "runs", f"{label}-{model}-s{seed}")
    if os.path.isdir(run_dir):
        subprocess.run(["rm", "-rf", run_dir], check=True)
    sets = [x for w in WIDTHS[model] for x in ("--set", w)]
    cmd = [sys.executable, "-m", "yt8m_kit.train", "--model", f"{model}_tiny", "--train",
           os.path.join(data, "train*.tfrecord"), "--valid", os.path.join(data, "validate0000.tfrecord"),
           "--out", run_dir, "--steps", str(STEPS), "--seed", str(seed), *TRAIN, *sets]
    env = dict(os.environ, PYTHONPATH=code, TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    t = time.time()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    row = {"label": label, "model": model, "seed": seed, "commit": COMMITS[label], "gaps": read_gaps(run_dir),
           "seconds": round(time.time() - t, 1), "command": "python " + " ".join(cmd[1:])}
    if proc.returncode:  # recorded, not raised: the other runs go on
        row["error"] = proc.stderr[-2000:]
    return row


def _stat(values):
    import numpy as np

    v = np.asarray(values, float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"


def kept_rows(path):
    """{(model, label): (commit, table cells, step-500 values)} of the markdown already at `path`: the rows a
    rerun of one side (--labels) keeps. Tables written before the commit column name the commits in the
    header ("Before: commit X; after: commit Y")."""
    if not os.path.isfile(path):
        return {}
    text = open(path, encoding="utf-8").read()
    header = {k: v for k, v in re.findall(r"(Before|after): commit (\w+)", text.split("\n| model", 1)[0])}
    commits = {"before": header.get("Before", "?"), "after": header.get("after", "?")}
    has_commit = "| code | commit |" in text
    kept, seeds = {}, {}
    for line in text.splitlines():
        m = re.match(r"- (\w+): ([^;]*); ?(.*)$", line)
        if m:
            seeds[(m.group(1), "before")], seeds[(m.group(1), "after")] = m.group(2).strip(), m.group(3).strip()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[1] in ("before", "after") and cells[0] in MODELS:
            model, label = cells[0], cells[1]
            if has_commit:
                kept[(model, label)] = (cells[2], cells[3:], seeds.get((model, label), ""))
            else:
                kept[(model, label)] = (commits[label], cells[2:], seeds.get((model, label), ""))
    return kept


def write_markdown(path, rows, args, seconds):
    kept = kept_rows(path)
    steps = sorted({int(s) for r in rows for s in r["gaps"]}) or list(range(EVERY, STEPS + 1, EVERY))
    lines = ["# Learning speed: validation GAP against steps, before and after the scales change (issue 24)", "",
             f"Last written by `python bench/learning.py {args}` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
             f"{os.cpu_count()} cores, in {seconds / 60:.0f} min; the rows it did not run are kept from the file "
             "before (each row names the commit that ran it: before = the commit before the scales change). "
             "Generated frame-level data (2,000 training videos, 100 classes); each model the tiny "
             "variant widened with the same `--set` on both sides (" + "; ".join(
                 f"{m}: {' '.join(w)}" for m, w in WIDTHS.items()) + "), batch 32, 32 frames a video, the "
             "registered learning rate. Cells: validation GAP@20 on 1,000 videos (inference mode, the moving "
             "batch-norm statistics), mean ± standard deviation over the seeds; n = seeds that finished.", ""]
    lines += ["| model | code | commit | n | " + " | ".join(f"step {s}" for s in steps) + " |",
              "|---|---|---|---|" + "---|" * len(steps)]
    per_seed = {}
    for model in MODELS:
        for label in ("before", "after"):
            got = sorted((r for r in rows if r["model"] == model and r["label"] == label and "error" not in r),
                         key=lambda r: r["seed"])
            if got:
                cells = [_stat([r["gaps"][str(s)] if str(s) in r["gaps"] else r["gaps"][s] for r in got
                                if str(s) in r["gaps"] or s in r["gaps"]]) for s in steps]
                commit = ",".join(sorted({r.get("commit", COMMITS[label]) for r in got}))
                lines.append(f"| {model} | {label} | {commit} | {len(got)} | " + " | ".join(cells) + " |")
                per_seed[(model, label)] = ", ".join(
                    f"{(r['gaps'].get('500') or r['gaps'].get(500)):.4f}" for r in got)
            elif (model, label) in kept:
                commit, cells, seeds = kept[(model, label)]
                lines.append(f"| {model} | {label} | {commit} | " + " | ".join(cells) + " |")
                per_seed[(model, label)] = seeds
    lines += ["", "Every seed's value at step 500 (before; after):", ""]
    for model in MODELS:
        lines.append(f"- {model}: {per_seed.get((model, 'before'), '')}; {per_seed.get((model, 'after'), '')}")
    text = "\n".join(lines) + "\n"
    if os.path.isfile(path) and READING in open(path, encoding="utf-8").read():
        text += "\n" + open(path, encoding="utf-8").read().split(READING, 1)[1].join([READING, ""])
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


READING = "## Reading"
COMMITS = {"before": "?", "after": "?"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="checkout of the commit to compare with")
    p.add_argument("--after", default=ROOT, help="checkout of the commit after the change (default: this one)")
    p.add_argument("--out", default="/tmp/yt8m_learning", help="work folder")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--markdown", default=os.path.join(ROOT, "bench", "LEARNING.md"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the markdown from results.jsonl")
    p.add_argument("--labels", default="before,after",
                   help="the sides to run (e.g. `after` once the change moved on: the markdown keeps the other rows)")
    a = p.parse_args(argv)
    for label, code in (("before", a.before), ("after", a.after)):
        COMMITS[label] = subprocess.run(["git", "-C", code, "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True).stdout.strip() or "?"
    labels = a.labels.split(",")
    os.makedirs(a.out, exist_ok=True)
    results = os.path.join(a.out, "results.jsonl")
    rows = [json.loads(line) for line in open(results)] if os.path.isfile(results) else []
    t0 = time.time()
    if not a.markdown_only:
        data = os.path.join(a.out, "data")
        if not os.path.isfile(os.path.join(data, "summary.json")):
            subprocess.run([sys.executable, "-m", "yt8m_kit.synth", "--out", data, "--level", "frame", "--videos",
                            "2000", "--classes", "100", "--max-frames", "150", "--seed", "0"], cwd=ROOT, check=True,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        for label, code in (("before", a.before), ("after", a.after)):  # finished runs whose row was not written
            if label not in labels:
                continue
            for m in a.models.split(","):
                for s in map(int, a.seeds.split(",")):
                    run_dir = os.path.join(a.out, "runs", f"{label}-{m}-s{s}")
                    if os.path.isdir(os.path.join(run_dir, f"ckpt-{STEPS:08d}")) and not any(
                            (r["label"], r["model"], r["seed"]) == (label, m, s) for r in rows):
                        rows.append({"label": label, "model": m, "seed": s, "gaps": read_gaps(run_dir),
                                     "seconds": None, "recovered": True})
                        with open(results, "a") as f:
                            f.write(json.dumps(rows[-1]) + "\n")
        done = {(r["label"], r["model"], r["seed"]) for r in rows if "error" not in r}
        rows = [r for r in rows if "error" not in r]
        jobs = [(code, label, m, s) for s in map(int, a.seeds.split(",")) for m in a.models.split(",")
                for code, label in ((a.before, "before"), (a.after, "after")) if (label, m, s) not in done
                and label in labels]
        with concurrent.futures.ThreadPoolExecutor(a.workers) as pool:
            futures = [pool.submit(run_one, code, label, m, s, data, a.out) for code, label, m, s in jobs]
            for fut in concurrent.futures.as_completed(futures):
                row = fut.result()
                rows.append(row)
                with open(results, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{row['label']} {row['model']} seed {row['seed']}: {row['gaps']} ({row['seconds']} s)"
                      + (f" FAILED: {row['error'][-300:]}" if "error" in row else ""), flush=True)
                write_markdown(a.markdown, rows, " ".join(argv or sys.argv[1:]), time.time() - t0)
    write_markdown(a.markdown, rows, " ".join(argv or sys.argv[1:]), time.time() - t0)


if __name__ == "__main__":
    main()
