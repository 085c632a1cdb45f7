"""A loopback stand-in for Kaggle's submission API, for driving the real kaggle client in tests.

KaggleApi.competition_submit (kaggle 2.2.5, kagglesdk) does:
  POST {endpoint}/v1/competitions.CompetitionApiService/StartSubmissionUpload -> {token, createUrl}
  PUT  createUrl (the raw file bytes)
  POST {endpoint}/v1/competitions.CompetitionApiService/CreateSubmission -> {message, ref}
The client builds its endpoint from kagglesdk.kaggle_env._env_to_endpoint[KaggleEnv.PROD]
(KaggleApi always passes PROD unless its CLI args say --local/--staging), so `point_kaggle_at`
replaces that table entry (through pytest's monkeypatch, so it is restored afterwards).

The server listens on 127.0.0.1 only, on a free port, and stops by itself after `lifetime_s`
(or when the `with` block ends). GetSubmission answers from `scoring` (a script of answers, for
--wait). Modes: "ok", "auth_fail" (401 on every call),
"upload_fail" (PUT answers 403), "hang" (StartSubmissionUpload never answers until the
server stops), "flaky" (the first `flaky_failures` StartSubmissionUpload calls answer 503).
"""

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "/v1/competitions.CompetitionApiService/"
SUBMISSION_REF = 424242


class KaggleStub:
    def __init__(self, mode="ok", *, username="stub-user", key="stub-key-0123456789", lifetime_s=60.0,
                 flaky_failures=1, scoring=None):
        self.mode, self.username, self.key = mode, username, key
        # GetSubmission answers, in order (the last repeats): (HTTP status, body) pairs, e.g.
        # (404, ...) then (200, {"ref": ..., "status": "PENDING"}) then (200, {..., "status": "COMPLETE", ...}).
        self.scoring = list(scoring or [(200, {"ref": SUBMISSION_REF, "status": "PENDING"})])
        self.lifetime_s, self.flaky_failures = lifetime_s, flaky_failures
        self.requests = []  # (method, path) in arrival order
        self.uploads = {}  # token -> bytes received by PUT
        self.submissions = []  # CreateSubmission bodies
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._server = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        stub = self

        class Handler(_Handler):
            pass

        Handler.stub = stub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self._watchdog = threading.Timer(self.lifetime_s, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.stopped.is_set():
            return
        self.stopped.set()  # releases "hang" handlers
        self._watchdog.cancel()
        threading.Thread(target=self._server.shutdown, daemon=True).start()
        self._server.server_close()

    def count(self, method, suffix):
        return sum(1 for m, p in self.requests if m == method and p.endswith(suffix))

    # -- behaviour -------------------------------------------------------------------------
    def authorized(self, header):
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return self.mode != "auth_fail" and header == expected


class _Handler(BaseHTTPRequestHandler):
    stub = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        stub = self.stub
        body = self._body()
        with stub._lock:
            stub.requests.append(("POST", self.path))
            n_start = stub.count("POST", "StartSubmissionUpload")
        if not stub.authorized(self.headers.get("Authorization")):
            return self._json(401, {"code": 401, "message": "Unauthenticated"})
        request = json.loads(body or b"{}")
        if self.path == SERVICE + "StartSubmissionUpload":
            if stub.mode == "hang":
                stub.stopped.wait(stub.lifetime_s)
                self.close_connection = True
                return
            if stub.mode == "flaky" and n_start <= stub.flaky_failures:
                return self._json(503, {"code": 503, "message": "Service Unavailable"})
            token = f"blob-token-{n_start}"
            return self._json(200, {"token": token, "createUrl": f"{stub.endpoint}/upload/{token}"})
        if self.path == SERVICE + "CreateSubmission":
            with stub._lock:
                stub.submissions.append(request)
            if request.get("blobFileTokens") not in stub.uploads:
                return self._json(400, {"code": 400, "message": "unknown blob token"})
            return self._json(200, {"message": "Successfully submitted to YouTube-8M", "ref": SUBMISSION_REF})
        if self.path == SERVICE + "GetSubmission":
            with stub._lock:
                polls = stub.count("POST", "GetSubmission")
            status, answer = stub.scoring[min(polls, len(stub.scoring)) - 1]
            if status != 200 or request.get("ref") == answer.get("ref"):
                return self._json(status, answer)
            return self._json(404, {"code": 404, "message": f"no submission {request.get('ref')}"})
        return self._json(404, {"code": 404, "message": f"no such method {self.path}"})

    def do_PUT(self):
        stub = self.stub
        body = self._body()
        with stub._lock:
            stub.requests.append(("PUT", self.path))
        if stub.mode == "upload_fail":
            return self._json(403, {"code": 403, "message": "signature does not match"})
        token = self.path.rsplit("/", 1)[-1]
        with stub._lock:
            stub.uploads[token] = body
        self._json(200, {})


def point_kaggle_at(monkeypatch, stub, tmp_path):
    """Point kaggle's PROD endpoint at the stub; credentials = the stub's user/key via env only."""
    from kagglesdk import kaggle_env

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # no ~/.kaggle/access_token, credentials.json
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_V1_TOKEN",
                 "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "config", str(home / ".kaggle" / "kaggle.json"))
    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.PROD, stub.endpoint)


def wait_until(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
