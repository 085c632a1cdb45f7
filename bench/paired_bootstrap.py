"""GAP@20 of two prediction files on the same videos, their difference, and its standard error.

    python bench/paired_bootstrap.py A.h5 B.h5 [--resamples 200] [--seed 0]

The files are `evaluate --save-predictions` outputs (yt8m_kit.evaluate.prediction_files) over the same
labelled videos. The standard errors come from resampling videos with replacement, the same videos
for A and B in each resample (a paired bootstrap), with the toolkit's GAP (official tie order).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from yt8m_kit.errors import DataError, cli_main  # noqa: E402


def _top_pairs(pred):
    from yt8m_kit.evaluate import metrics

    idx, values = metrics.top_k(pred["scores"])
    rel = np.array([[c in set(labels.tolist()) for c in row] for row, labels in zip(idx, pred["labels"])])
    return idx, values, rel, np.array([len(set(x.tolist())) for x in pred["labels"]], np.int64)


def paired_bootstrap(a, b, resamples=200, seed=0):
    """{"gap_a", "gap_b", "diff", "se_a", "se_b", "se_diff"} for prediction dicts a and b."""
    from yt8m_kit.evaluate import metrics

    if a["ids"] != b["ids"]:
        raise DataError("the two prediction files cover different videos (or another order)")
    pa, pb = _top_pairs(a), _top_pairs(b)
    n, k = pa[0].shape

    def gap(p, rows):
        idx, values, rel, positives = p
        videos = np.repeat(np.arange(rows.size), k)
        return metrics.gap_of_pairs(videos, idx[rows].ravel(), values[rows].ravel(), rel[rows].ravel(),
                                    int(positives[rows].sum()))

    everything = np.arange(n)
    out = {"gap_a": gap(pa, everything), "gap_b": gap(pb, everything)}
    rng = np.random.default_rng(seed)
    draws = np.array([[gap(pa, rows), gap(pb, rows)] for rows in (rng.integers(0, n, n) for _ in range(resamples))])
    out.update(diff=out["gap_b"] - out["gap_a"], se_a=float(draws[:, 0].std(ddof=1)),
               se_b=float(draws[:, 1].std(ddof=1)), se_diff=float((draws[:, 1] - draws[:, 0]).std(ddof=1)))
    return out


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="prediction h5 of the first model (e.g. the latest checkpoint)")
    p.add_argument("b", help="prediction h5 of the second (e.g. the average)")
    p.add_argument("--resamples", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from yt8m_kit.evaluate.prediction_files import load_predictions

    r = paired_bootstrap(load_predictions(args.a), load_predictions(args.b), args.resamples, args.seed)
    print(f"A {r['gap_a']:.4f} ± {r['se_a']:.4f}   B {r['gap_b']:.4f} ± {r['se_b']:.4f}   "
          f"B - A {r['diff']:+.4f} ± {r['se_diff']:.4f}  ({args.resamples} paired resamples of the videos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
