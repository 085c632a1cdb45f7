"""Merge shard CSVs from `inference.py --shard i/n` into one Kaggle CSV, every video exactly once.

`python -m yt8m_kit.merge shard-0.csv shard-1.csv ... --output submission.csv --data 'test*.tfrecord'`
With --data, the merged CSV must hold exactly the videos of those records (a missing shard or a
video twice is an error naming it); without it, only duplicates can be checked, and we say so.
The output is written atomically (yt8m_kit.kaggle.submission_csv.merge_csvs).
"""

import argparse
import sys

from yt8m_kit.errors import ConfigError, cli_main


def merge(inputs, output, data=None):
    """Merge shard CSVs into output; data (TFRecord pattern) gives the expected ids -> summary."""
    from yt8m_kit.kaggle.submission_csv import merge_csvs

    if not inputs:
        raise ConfigError("no shard CSVs given: list the files written by inference.py --shard i/n")
    if output in inputs:
        raise ConfigError(f"--output {output} is also an input: write the merged CSV elsewhere")
    from yt8m_kit.errors import DataError

    expected = None
    if data:
        from yt8m_kit.data.dataset import read_ids_and_labels

        expected = read_ids_and_labels(data)[0]
    try:
        return merge_csvs(list(inputs), output, expected_ids=expected,
                          missing_advice="a shard missing from the inputs, or one of another split")
    except DataError as e:
        if e.file != output:  # an input's own fault, named as such
            raise
        # the merged rows against --data: the inputs are at fault, and the output was never written
        shown = ", ".join(inputs[:4]) + (f" and {len(inputs) - 4} more" if len(inputs) > 4 else "")
        raise DataError(f"the {len(inputs)} input CSV(s) ({shown}) do not hold exactly the videos of --data {data}: "
                        f"{e.reason}. Nothing was written to {output}") from None


def build_parser():
    p = argparse.ArgumentParser(prog="python -m yt8m_kit.merge", description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", help="shard CSVs (any order)")
    p.add_argument("--output", required=True, help="merged CSV to write")
    p.add_argument("--data", help="TFRecord pattern of the whole test set: check every video appears "
                                  "exactly once (strongly recommended)")
    return p


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.data:
        print("warning: no --data given: duplicates are checked, missing videos are not", file=sys.stderr)
    summary = merge(args.inputs, args.output, args.data)
    from yt8m_kit.kaggle.upload import describe_summary

    print(f"merged {len(args.inputs)} file(s) into {args.output}"
          + (f": {describe_summary(summary)}" if summary is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
