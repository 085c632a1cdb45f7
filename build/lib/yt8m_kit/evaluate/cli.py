"""Score predictions against labelled YouTube-8M records: GAP@20, Hit@1, PERR, mAP.

  python -m yt8m_kit.evaluate --predictions submission.csv --data 'validate*.tfrecord' [--json]
  python -m yt8m_kit.evaluate --checkpoint RUN_DIR --data 'validate*.tfrecord' [--repeats 10]
      [--seed 0] [--batch-size 64] [--save-predictions preds.h5] [--json]

CSV mode: a video in the data but not in the CSV is scored as an empty row (no predictions; its
labels still count) and the output says how many ("missing_from_csv"). A video in the CSV but not
in the data is an error (usually the wrong --data pattern or the wrong CSV); --ignore-extra-ids
turns it into a warning and skips those rows ("extra_in_csv"). Checkpoint mode delegates to
yt8m_kit.evaluate.predict_loop.evaluate_checkpoint. Metrics: yt8m_kit.evaluate.metrics (official tie order; mAP from the
retained top-20 predictions, over classes with at least one positive).
--json prints exactly one JSON object on stdout; everything else goes to stderr.

2017 files (key 'video_id', 4716 classes) are refused unless --allow-2017. Then, in checkpoint mode,
a model whose class count is not the data's (every registered model: 3862, the 2018 vocabulary) is
a ConfigError naming both, not a meaningless GAP: the two vocabularies' indices do not match. In CSV
mode the CSV's labels are taken as 2017 indices (0..4715; "vocabulary": 2017 in the result) and a
warning says so: a CSV from a 2018 model scored against 2017 labels would mean nothing.
--skip-bad (checkpoint mode) scores the readable records, leaves the bad ones out ("skipped_records")
and reports on stderr how many and which; without it a bad record stops the run naming file and record.
"""

import argparse
import json
import sys

import numpy as np

from yt8m_kit import NUM_CLASSES, NUM_CLASSES_2017, TOP_K
from yt8m_kit.errors import ConfigError, DataError, cli_main
from yt8m_kit.evaluate.metrics import Evaluator

KEYS = ("gap", "hit_at_1", "perr", "map", "videos")


def evaluate_csv(csv_path, ids, labels, *, num_classes=NUM_CLASSES, top_k=TOP_K, chunk=4096,
                 ignore_extra_ids=False, warn=None):
    """Score a Kaggle CSV against (ids, labels) -> {gap, hit_at_1, perr, map, videos, missing_from_csv}.

    ids: video ids (str or bytes); labels: one int array of class indices per id.
    warn: optional callable(str) for the extra-ids warning (only with ignore_extra_ids).
    """
    from yt8m_kit.kaggle.submission_csv import read_csv, video_id_str

    ids = [video_id_str(i) for i in ids]
    if len(ids) != len(labels):
        raise DataError(f"{len(ids)} ids but {len(labels)} label lists")
    if not any(len(labs) for labs in labels):
        raise DataError("the data has no labels (a test split?): evaluation needs labelled records, "
                        "e.g. validate*.tfrecord")
    row_of = {video_id: row for row, video_id in enumerate(ids)}
    if len(row_of) != len(ids):
        raise DataError("the data holds a video id twice: cannot match CSV rows to labels")
    # Rows are scored in data order, whatever the CSV's order (the official tie order follows it).
    indices = np.full((len(ids), top_k), -1, np.int32)
    values = np.zeros((len(ids), top_k), np.float32)
    seen = np.zeros(len(ids), bool)
    extra = []
    rows = read_csv(csv_path, num_classes=num_classes, max_pairs=top_k)
    for line, (video_id, labs, confs) in enumerate(rows, start=2):  # one row per line after the header
        row = row_of.get(video_id)
        if row is None:
            extra.append(video_id)
            continue
        if seen[row]:
            raise DataError(f"video {video_id!r} appears twice", file=csv_path, record=f"line {line}")
        seen[row] = True
        indices[row, :labs.size], values[row, :confs.size] = labs, confs
    if extra and not ignore_extra_ids:
        raise DataError(f"{len(extra)} video(s) in the CSV are not in the data, e.g. {extra[:5]}: check "
                        "--data (it must cover the CSV's videos) or pass --ignore-extra-ids to skip them",
                        file=csv_path)
    evaluator = Evaluator(num_classes=num_classes, top_k=top_k)
    for start in range(0, len(ids), chunk):  # videos missing from the CSV are empty rows (all -1)
        stop = start + chunk
        evaluator.add_topk(indices[start:stop], values[start:stop], labels[start:stop])
    missing = np.flatnonzero(~seen)
    result = dict(evaluator.result(), missing_from_csv=int(missing.size))
    if ignore_extra_ids:
        result["extra_in_csv"] = len(extra)
        if extra and warn:
            warn(f"warning: skipped {len(extra)} CSV row(s) whose videos are not in the data, "
                 f"e.g. {extra[:5]}")
    return result


def format_report(result, source):
    lines = [f"evaluated {source}",
             f"  videos   {result['videos']}"]
    if "missing_from_csv" in result:
        lines[-1] += f"  ({result['missing_from_csv']} missing from the CSV, scored as empty rows)"
    if result.get("extra_in_csv"):
        lines.append(f"  skipped  {result['extra_in_csv']} CSV rows not in the data")
    if result.get("skipped_records"):
        lines.append(f"  skipped  {result['skipped_records']} bad records (--skip-bad; not scored)")
    lines += [f"  GAP@20   {result['gap']:.6f}",
              f"  Hit@1    {result['hit_at_1']:.6f}",
              f"  PERR     {result['perr']:.6f}",
              f"  mAP      {result['map']:.6f}  (from the retained top-20 predictions, as the "
              "official tools; over classes with at least one positive)"]
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m yt8m_kit.evaluate",
        description="Score a Kaggle CSV or a checkpoint on labelled records: GAP@20, Hit@1, PERR, mAP.",
        epilog="CSV mode: videos missing from the CSV count as empty rows; CSV videos absent from "
               "the data are an error unless --ignore-extra-ids.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", metavar="CSV", help="a Kaggle CSV (VideoId,LabelConfidencePairs)")
    source.add_argument("--checkpoint", metavar="PATH", help="a checkpoint directory or a training RUN_DIR")
    p.add_argument("--data", required=True, metavar="PATTERN",
                   help="labelled TFRecords (glob), e.g. 'validate*.tfrecord'")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--save-predictions", metavar="FILE.h5",
                   help="checkpoint mode: also write the scores (yt8m_kit.evaluate.prediction_files format)")
    p.add_argument("--repeats", type=int, help="checkpoint mode: frame samplings averaged (default 1)")
    p.add_argument("--seed", type=int, help="checkpoint mode: frame sampling seed (default 0)")
    p.add_argument("--num-samples", type=int, metavar="N",
                   help="checkpoint mode: frames sampled per video in each repeat (default 300, the most a "
                        "video has; the demo's models train and score on 32)")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="videos per batch (checkpoint mode: model batch; CSV mode: rows per chunk)")
    p.add_argument("--ignore-extra-ids", action="store_true",
                   help="CSV mode: skip CSV rows whose videos are not in the data (warn) instead of failing")
    p.add_argument("--allow-2017", action="store_true",
                   help="read 2017 YouTube-8M files (key 'video_id', 4716 classes). Checkpoint mode: refused "
                        "with the reason when the model's classes (3862 for every registered model) are "
                        "not the data's; CSV mode: the CSV's labels are scored as 2017 class indices")
    p.add_argument("--skip-bad", action="store_true",
                   help="checkpoint mode: leave out unreadable or malformed records (CRC errors, truncated "
                        "tails, wrong sizes) instead of stopping; they are not scored, and stderr says how "
                        "many were skipped and the first few file/record/reason")
    return p


def with_skip_hint(error, what):
    """A reader's DataError naming a record, with the hint at --skip-bad in CLI terms (same object)."""
    text = error.args[0].replace("skip_bad=True", "--skip-bad")
    if error.record is not None and "--skip-bad" not in text:
        text += f"; fix or re-download the file, or pass --skip-bad to {what}"
    error.args = (text,)
    return error


def run(args, warn):
    """Parsed arguments -> result dict."""
    if args.batch_size is not None and args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    if args.predictions:
        flags = (("--save-predictions", args.save_predictions), ("--repeats", args.repeats),
                 ("--seed", args.seed))
        used = [flag for flag, value in flags if value is not None]
        if used:
            raise ConfigError(f"{', '.join(used)} only apply with --checkpoint "
                              "(a CSV is already predictions)")
        if args.skip_bad:
            raise ConfigError("--skip-bad only applies with --checkpoint: CSV mode reads every labelled "
                              "record (a skipped video would turn its CSV row into an unknown one); locate "
                              f"the bad records with python -m yt8m_kit.inspect '{args.data}'")
        from yt8m_kit.data.dataset import detect_format, list_files, read_ids_and_labels

        version = detect_format(list_files(args.data), allow_2017=args.allow_2017).version
        ids, labels = read_ids_and_labels(args.data, allow_2017=args.allow_2017)
        num_classes = NUM_CLASSES_2017 if version == 2017 else NUM_CLASSES
        if version == 2017:
            warn(f"warning: {args.data} is 2017 data: the CSV's labels are scored as 2017 class indices "
                 f"(0..{num_classes - 1}); a CSV of 2018 indices (any yt8m_kit model) would score meaninglessly")
        result = evaluate_csv(args.predictions, ids, labels, num_classes=num_classes,
                              chunk=args.batch_size or 4096, ignore_extra_ids=args.ignore_extra_ids, warn=warn)
        return dict(result, vocabulary=2017) if version == 2017 else result
    if args.ignore_extra_ids:
        raise ConfigError("--ignore-extra-ids only applies with --predictions CSV")
    if args.repeats is not None and args.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {args.repeats}")
    if args.num_samples is not None and args.num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {args.num_samples}")
    from yt8m_kit.evaluate.predict_loop import evaluate_checkpoint

    kwargs = {"repeats": 1 if args.repeats is None else args.repeats,
              "seed": 0 if args.seed is None else args.seed,
              "save_predictions": args.save_predictions,
              "log": lambda msg: print(msg, file=sys.stderr)}
    if args.batch_size is not None:
        kwargs["batch_size"] = args.batch_size
    if args.num_samples is not None:
        kwargs["num_samples"] = args.num_samples
    reports = []
    if args.allow_2017:
        kwargs["allow_2017"] = True
    if args.skip_bad:
        kwargs.update(skip_bad=True, skip_reports=reports)
    try:
        result = dict(evaluate_checkpoint(args.checkpoint, args.data, **kwargs))
    except DataError as e:
        raise with_skip_hint(e, "score the other records") from None
    missing = [k for k in KEYS if k not in result]
    if missing:
        raise DataError(f"evaluate_checkpoint returned no {missing}", file=args.checkpoint)
    if args.skip_bad:
        result["skipped_records"] = sum(r.count for r in reports)
        for report in reports:
            if report.count:
                warn(f"warning: {report}; those videos are not scored (videos: {result['videos']})")
    return result


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)

    def warn(message):
        print(message, file=sys.stderr)

    result = run(args, warn)
    save_error = result.pop("save_error", None)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_report(result, args.predictions or args.checkpoint))
    if save_error is not None:  # the score above stands; the prediction file could not be written
        raise ConfigError(save_error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
