"""Submit a Kaggle CSV through kaggle's own Python API (KaggleApi.competition_submit).

`python -m yt8m_kit.upload submission.csv --message TEXT [--data PATTERN]` validates the CSV
(yt8m_kit.kaggle.submission_csv.validate_csv) and submits it; inference.py --upload calls the same
functions. Importable without credentials: kaggle is imported lazily, because `import kaggle`
authenticates at import time (and prints help when there are no credentials).

Credentials come from kaggle's usual places: KAGGLE_API_TOKEN, ~/.kaggle/access_token,
kaggle.json under KAGGLE_CONFIG_DIR or ~/.kaggle, KAGGLE_USERNAME + KAGGLE_KEY, or
`kaggle auth login`. They are never printed: every message we print is scrubbed of them.

Failures and what we do:
- no credentials (kaggle calls exit(1), a SystemExit): UploadError saying where to put them;
- HTTP 401/403/404 (rejected key, rules not accepted, unknown competition): UploadError, no retry;
- the file upload failed: kaggle returns "Could not submit to competition" with ref 0 and
  raises nothing; we treat it as a failure, retry, and finally raise UploadError;
- transient failures (connection errors, HTTP 429/5xx, no answer within timeout_s): retried,
  `attempts` tries in all, with a growing pause. A timed-out attempt is abandoned, not killed
  (its thread may still finish); Kaggle could then, rarely, record two submissions.
"""

import argparse
import contextlib
import io
import os
import sys
import threading
import time
from dataclasses import dataclass

from yt8m_kit.errors import Yt8mError, cli_main

COMPETITION = "youtube8m-2018"
UPLOAD_FAILED = "Could not submit to competition"  # KaggleApi.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE
CREDENTIAL_HELP = (
    "set KAGGLE_API_TOKEN (a token from https://www.kaggle.com/settings/api), or save the token "
    "to ~/.kaggle/access_token, or put kaggle.json ({\"username\": ..., \"key\": ...}) in ~/.kaggle "
    "(or KAGGLE_CONFIG_DIR), or set KAGGLE_USERNAME and KAGGLE_KEY, or run `kaggle auth login`")


class UploadError(Yt8mError):
    """The submission did not reach Kaggle; the message says what to do."""


@dataclass
class SubmitResult:
    ref: int
    message: str
    attempts: int


def _secrets(api=None):
    values = [os.environ.get(k) for k in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    if api is not None:
        cfg = getattr(api, "config_values", {}) or {}
        values += [cfg.get("key"), cfg.get("token")]
    return [v for v in values if v and len(v) >= 4]


def redact(text, secrets):
    """Replace every secret value in text by '***'."""
    text = str(text)
    for s in secrets:
        text = text.replace(s, "***")
    return text


def authenticated_api():
    """A KaggleApi with credentials loaded; UploadError (never SystemExit) when there are none."""
    chatter = io.StringIO()  # kaggle prints help/warnings on stdout while importing/authenticating
    try:
        with contextlib.redirect_stdout(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise UploadError(f"no Kaggle credentials found: {CREDENTIAL_HELP}") from None
    except Exception as e:  # e.g. the token check could not reach Kaggle
        raise UploadError(f"could not authenticate with Kaggle ({redact(e, _secrets())}): "
                          f"check your connection and credentials; {CREDENTIAL_HELP}") from None
    return api


def _call_with_timeout(fn, timeout_s):
    """Run fn() in a daemon thread; ('ok', value) | ('error', exc) | ('timeout', None)."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    thread = threading.Thread(target=target, name="kaggle-submit", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return "timeout", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


def _classify_error(e, competition):
    """-> (retry: bool, text) for an exception raised by competition_submit."""
    import requests

    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, requests.HTTPError) and status is not None:
        if status == 401:
            return False, (f"Kaggle rejected the credentials (HTTP 401): they are wrong or expired; "
                           f"{CREDENTIAL_HELP}")
        if status == 403:
            return False, ("Kaggle refused the submission (HTTP 403): accept the competition rules at "
                           f"https://www.kaggle.com/c/{competition}/rules, and check that your token "
                           "may submit")
        if status == 404:
            return False, (f"Kaggle does not know competition {competition!r} (HTTP 404): check "
                           "--competition")
        if status == 429 or status >= 500:
            return True, f"Kaggle answered HTTP {status} ({e})"
        return False, f"Kaggle answered HTTP {status} ({e})"
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return True, f"could not reach Kaggle ({type(e).__name__}: {e})"
    if isinstance(e, SystemExit):
        return False, f"kaggle stopped with exit status {e.code}: check your credentials; {CREDENTIAL_HELP}"
    return True, f"{type(e).__name__}: {e}"


def submit(csv_path, *, message, competition=COMPETITION, attempts=3, timeout_s=900.0,
           backoff_s=10.0, quiet=False, api=None, log=None):
    """Submit csv_path to a Kaggle competition -> SubmitResult(ref, message, attempts).

    Raises UploadError with what to do on every failure (see the module docstring).
    api: an authenticated KaggleApi (default: authenticated_api()). log: print-like callable
    for progress lines (default: stderr).
    """
    log = log or (lambda text: print(text, file=sys.stderr))
    if int(attempts) < 1 or timeout_s <= 0:
        raise UploadError(f"attempts ({attempts}) must be at least 1 and the timeout ({timeout_s} s) positive")
    if not os.path.isfile(csv_path):
        raise UploadError(f"{csv_path}: no such file to upload")
    api = api or authenticated_api()
    secrets = _secrets(api)
    last = "no attempt made"
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            pause = backoff_s * 2 ** (attempt - 2)
            log(f"upload attempt {attempt - 1}/{attempts} failed: {redact(last, secrets)}; "
                f"retrying in {pause:g} s")
            time.sleep(pause)
        state, value = _call_with_timeout(
            lambda: api.competition_submit(csv_path, message, competition, quiet=quiet), timeout_s)
        if state == "timeout":
            last = f"no answer from Kaggle within {timeout_s:g} s"
            continue
        if state == "error":
            retry, last = _classify_error(value, competition)
            if not retry:
                raise UploadError(redact(last, secrets))
            continue
        ref = int(getattr(value, "ref", 0) or 0)
        said = str(getattr(value, "message", "") or "")
        if ref:
            return SubmitResult(ref=ref, message=said, attempts=attempt)
        if said == UPLOAD_FAILED or not said:
            last = f"the file upload failed (Kaggle client said: {said or 'nothing'!r})"
            continue
        raise UploadError(redact(f"Kaggle did not accept the submission: {said!r} (no submission "
                                 "reference returned)", secrets))
    raise UploadError(redact(
        f"{csv_path} was not submitted to {competition} after {attempts} attempt(s): {last}. "
        "Check your connection and https://www.kaggle.com/c/" + competition + "/submissions, then "
        f"retry with: python -m yt8m_kit.upload {csv_path} --message '...'", secrets))


def validate(csv_path, expected_ids=None):
    """validate_csv with the README's checks; returns its summary dict (DataError when bad)."""
    from yt8m_kit.kaggle.submission_csv import validate_csv

    return validate_csv(csv_path, expected_ids=expected_ids)


def describe_summary(summary):
    """A validate_csv or merge_csvs summary as words, e.g. '5701 rows, 113,980 label pairs (up to 20 a row),
    0 empty rows'."""
    parts = [f"{summary['rows']:,} rows"]
    if "pairs" in summary:
        parts.append(f"{summary['pairs']:,} label pairs (up to {summary['max_pairs']} a row)")
        parts.append(f"{summary['empty_rows']:,} empty rows")
    if "inputs" in summary:
        parts.append(f"from {summary['inputs']} file(s)")
    return ", ".join(parts)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m yt8m_kit.upload",
        description="Validate a Kaggle CSV, then submit it with kaggle's Python API. " + CREDENTIAL_HELP[0].upper()
        + CREDENTIAL_HELP[1:] + ".")
    p.add_argument("csv", help="the submission CSV (e.g. from inference.py or python -m yt8m_kit.merge)")
    p.add_argument("--message", required=True, help="submission description shown on Kaggle")
    p.add_argument("--competition", default=COMPETITION, help="competition slug (default: %(default)s)")
    p.add_argument("--data", help="TFRecord pattern of the test set: check the CSV has exactly its videos")
    p.add_argument("--attempts", type=int, default=3, help="tries in all for transient failures (default 3, at least 1)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each try (default 900)")
    p.add_argument("--dry-run", action="store_true", help="validate only; do not contact Kaggle")
    add_wait_options(p)
    return p


def add_wait_options(p):
    """--wait [SECONDS] and --poll-interval, shared by upload and inference.py."""
    from yt8m_kit.kaggle.leaderboard import DEFAULT_POLL_S, DEFAULT_WAIT_S

    p.add_argument("--wait", type=float, nargs="?", const=DEFAULT_WAIT_S, default=None, metavar="SECONDS",
                   help=f"after the upload, poll Kaggle until the submission is scored and print its public score "
                        f"(and the private one where Kaggle gives it); an error status or no score within SECONDS "
                        f"(default {DEFAULT_WAIT_S:g} when given without a value) exits 2 with the reason "
                        "(default: do not wait)")
    p.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_S, metavar="SECONDS",
                   help="longest pause between two polls with --wait; they start at 5 s and double "
                        "(default %(default)s)")


def report_score(api, ref, args):
    """--wait: poll until scored and print the score line (ScoreError otherwise)."""
    from yt8m_kit.kaggle.leaderboard import wait_for_score

    score = wait_for_score(api, ref, timeout_s=args.wait, poll_s=args.poll_interval)
    print(score.describe())
    return score


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.attempts < 1:
        raise UploadError(f"--attempts ({args.attempts}) must be at least 1: it counts every try, the first included")
    if (args.wait is not None and args.wait <= 0) or args.poll_interval <= 0:
        raise UploadError("--wait and --poll-interval take a positive number of seconds")
    expected = None
    if args.data:
        from yt8m_kit.data.dataset import read_ids_and_labels

        expected = read_ids_and_labels(args.data)[0]
    summary = validate(args.csv, expected)
    print(f"{args.csv}: valid ({describe_summary(summary)})", file=sys.stderr)
    if args.dry_run:
        print(f"dry run: would submit {args.csv} to {args.competition} with message {args.message!r}")
        return 0
    api = authenticated_api()
    result = submit(args.csv, message=args.message, competition=args.competition,
                    attempts=args.attempts, timeout_s=args.timeout, api=api)
    print(f"submitted {args.csv} to {args.competition}: ref {result.ref} ({result.message})", flush=True)
    if args.wait is not None:
        report_score(api, result.ref, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
