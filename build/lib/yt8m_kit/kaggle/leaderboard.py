"""After an upload: wait until Kaggle has scored the submission, and say its score (`--wait`).

Polls kaggle's own `KaggleApi.get_submission(ref)` (the GetSubmission call) until the submission's
status is COMPLETE (then its public score, and the private one where Kaggle gives it) or ERROR (its
error description), or until `timeout_s` has passed. The pause between polls grows from 5 s to
`poll_s`. A submission not yet visible (HTTP 404 right after the upload) and transient failures
(connection errors, HTTP 429/5xx) count as "still pending"; rejected credentials do not.
Every failure is a ScoreError (exit 2 in the commands) naming the submission ref and how to look it up.
"""

import sys
import time
from dataclasses import dataclass

from yt8m_kit.errors import Yt8mError

FIRST_POLL_S = 5.0
DEFAULT_WAIT_S = 3600.0  # `--wait` without a value
DEFAULT_POLL_S = 60.0


class ScoreError(Yt8mError):
    """The submission was not scored: an error status, a timeout, or the API refused."""


@dataclass(frozen=True)
class Score:
    ref: int
    public: str  # as Kaggle reports it (a decimal string)
    private: str = None  # None while the competition keeps it hidden
    polls: int = 0
    seconds: float = 0.0

    def describe(self):
        return (f"submission {self.ref} scored: public {self.public}"
                + (f", private {self.private}" if self.private else " (private score not published)"))


def _status_name(submission):
    status = getattr(submission, "status", None)
    return getattr(status, "name", str(status or "PENDING")).upper()


def _transient(e):
    """True for a failure worth polling through (not yet visible, rate limit, server or network trouble)."""
    import requests

    code = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, requests.HTTPError) and code is not None:
        return code in (404, 408, 429) or code >= 500
    return isinstance(e, (requests.ConnectionError, requests.Timeout))


def wait_for_score(api, ref, *, timeout_s=DEFAULT_WAIT_S, poll_s=DEFAULT_POLL_S, log=None, clock=None, sleep=None):
    """Score of submission `ref` once Kaggle has computed it; ScoreError on an error status, a refusal
    or when `timeout_s` passes first. clock, sleep: time.monotonic and time.sleep unless given."""
    log = log or (lambda text: print(text, file=sys.stderr))
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    if timeout_s <= 0 or poll_s <= 0:
        raise ScoreError(f"the wait ({timeout_s} s) and the poll interval ({poll_s} s) must be positive")
    look = f"look it up later with: kaggle competitions submission {ref}"
    start, pause, polls, last = clock(), min(FIRST_POLL_S, poll_s), 0, "PENDING"
    while True:
        polls += 1
        try:
            submission = api.get_submission(ref)
            last = _status_name(submission)
        except Exception as e:  # noqa: BLE001  (the kaggle client raises requests' and its own errors)
            if not _transient(e):
                raise ScoreError(f"Kaggle refused to show submission {ref} ({type(e).__name__}: {e}); {look}") from None
            submission, last = None, f"not available yet ({type(e).__name__})"
        if submission is not None and last == "COMPLETE":
            private = getattr(submission, "private_score", None) or None
            return Score(ref, str(getattr(submission, "public_score", "") or "(none)"), private, polls,
                         clock() - start)
        if submission is not None and last == "ERROR":
            why = (getattr(submission, "error_description", "") or "").strip() or "Kaggle gave no reason"
            raise ScoreError(f"Kaggle could not score submission {ref}: {why}")
        waited = clock() - start
        if waited >= timeout_s:
            raise ScoreError(f"submission {ref} was still {last.lower()} after {waited:.0f} s (--wait {timeout_s:g}); "
                             f"Kaggle may still score it: {look}")
        log(f"submission {ref}: {last.lower()}, waited {waited:.0f} s")
        sleep(min(pause, max(timeout_s - waited, 0.0)))
        pause = min(pause * 2, poll_s)
