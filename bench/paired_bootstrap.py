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


def paired_bootstrap(a, b, resamples=200, seed=0):
    """{"gap_a", "gap_b", "diff", "se_a", "se_b", "se_diff"} for prediction dicts a and b
    (yt8m_kit.evaluate.bootstrap: the same resamples of the videos for both)."""
    from yt8m_kit.evaluate import bootstrap
    from yt8m_kit.ensemble.search import label_keys

    if a["ids"] != b["ids"]:
        raise DataError("the two prediction files cover different videos (or another order)")
    labels = [np.unique(np.asarray(x, np.int64)) for x in a["labels"]]
    num_classes = a["scores"].shape[1]
    keys = label_keys(np.concatenate([[0], np.cumsum([x.size for x in labels])]),
                      np.concatenate(labels) if labels else np.zeros(0, np.int64), num_classes)
    positives = bootstrap.positives_per_video(keys, len(labels), num_classes)
    rankings = [bootstrap.Ranking.of_scores(p["scores"], keys) for p in (a, b)]
    draws = bootstrap.resample_gaps(rankings, positives, resamples, seed)
    gap_a, gap_b = (r.gap(positives) for r in rankings)
    return {"gap_a": gap_a, "gap_b": gap_b, "diff": gap_b - gap_a,
            "se_a": bootstrap.standard_error(draws[:, 0]), "se_b": bootstrap.standard_error(draws[:, 1]),
            "se_diff": bootstrap.standard_error(draws[:, 1] - draws[:, 0])}


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
