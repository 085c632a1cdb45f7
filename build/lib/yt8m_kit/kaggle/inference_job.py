"""Inference: a model artifact + test TFRecords -> a validated Kaggle CSV, optionally uploaded.

`python inference.py --model ARTIFACT --input PATTERN --output submission.csv` (see --help).
Streaming end to end: records in (yt8m_kit.evaluate.predict_loop.predict_batches, fixed batch size), CSV
rows out (yt8m_kit.kaggle.submission_csv.CsvWriter, renamed into place only when complete), so memory
stays flat whatever the number of videos, and an interrupted run leaves no CSV behind. The ids
written are kept as 8-byte fingerprints (submission.IdSet, ~9 MB for the 1.13M test videos) to
validate the CSV afterwards, never as a list of strings.

Bad records stop the run with an error naming file and record (no CSV). --skip-bad leaves them out
instead: their videos are then ABSENT from the CSV, which the run reports loudly (exit status 0,
since the user asked for it). --allow-2017 reads 2017 files (key 'video_id'); the CSV still holds
2018 class indices, since every registered model scores the 3862 classes of 2018.
"""

import argparse
import os
import sys
import time

from yt8m_kit import DEFAULT_BATCH_SIZE, DEFAULT_NUM_SAMPLES, DEFAULT_REPEATS
from yt8m_kit.errors import ConfigError, DataError, cli_main
from yt8m_kit.kaggle.upload import COMPETITION

# TensorFlow is imported by the functions that run a model, not here: `inference.py --help` answers at once.



class Progress:
    """A one-line progress report on a stream: videos done, videos/s and ETA."""

    def __init__(self, total=None, stream=None, interval_s=0.5, clock=time.monotonic, approx=True):
        self.total, self.approx, self.clock = total, approx, clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval_s = interval_s if self.tty else max(interval_s, 30.0)
        self.start = self.last = clock()
        self.done = 0

    def line(self):
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.done} videos, {rate:.1f} videos/s"
        if self.total:
            total = max(self.total, self.done)  # an estimate that ran short grows with the count
            mark = "~" if self.approx and self.done < self.total else ""
            left = max(total - self.done, 0)
            eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "?"
            text = f"{self.done}/{mark}{total} videos, {rate:.1f} videos/s, ETA {eta}"
        return text

    def update(self, n):
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            self._write(self.line())

    def close(self):
        self._write(self.line() + f" (done in {self.clock() - self.start:.1f} s)", final=True)

    def _write(self, text, final=False):
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def estimate_videos(files):
    """(estimate, exact): records in the first file, scaled by the files' total bytes; (None, False)
    when the first file cannot be read to its end (the reader then reports or skips the bad record)."""
    import tensorflow as tf

    try:
        first = int(tf.data.TFRecordDataset(files[0]).reduce(0, lambda n, _: n + 1).numpy())
    except tf.errors.OpError:
        return None, False
    if len(files) == 1:
        return first, True
    first_bytes = max(os.path.getsize(files[0]), 1)
    total_bytes = sum(os.path.getsize(f) for f in files)
    return int(round(first * total_bytes / first_bytes)), False


def load_artifact(path):
    """-> (keras.Model, description, plan.json dict or None). ARTIFACT: ensemble .keras, submit.py --out
    dir, checkpoint dir or RUN_DIR (its averaged checkpoint if any, else its latest). The files of a
    submit.py output directory must belong together (artifact.check_artifact) or nothing runs."""
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "ensemble.keras")):
        path = os.path.join(path, "ensemble.keras")
    if os.path.isfile(path) and path.endswith(".keras"):
        from yt8m_kit.ensemble.artifact import check_artifact, load_ensemble

        plan = check_artifact(os.path.dirname(os.path.abspath(path)))
        return load_ensemble(path), f"ensemble {path}", plan
    if os.path.isdir(path):
        from yt8m_kit.train.checkpoint import load_model

        from yt8m_kit.train.checkpoint import describe

        model, meta = load_model(path)
        return model, f"checkpoint {describe(meta['path'])}", None
    raise ConfigError(f"--model {path}: not found or not a model artifact; give an ensemble .keras file, "
                      "a submit.py --out directory, a checkpoint directory or a training RUN_DIR")


def write_predictions_csv(model, pattern, output, *, repeats, seed, batch_size=DEFAULT_BATCH_SIZE,
                          all_frames=False, num_samples=DEFAULT_NUM_SAMPLES, shard=None, progress=None,
                          allow_2017=False, skip_bad=False, xla=False):
    """Stream predictions into a Kaggle CSV at `output` (atomic) -> (ids, skipped).

    ids: a submission.IdSet of the video ids written (fingerprints: len() and validate_csv's
    expected_ids); skipped: the reader's SkipReport (count 0 unless skip_bad dropped records).
    """
    from yt8m_kit.evaluate.predict_loop import predict_batches
    from yt8m_kit.kaggle.submission_csv import CsvWriter

    reports = []
    with CsvWriter(output) as writer:
        for ids, scores, _ in predict_batches(model, pattern, repeats=repeats, seed=seed,
                                              batch_size=batch_size, all_frames=all_frames,
                                              num_samples=num_samples, shard=shard, allow_2017=allow_2017,
                                              skip_bad=skip_bad, skip_reports=reports, xla=xla):
            writer.write(ids, scores)
            if progress is not None:
                progress.update(len(ids))
    return writer.ids, (reports[0] if reports else None)


def skipped_warning(report, output):
    """The loud stderr text for videos left out of the CSV by --skip-bad."""
    bar = "!" * 78
    return (f"{bar}\nWARNING: --skip-bad: {report}.\nThose videos are ABSENT from {output}: Kaggle expects one "
            "row per test video. Re-download the bad file(s) (python -m yt8m_kit.inspect PATTERN lists every "
            f"bad record) and rerun, or predict them separately and merge (python -m yt8m_kit.merge).\n{bar}")


def build_parser():
    p = argparse.ArgumentParser(
        prog="python inference.py",
        description="Predict the test set with a model artifact and write a Kaggle CSV (streaming, "
                    "atomic: the CSV appears only when complete); optionally validate and upload it.")
    p.add_argument("--model", required=True, metavar="ARTIFACT",
                   help="ensemble .keras file or submit.py --out dir, or a checkpoint dir or RUN_DIR")
    p.add_argument("--input", required=True, metavar="PATTERN",
                   help="TFRecord glob(s), comma-separated, e.g. 'data/test*.tfrecord'")
    p.add_argument("--output", default="submission.csv", help="CSV to write (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"random frame sub-samples per video, averaged (default {DEFAULT_REPEATS}, the paper's "
                        "best: 1x 0.8842, 5x 0.8846, 10x 0.8847 validation GAP); run as one batch of "
                        "batch-size x repeats rows; not with --all-frames")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed: the same seed gives a byte-identical CSV (default 0)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help="videos per batch (default %(default)s); memory ~ batch x repeats x frames")
    p.add_argument("--num-samples", type=int, default=DEFAULT_NUM_SAMPLES,
                   help="frames per sub-sample (default %(default)s)")
    p.add_argument("--all-frames", action="store_true",
                   help="use every frame once, deterministically, instead of random sub-samples")
    p.add_argument("--shard", metavar="i/n", help="predict only files i, i+n, ... (0 <= i < n) of the "
                   "sorted input files; merge the shard CSVs with python -m yt8m_kit.merge")
    p.add_argument("--upload", action="store_true", help="submit the validated CSV to Kaggle")
    p.add_argument("--competition", default=COMPETITION, help="competition slug (default: %(default)s)")
    p.add_argument("--message", help="submission description (default: model, repeats and seed)")
    p.add_argument("--upload-attempts", type=int, default=3, help="tries for transient upload failures (default %(default)s)")
    p.add_argument("--upload-timeout", type=float, default=900.0, help="seconds to wait per upload try (default %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="write and validate the CSV (header, one row per video, <= 20 pairs, labels in "
                        "range, confidences descending) but do not contact Kaggle")
    p.add_argument("--allow-2017", action="store_true",
                   help="read 2017 YouTube-8M files (key 'video_id' instead of 'id'); the CSV still holds "
                        "2018 class indices (0..3861), as every registered model scores the 2018 classes")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out unreadable or malformed records (CRC errors, truncated tails, wrong sizes) "
                        "instead of stopping with an error: their videos are then ABSENT from the CSV; the "
                        "run says so loudly, with the count and the first few file/record/reason, and "
                        "exits 0. Without it a bad record stops the run and no CSV is written")
    p.add_argument("--xla", action="store_true",
                   help="compile the model with XLA: for the six paper models ~1.15x faster (Soft-BoF members "
                        "1.57x) but about twice the peak memory (16.5 vs 8.1 GB at batch 32, 10 repeats); "
                        "scores equal to ~1e-7. Lower --batch-size to trade speed for memory")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    from yt8m_kit.kaggle.upload import add_wait_options

    add_wait_options(p)
    return p


def resolve_repeats(repeats, all_frames):
    if all_frames:
        if repeats not in (None, 1):
            raise ConfigError(f"--all-frames uses every frame once; --repeats {repeats} cannot apply: drop one")
        return 1
    return DEFAULT_REPEATS if repeats is None else repeats


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    repeats = resolve_repeats(args.repeats, args.all_frames)
    from yt8m_kit.evaluate.predict_loop import parse_shard

    shard = parse_shard(args.shard) if args.shard else None
    if args.wait is not None and not args.upload:
        raise ConfigError("--wait waits for the score of an upload: add --upload")
    if (args.wait is not None and args.wait <= 0) or args.poll_interval <= 0:
        raise ConfigError("--wait and --poll-interval take a positive number of seconds")
    if args.upload_attempts < 1:
        raise ConfigError(f"--upload-attempts ({args.upload_attempts}) must be at least 1: it counts every try")
    if args.upload and shard is not None:
        raise ConfigError("--upload with --shard would submit part of the test set: merge the shard CSVs "
                          "(python -m yt8m_kit.merge), then python -m yt8m_kit.upload CSV --message ...")
    api = None
    if args.upload and not args.dry_run:  # fail before hours of inference, not after
        from yt8m_kit.kaggle import upload

        api = upload.authenticated_api()

    model, described, plan = load_artifact(args.model)
    planned = (plan or {}).get("search", {})
    if planned and not args.all_frames and (planned.get("repeats"), planned.get("num_samples")) != (
            repeats, args.num_samples):
        print(f"note: the plan was scored with {planned.get('repeats')} repeat(s) of {planned.get('num_samples')} "
              f"frames; this run uses {repeats} of {args.num_samples} (frame-level members only)", file=sys.stderr)
    from yt8m_kit.data.dataset import list_files
    from yt8m_kit.evaluate.predict_loop import shard_files

    files = shard_files(list_files(args.input), shard)
    progress = None
    if not args.quiet:
        total, exact = estimate_videos(files)
        progress = Progress(total, approx=not exact)
    from yt8m_kit.evaluate.predict_loop import model_level

    video_level = model_level(model) == "video"
    repeats_text = f"repeats {repeats}" + (" (no effect: every member is video level, so one pass is exact)"
                                            if video_level and repeats > 1 else "")
    print(f"inference: {described} on {len(files)} file(s), {repeats_text}, seed {args.seed}"
          + (", xla" if args.xla else "") + (f", shard {shard[0]}/{shard[1]}" if shard else ""), file=sys.stderr)
    try:
        ids, skipped = write_predictions_csv(
            model, args.input, args.output, repeats=repeats, seed=args.seed, batch_size=args.batch_size,
            all_frames=args.all_frames, num_samples=args.num_samples, shard=shard, progress=progress,
            allow_2017=args.allow_2017, skip_bad=args.skip_bad, xla=args.xla)
    except DataError as e:
        from yt8m_kit.evaluate.cli import with_skip_hint

        raise with_skip_hint(e, "write the CSV without the bad videos (they will be absent)") from None
    if progress is not None:
        progress.close()
    print(f"wrote {args.output}: {len(ids)} videos", file=sys.stderr)
    if skipped is not None and skipped.count:
        print(skipped_warning(skipped, args.output), file=sys.stderr)

    if not (args.dry_run or args.upload):
        return 0
    from yt8m_kit.kaggle import upload

    summary = upload.validate(args.output, expected_ids=ids)
    from yt8m_kit.kaggle.upload import describe_summary

    print(f"{args.output}: valid ({describe_summary(summary)})", file=sys.stderr)
    message = args.message or f"yt8m_kit: {os.path.basename(os.path.normpath(args.model))}, " \
                              f"repeats {repeats}, seed {args.seed}"
    if args.dry_run:
        if args.upload:
            print(f"dry run: would submit {args.output} to {args.competition} with message {message!r}")
        return 0
    result = upload.submit(args.output, message=message, competition=args.competition,
                           attempts=args.upload_attempts, timeout_s=args.upload_timeout,
                           quiet=args.quiet, api=api)
    print(f"submitted {args.output} to {args.competition}: ref {result.ref} ({result.message})", flush=True)
    if args.wait is not None:
        upload.report_score(api, result.ref, args)
    return 0
