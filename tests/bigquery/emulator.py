"""A local BigQuery emulator for the tests (a labelled stand-in, not BigQuery), and the guard in front of it.

``bqemulator`` pins duckdb 1.x while this project uses duckdb 2.x, so it lives in its own virtual environment,
created once and cached under ``~/.cache/oso-dagster`` (keyed by the versions below). It needs DuckDB's
``spatial`` extension at start-up; offline that comes from the ``duckdb-extension-*`` wheels, installed into a
DuckDB extension folder under that venv (the emulator runs with ``HOME`` pointing there).

The emulator's ``jobs.query`` answers HTTP 200 with an ``errors`` list when SQL fails, where BigQuery answers
with an HTTP error; clients then treat failing SQL as success. :class:`GuardProxy` sits between every client
and the emulator and turns such answers into the HTTP error BigQuery would send.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from filelock import FileLock

BQEMULATOR_VERSION = "1.4.0"
DUCKDB_VERSION = "1.5.5"
PROJECT = "oso-emulator"
REQUIREMENTS = [
    f"bqemulator=={BQEMULATOR_VERSION}",
    f"duckdb=={DUCKDB_VERSION}",
    f"duckdb-extension-spatial=={DUCKDB_VERSION}",
    f"duckdb-extension-avro=={DUCKDB_VERSION}",
    "numpy",  # the emulator's built-in UDFs need it at start-up
]
_READY_MARKER = ".oso-ready"
_INSTALL_EXTENSIONS = """
import pathlib, duckdb, duckdb_extension_spatial, duckdb_extension_avro
con = duckdb.connect()
for module, name in ((duckdb_extension_spatial, "spatial"), (duckdb_extension_avro, "avro")):
    path = next(pathlib.Path(module.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    con.execute(f"INSTALL '{path}'")
    con.execute(f"LOAD {name}")
"""


class EmulatorUnavailable(RuntimeError):
    """The emulator could not be installed or started here (the tests skip, or fail in CI, with this reason)."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "oso-dagster"


def venv_dir() -> Path:
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return cache_root() / f"bqemulator-{BQEMULATOR_VERSION}-duckdb-{DUCKDB_VERSION}-{python}"


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=900)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise EmulatorUnavailable(f"`{' '.join(command[:4])} ...` failed:\n{tail}")


def ensure_venv() -> Path:
    """The emulator's venv, created on first use (uv when on PATH, else venv + pip); returns its root."""
    root = venv_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if (root / _READY_MARKER).is_file():
            return root
        shutil.rmtree(root, ignore_errors=True)
        python = root / "bin" / "python"
        uv = shutil.which("uv")
        if uv:
            _run([uv, "venv", "-q", "--python", sys.executable, str(root)])
            _run([uv, "pip", "install", "-q", "--python", str(python), *REQUIREMENTS])
        else:
            _run([sys.executable, "-m", "venv", str(root)])
            _run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS])
        home = root / "home"
        home.mkdir(exist_ok=True)
        _run([str(python), "-c", _INSTALL_EXTENSIONS], env={**os.environ, "HOME": str(home)})
        (root / _READY_MARKER).write_text(" ".join(REQUIREMENTS), encoding="utf-8")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_emulator(root: Path, log_path: Path) -> Iterator[str]:
    """Start ``bqemulator`` (in memory) on free ports; yield its REST base URL; stop it afterwards."""
    rest, grpc = free_port(), free_port()
    command = [str(root / "bin" / "bqemulator"), "start", "--rest-port", str(rest), "--grpc-port", str(grpc),
               "--project", PROJECT, "--ephemeral", "--log-level", "warning", "--log-format", "console"]
    env = {**os.environ, "HOME": str(root / "home")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{rest}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise EmulatorUnavailable(f"bqemulator exited with {process.returncode}:\n{tail}")
            try:
                urllib.request.urlopen(f"{base}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise EmulatorUnavailable("bqemulator did not answer within 90 s") from None
                time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
                "content-length", "host"}
_STATUS_BY_REASON = {"notFound": 404, "duplicate": 409, "accessDenied": 403, "invalidQuery": 400, "invalid": 400}


def query_error(body: bytes) -> tuple[int, bytes] | None:
    """If ``body`` is a ``jobs.query``/``getQueryResults`` answer carrying ``errors``, the HTTP error BigQuery sends."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    kinds = ("bigquery#queryResponse", "bigquery#getQueryResultsResponse")
    if not isinstance(data, dict) or data.get("kind") not in kinds:
        return None
    errors = data.get("errors") or []
    if not errors:
        return None
    first = errors[0]
    status = _STATUS_BY_REASON.get(first.get("reason", ""), 400)
    error = {"code": status, "message": first.get("message", "query failed"), "errors": errors}
    return status, json.dumps({"error": error}).encode()


class GuardProxy:
    """An HTTP proxy to the emulator that raises failing SQL the way BigQuery does (see module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.translated = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GuardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        guard = self
        upstream = urllib.parse.urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=600)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    status, payload = response.status, response.read()
                    out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
                finally:
                    conn.close()
                if status == 200 and "/queries" in self.path:
                    error = query_error(payload)
                    if error is not None:
                        guard.translated += 1
                        status, payload = error
                        out_headers = [("Content-Type", "application/json; charset=UTF-8")]
                out_headers = [(k, v.replace(guard.upstream, guard.url)) for k, v in out_headers]
                self.send_response(status)
                for key, value in out_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler



def main() -> int:
    """Install the emulator and start it once: .ci/run does this before the tests, so CI stops on its reason."""
    import tempfile

    try:
        root = ensure_venv()
        with tempfile.TemporaryDirectory() as tmp, running_emulator(root, Path(tmp) / "emulator.log") as url:
            print(f"bqemulator {BQEMULATOR_VERSION} is installed in {root} and answers at {url}")
    except EmulatorUnavailable as exc:
        print(f"the BigQuery emulator (bqemulator {BQEMULATOR_VERSION}) is not usable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
