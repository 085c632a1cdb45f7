"""mix_nextvlad_tiny on generated frame-level data: the mixture against its own branches, against the same
mixture without distillation, and against one branch-sized NeXtVLAD trained alone (paired bootstrap).

    python bench/mix_nextvlad.py [--videos 1000] [--steps 1000] [--lr LR] [--seeds 0 1 2] [--out /tmp/yt8m_mix]

Data: `synth.generate(OUT/data, "frame", VIDEOS, seed=0, classes=50, max_frames=40)` (Zipf frequencies),
trained on its train split, scored on its validate split (every run sees the same validation videos
with the same 16 sampled frames each, so differences are paired). Each run: `python -m yt8m_kit.train
--model NAME --steps STEPS --batch-size 16 --frames 16 --seed S` at the tiny models' rate (5e-3).
Variants: the registered mixture (lambda 9, T 3), lambda 0 (branch BCEs and the gate only), the authors'
flag defaults (lambda 1, T 2), and `nextvlad_tiny` at the branches' size (expansion 0.125, groups 2).
Prints one line per seed (JSON) and a Markdown table (GAP, and paired differences +- bootstrap SE), then the
mean of the single runs over the seeds (as many parameters as one mixture, trained independently)
against each mixture.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

VARIANTS = {
    "mix (lambda 9, T 3)": ("mix_nextvlad_tiny", []),
    "mix, lambda 0": ("mix_nextvlad_tiny", ["--set", "distill_weight=0"]),
    "mix, lambda 1, T 2": ("mix_nextvlad_tiny", ["--set", "distill_weight=1", "--set", "temperature=2"]),
    "single nextvlad_tiny": ("nextvlad_tiny", ["--set", "expansion=0.125", "--set", "groups=2"]),
}


def _scores(model, valid):
    from yt8m_kit.evaluate.predict_loop import predict_batches

    parts = list(predict_batches(model, valid, num_samples=16))
    return np.concatenate([p for _, p, _ in parts]), np.concatenate([y for _, _, y in parts])


def run(args):
    import keras

    from yt8m_kit.data import synth
    from yt8m_kit.evaluate import bootstrap
    from yt8m_kit.evaluate.metrics import gap
    from yt8m_kit.train import checkpoint as ck

    data = os.path.join(args.out, f"data{args.videos}")  # runs and data are reused only at the same sizes
    if not os.path.exists(os.path.join(data, "summary.json")):
        synth.generate(data, "frame", args.videos, seed=0, shards=2, classes=50, vocabulary=None, max_frames=40)
    valid = os.path.join(data, "validate*.tfrecord")
    rows, singles, mixtures = {}, [], []
    for seed in args.seeds:
        scored = {}  # variant -> (mixture or model scores, [branch scores])
        for name, (model_name, extra) in VARIANTS.items():
            run_dir = os.path.join(args.out, f"v{args.videos}_n{args.steps}_lr{args.lr}_{model_name}_"
                                             f"{'_'.join(extra).replace('=', '')}_s{seed}")
            subprocess.run([sys.executable, "-m", "yt8m_kit.train", "--model", model_name,
                            "--train", os.path.join(data, "train*.tfrecord"), "--out", run_dir,
                            "--steps", str(args.steps), "--batch-size", "16", "--frames", "16", "--seed", str(seed),
                            "--checkpoint-every", str(args.steps), "--no-progress",
                            *(["--lr", str(args.lr)] if args.lr else []), *extra],
                           check=True, stdout=subprocess.DEVNULL)
            model, _ = ck.load_model(run_dir)
            scores, labels = _scores(model, valid)
            branches = []
            if model_name.startswith("mix"):
                for b in range(3):
                    logits = model.get_layer(f"branch{b}_logits").output
                    branch = keras.Model(model.inputs, keras.layers.Activation("sigmoid", dtype="float32")(logits))
                    branches.append(_scores(branch, valid)[0])
            scored[name] = (scores, branches)
            keras.backend.clear_session()
        n, c = labels.shape
        keys = np.flatnonzero(labels.ravel() > 0).astype(np.int64)
        positives = bootstrap.positives_per_video(keys, n, c)
        names = list(scored)
        singles.append(scored["single nextvlad_tiny"][0])
        mixtures.append(scored[names[0]][0])
        flat = [scored[k][0] for k in names]
        main_branches = scored[names[0]][1]
        rankings = [bootstrap.Ranking.of_scores(s, keys) for s in flat + main_branches]
        draws = bootstrap.resample_gaps(rankings, positives, resamples=200, seed=seed)
        gaps = [gap(s, labels) for s in flat + main_branches]
        best = len(flat) + int(np.argmax(gaps[len(flat):]))

        def paired(i, j):
            return gaps[i] - gaps[j], bootstrap.standard_error(draws[:, i] - draws[:, j])

        row = {"gaps": dict(zip(names, gaps)), "branches": gaps[len(flat):],
               "mix - best branch": paired(0, best),
               "mix - lambda 0": paired(0, names.index("mix, lambda 0")),
               "mix - lambda 1": paired(0, names.index("mix, lambda 1, T 2")),
               "mix - single": paired(0, names.index("single nextvlad_tiny")),
               "lambda 0 - single": paired(names.index("mix, lambda 0"), names.index("single nextvlad_tiny")),
               "lambda 0 branches": [gap(s, labels) for s in scored["mix, lambda 0"][1]]}
        lam0 = scored["mix, lambda 0"][1]
        r0 = [bootstrap.Ranking.of_scores(s, keys) for s in [scored["mix, lambda 0"][0], *lam0]]
        d0 = bootstrap.resample_gaps(r0, positives, resamples=200, seed=seed)
        g0 = [gap(s, labels) for s in [scored["mix, lambda 0"][0], *lam0]]
        b0 = 1 + int(np.argmax(g0[1:]))
        row["lambda 0 - its best branch"] = (g0[0] - g0[b0], bootstrap.standard_error(d0[:, 0] - d0[:, b0]))
        rows[seed] = row
        print(f"seed {seed}: " + json.dumps(row, default=float), flush=True)

    def fmt(x):
        return f"{x[0]:+.4f} ± {x[1]:.4f}"

    print("\n| seed | " + " | ".join(names) + " | mix branches | mix − best branch | mix − λ0 | mix − single "
          "| λ0 − its best branch |")
    print("|---" * (len(names) + 6) + "|")
    for seed, row in rows.items():
        print(f"| {seed} | " + " | ".join(f"{row['gaps'][k]:.4f}" for k in names)
              + " | " + ", ".join(f"{g:.4f}" for g in row["branches"])
              + f" | {fmt(row['mix - best branch'])} | {fmt(row['mix - lambda 0'])} | {fmt(row['mix - single'])}"
              + f" | {fmt(row['lambda 0 - its best branch'])} |")
    if len(singles) > 1:  # the same parameters spent on independent runs: the mean of the seeds' singles
        mean = np.mean(singles, axis=0)
        rankings = [bootstrap.Ranking.of_scores(s, keys) for s in [mean, *mixtures]]
        draws = bootstrap.resample_gaps(rankings, positives, resamples=200, seed=0)
        print(f"\nmean of the {len(singles)} independent single runs: GAP {gap(mean, labels):.4f}")
        for seed, (i, m) in zip(rows, enumerate(mixtures)):
            print(f"mix (seed {seed}) - that mean: {gap(m, labels) - gap(mean, labels):+.4f} ± "
                  f"{bootstrap.standard_error(draws[:, i + 1] - draws[:, 0]):.4f}")


def main(argv=None):
    from yt8m_kit.runtime import configure_process

    configure_process()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000, help="generated videos per split (default 1000)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps at batch 16 (default 1000)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of every run (default: the tiny models' registered 5e-3)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--out", default="/tmp/yt8m_mix", help="data and run directories (default /tmp/yt8m_mix)")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
