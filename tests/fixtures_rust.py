"""The real trackprint-server (rust-server/) for tests.

The command line and the readiness wait are the product's own
(``trackprint.analyzer.engines.server_command`` and ``wait_ready``), so the
tests start the server the way the analyzers and ``trackprint analyze`` do.
A missing binary is a test failure, not a skip: the fast engine silently
missing is the very failure this product exists to prevent.

- :func:`rust_server_binary`: the binary's path, or the test fails saying where
  it was looked for and how to build it.
- :class:`RustServer`: one server on a loopback port, reading under ``roots``;
  ``start()`` (also a restart on the same port after ``kill()``), ``stop()``
  (SIGTERM), ``kill()`` (SIGKILL), ``fingerprint(path)``, ``healthy()``,
  ``log_text()`` and an ``httpx`` ``client``.
- fixture ``start_rust_server``: ``start_rust_server(roots, max_concurrency=...)``
  starts one; every server it started is stopped after the test.

Every server started in the session is killed at session end even when a test
fails mid-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from trackprint import binaries
from trackprint.analyzer.engines import missing_binary_reason, server_command, wait_ready

_ALL: list["RustServer"] = []


def rust_server_binary() -> str:
    """The trackprint-server executable; fails the test when there is none."""
    found = binaries.rust_server_binary()
    if found is None:
        pytest.fail(missing_binary_reason())
    return found


class RustServer:
    def __init__(self, roots, *, max_concurrency: int | None = None, port: int | None = None,
                 log_path: str | os.PathLike | None = None, allow_symlinks_outside: bool = False):
        self.roots = [str(r) for r in roots]
        self.allow_symlinks_outside = allow_symlinks_outside
        self.max_concurrency = max_concurrency
        self.port = port or binaries.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the log goes to a file: an unread pipe would fill up and stall the server
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="trackprint-server-")) / "server.log"
        self.process: subprocess.Popen | None = None
        self._client: httpx.Client | None = None
        _ALL.append(self)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=120.0, limits=httpx.Limits(max_connections=32))
        return self._client

    def start(self, timeout_s: float = 20.0) -> "RustServer":
        """Start (or restart, on the same port) and wait until ``GET /ready`` answers 200."""
        assert self.process is None or self.process.poll() is not None, "already running"
        argv = server_command(rust_server_binary(), self.port, self.roots, self.max_concurrency,
                              self.allow_symlinks_outside)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        if not wait_ready(self.url, timeout_s, lambda: self.process.poll() is None):
            state = (f"exited with {self.process.returncode}" if self.process.poll() is not None
                     else f"was not ready within {timeout_s:g} s")
            self.stop()
            raise AssertionError(f"trackprint-server on port {self.port} {state}: {self.log_text()[-3000:]}")
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def fingerprint(self, path, **extra) -> httpx.Response:
        return self.client.post(f"{self.url}/v1/fingerprint", json={"path": str(path), **extra})

    def healthy(self) -> bool:
        return (self.process is not None and self.process.poll() is None
                and self.client.get(f"{self.url}/health").status_code == 200)

    def kill(self) -> None:
        """SIGKILL (a crash); ``start()`` brings it back on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within ``timeout_s``; closes the client."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_rust_server(tmp_path):
    """``start_rust_server(roots, max_concurrency=None, port=None, allow_symlinks_outside=False)``: a started :class:`RustServer`,
    logging to ``tmp_path``; each is stopped after the test."""
    started: list[RustServer] = []

    def start(roots, **kwargs) -> RustServer:
        kwargs.setdefault("log_path", tmp_path / f"trackprint-server-{len(started)}.log")
        server = RustServer(roots, **kwargs)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session", autouse=True)
def _rust_session_cleanup():
    yield
    for server in _ALL:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()
