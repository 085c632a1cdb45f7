"""GAP@20 of two prediction files on the same videos, their difference, and its standard error.

    python bench/paired_bootstrap.py A.h5 B.h5|B.csv [--resamples 200] [--seed 0]

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


def _labels(pred):
    """(sorted label keys row * C + class, positives per video, C) of a prediction dict."""
    from yt8m_kit.evaluate import bootstrap
    from yt8m_kit.ensemble.search import label_keys

    labels = [np.unique(np.asarray(x, np.int64)) for x in pred["labels"]]
    num_classes = pred["scores"].shape[1]
    keys = label_keys(np.concatenate([[0], np.cumsum([x.size for x in labels])]),
                      np.concatenate(labels) if labels else np.zeros(0, np.int64), num_classes)
    return keys, bootstrap.positives_per_video(keys, len(labels), num_classes), num_classes


def csv_ranking(path, ids, keys, num_classes):
    """The Ranking of a Kaggle CSV's pairs over the videos `ids` (rows of another file's labels); a video
    the CSV lacks brings no pairs, one only the CSV has is refused."""
    from yt8m_kit.evaluate import bootstrap
    from yt8m_kit.kaggle.submission_csv import read_csv

    row = {v: i for i, v in enumerate(ids)}
    videos, classes, values = [], [], []
    for video_id, labels, confs in read_csv(path, num_classes=num_classes):
        if video_id not in row:
            raise DataError("video not among the labelled videos of the other file", file=path, record=video_id)
        videos += [row[video_id]] * labels.size
        classes += labels.tolist()
        values += confs.tolist()
    pairs = np.asarray(videos, np.int64) * num_classes + np.asarray(classes, np.int64)
    rel = np.isin(pairs, keys)
    return bootstrap.Ranking.of_pairs(videos, classes, np.asarray(values, np.float32), rel)


def paired_bootstrap(a, b, resamples=200, seed=0):
    """{"gap_a", "gap_b", "diff", "se_a", "se_b", "se_diff"} for prediction dicts a and b (b may also be
    the path of a Kaggle CSV over a's videos), with yt8m_kit.evaluate.bootstrap: the same resamples of
    the videos for both."""
    from yt8m_kit.evaluate import bootstrap

    keys, positives, num_classes = _labels(a)
    if isinstance(b, str):
        rank_b = csv_ranking(b, a["ids"], keys, num_classes)
    else:
        if a["ids"] != b["ids"]:
            raise DataError("the two prediction files cover different videos (or another order)")
        rank_b = bootstrap.Ranking.of_scores(b["scores"], keys)
    rankings = [bootstrap.Ranking.of_scores(a["scores"], keys), rank_b]
    draws = bootstrap.resample_gaps(rankings, positives, resamples, seed)
    gap_a, gap_b = (r.gap(positives) for r in rankings)
    return {"gap_a": gap_a, "gap_b": gap_b, "diff": gap_b - gap_a,
            "se_a": bootstrap.standard_error(draws[:, 0]), "se_b": bootstrap.standard_error(draws[:, 1]),
            "se_diff": bootstrap.standard_error(draws[:, 1] - draws[:, 0])}


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="prediction h5 of the first model (e.g. the latest checkpoint)")
    p.add_argument("b", help="prediction h5 of the second (e.g. the average), or a Kaggle CSV over A's videos "
                             "(e.g. inference.py's output for an ensemble): its top-20 pairs are what GAP reads")
    p.add_argument("--resamples", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from yt8m_kit.evaluate.prediction_files import load_predictions

    b = args.b if args.b.endswith(".csv") else load_predictions(args.b)
    r = paired_bootstrap(load_predictions(args.a), b, args.resamples, args.seed)
    print(f"A {r['gap_a']:.4f} ± {r['se_a']:.4f}   B {r['gap_b']:.4f} ± {r['se_b']:.4f}   "
          f"B - A {r['diff']:+.4f} ± {r['se_diff']:.4f}  ({args.resamples} paired resamples of the videos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
