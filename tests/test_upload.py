"""Upload through the real kaggle client (kaggle 2.2.5 + kagglesdk) against a loopback stub."""

import subprocess
import sys
import time

import pytest

from kaggle_stub import SUBMISSION_REF, KaggleStub, point_kaggle_at
from yt8m_kit.kaggle import upload

CSV = b"VideoId,LabelConfidencePairs\nab12,3 0.900000 7 0.100000\ncd34,5 0.800000\n"


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_bytes(CSV)
    return str(path)


def stub_env(monkeypatch, tmp_path, stub, creds=True):
    point_kaggle_at(monkeypatch, stub, tmp_path)
    if creds:
        monkeypatch.setenv("KAGGLE_USERNAME", stub.username)
        monkeypatch.setenv("KAGGLE_KEY", stub.key)


def test_import_does_not_touch_kaggle():
    code = "import sys, yt8m_kit.kaggle.upload, yt8m_kit.kaggle.inference_job; print('kaggle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_successful_submission_uploads_the_exact_bytes(monkeypatch, tmp_path, csv_file, capfd):
    with KaggleStub("ok") as stub:
        stub_env(monkeypatch, tmp_path, stub)
        result = upload.submit(csv_file, message="ten repeats", attempts=1, timeout_s=20, quiet=True)
    assert result.ref == SUBMISSION_REF and result.attempts == 1
    assert list(stub.uploads.values()) == [CSV]
    assert stub.submissions[0]["competitionName"] == "youtube8m-2018"
    assert stub.submissions[0]["submissionDescription"] == "ten repeats"
    out = capfd.readouterr()
    assert stub.key not in out.out + out.err


def test_cli_success_prints_reference(monkeypatch, tmp_path, csv_file, capsys):
    with KaggleStub("ok") as stub:
        stub_env(monkeypatch, tmp_path, stub)
        rc = upload.main([csv_file, "--message", "m", "--attempts", "1", "--timeout", "20"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"ref {SUBMISSION_REF}" in out.out
    assert stub.key not in out.out + out.err


def test_authentication_failure_is_not_retried(monkeypatch, tmp_path, csv_file, capsys):
    with KaggleStub("auth_fail") as stub:
        stub_env(monkeypatch, tmp_path, stub)
        rc = upload.main([csv_file, "--message", "m", "--attempts", "3", "--timeout", "20"])
    out = capsys.readouterr()
    assert rc != 0
    assert "401" in out.err and "KAGGLE_API_TOKEN" in out.err
    assert stub.count("POST", "StartSubmissionUpload") == 1  # a wrong key is not transient
    assert stub.key not in out.out + out.err


def test_missing_credentials_say_where_to_put_them(monkeypatch, tmp_path, csv_file, capsys):
    with KaggleStub("ok") as stub:
        stub_env(monkeypatch, tmp_path, stub, creds=False)
        rc = upload.main([csv_file, "--message", "m"])
    out = capsys.readouterr()
    assert rc != 0
    assert "no Kaggle credentials" in out.err and "kaggle.json" in out.err
    assert stub.requests == []


def test_failed_file_upload_is_an_error_after_retries(monkeypatch, tmp_path, csv_file, capfd):
    with KaggleStub("upload_fail") as stub:
        stub_env(monkeypatch, tmp_path, stub)
        with pytest.raises(upload.UploadError, match="Could not submit to competition") as err:
            upload.submit(csv_file, message="m", attempts=2, timeout_s=20, backoff_s=0.05, quiet=True)
    assert "retry with" in str(err.value)
    assert stub.count("PUT", "") == 2  # kaggle returned a message, raised nothing; we retried
    assert stub.count("POST", "CreateSubmission") == 0
    assert stub.key not in str(err.value) + "".join(capfd.readouterr())


def test_timeout_is_retried_then_fails(monkeypatch, tmp_path, csv_file):
    with KaggleStub("hang", lifetime_s=20) as stub:
        stub_env(monkeypatch, tmp_path, stub)
        start = time.monotonic()
        with pytest.raises(upload.UploadError, match="no answer from Kaggle within 0.5 s"):
            upload.submit(csv_file, message="m", attempts=2, timeout_s=0.5, backoff_s=0.05, quiet=True)
        elapsed = time.monotonic() - start
        assert stub.count("POST", "StartSubmissionUpload") == 2
    assert elapsed < 5, elapsed


def test_transient_503_is_retried_and_succeeds(monkeypatch, tmp_path, csv_file):
    with KaggleStub("flaky", flaky_failures=1) as stub:
        stub_env(monkeypatch, tmp_path, stub)
        logs = []
        result = upload.submit(csv_file, message="m", attempts=3, timeout_s=20, backoff_s=0.05, quiet=True,
                               log=logs.append)
    assert result.ref == SUBMISSION_REF and result.attempts == 2
    assert "503" in logs[0]
    assert list(stub.uploads.values()) == [CSV]


def test_redact_hides_secrets():
    assert upload.redact("key=abcd1234 ok", ["abcd1234"]) == "key=*** ok"


PENDING = (200, {"ref": SUBMISSION_REF, "status": "PENDING"})
NOT_YET = (404, {"code": 404, "message": "not found"})


def wait_cli(monkeypatch, tmp_path, csv_file, capsys, scoring, wait="30"):
    with KaggleStub("ok", scoring=scoring) as stub:
        stub_env(monkeypatch, tmp_path, stub)
        rc = upload.main([csv_file, "--message", "m", "--attempts", "1", "--wait", wait, "--poll-interval", "0.05"])
        polls = stub.count("POST", "GetSubmission")
    out = capsys.readouterr()
    return rc, out.out, out.err, polls


def test_wait_prints_the_public_and_private_score(monkeypatch, tmp_path, csv_file, capsys, monkeypatch_sleep):
    done = (200, {"ref": SUBMISSION_REF, "status": "COMPLETE", "publicScore": "0.87654", "privateScore": "0.87012"})
    rc, out, err, polls = wait_cli(monkeypatch, tmp_path, csv_file, capsys, [NOT_YET, PENDING, PENDING, done])
    assert rc == 0, err
    assert f"submission {SUBMISSION_REF} scored: public 0.87654, private 0.87012" in out and polls == 4
    assert "pending" in err  # each wait said what it was waiting for
    hidden = (200, {"ref": SUBMISSION_REF, "status": "COMPLETE", "publicScore": "0.88"})
    rc, out, _, _ = wait_cli(monkeypatch, tmp_path, csv_file, capsys, [hidden])
    assert rc == 0 and "public 0.88 (private score not published)" in out


def test_wait_on_an_error_status_exits_2_with_kaggles_reason(monkeypatch, tmp_path, csv_file, capsys, monkeypatch_sleep):
    failed = (200, {"ref": SUBMISSION_REF, "status": "ERROR", "errorDescription": "Submission has 2 rows, expected 3"})
    rc, out, err, _ = wait_cli(monkeypatch, tmp_path, csv_file, capsys, [PENDING, failed])
    assert rc == 2 and "could not score submission" in err and "expected 3" in err and "Traceback" not in err
    assert f"ref {SUBMISSION_REF}" in out  # the upload itself was reported first


def test_wait_times_out_with_a_clear_message(monkeypatch, tmp_path, csv_file, capsys, monkeypatch_sleep):
    rc, _, err, polls = wait_cli(monkeypatch, tmp_path, csv_file, capsys, [PENDING], wait="2")
    assert rc == 2 and "still pending after" in err and f"kaggle competitions submission {SUBMISSION_REF}" in err
    assert polls >= 2


def test_wait_stops_on_a_refusal(monkeypatch, tmp_path, csv_file, capsys, monkeypatch_sleep):
    rc, _, err, polls = wait_cli(monkeypatch, tmp_path, csv_file, capsys, [(403, {"code": 403, "message": "no"})])
    assert rc == 2 and "refused to show submission" in err and polls == 1


@pytest.fixture
def monkeypatch_sleep(monkeypatch):
    """Polls without real pauses: time moves on by each pause instead (the timeout logic still runs)."""
    from yt8m_kit.kaggle import leaderboard

    now = [0.0]
    monkeypatch.setattr(leaderboard.time, "sleep", lambda s: now.__setitem__(0, now[0] + max(s, 0.5)))
    monkeypatch.setattr(leaderboard.time, "monotonic", lambda: now[0])
    return now
