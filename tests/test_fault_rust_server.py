"""kill -9 of the Rust server in the middle of a backfill: the analyzers fall back to Python per file,
the server is restarted, and every file ends persisted exactly once (SQLite and PostgreSQL)."""

import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import create_engine, text

from tests.audio import write_tone_library
from tests.procs import stop_all
from trackprint.persister.db import normalize_url
from trackprint.binaries import free_port, rust_server_binary

FILES = 200
SR = 16000


def start_server(binary, port, library, log):
    proc = subprocess.Popen([binary, "--bind", f"127.0.0.1:{port}", "--root", str(library)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"trackprint-server did not become ready: {open(log).read()[-2000:]}")


def test_kill_9_rust_server_mid_backfill(tmp_path, nats_server, db_url):
    binary = rust_server_binary()
    assert binary, "trackprint-server is not built: run scripts/setup.sh"
    library = tmp_path / "music"
    library.mkdir()
    write_tone_library(library, FILES, SR, base_hz=100, step_hz=9, seed=5)
    port = free_port()
    server = start_server(binary, port, library, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    python = [sys.executable, "-m", "trackprint.cli"]
    procs = [
        subprocess.Popen([*python, "persister", "--nats", nats_server.url, "--db", db_url]),
        subprocess.Popen([*python, "analyzer", "--nats", nats_server.url, "--server", url]),
        subprocess.Popen([*python, "analyzer", "--nats", nats_server.url, "--server", url]),
        subprocess.Popen([*python, "watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"),
                          "--quiet-s", "0.5", str(library)]),
    ]
    engine = create_engine(normalize_url(db_url))

    def rows():
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM track_fingerprints")).scalar_one()
        except Exception:
            return 0

    def wait_rows(n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and rows() < n:
            time.sleep(0.3)
        return rows()

    try:
        assert 0 < wait_rows(FILES // 5, 180) < FILES
        server.send_signal(signal.SIGKILL)  # the Rust server dies mid-backfill
        server.wait()
        assert wait_rows(FILES // 2, 240) < FILES  # the analyzers keep going on the Python engine
        server = start_server(binary, port, library, tmp_path / "server.log")
        assert wait_rows(FILES, 300) == FILES
        time.sleep(3)
        with engine.connect() as conn:
            one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
            assert one("SELECT count(*) FROM track_fingerprints") == FILES
            assert one("SELECT count(DISTINCT path) FROM tracks") == one("SELECT count(*) FROM tracks") == FILES
            assert one("SELECT count(*) FROM analysis_failures") == 0
            engines = dict(conn.execute(text("SELECT engine, count(*) FROM track_fingerprints GROUP BY engine")).all())
        assert engines.get("rust", 0) > 0 and engines.get("python", 0) > 0, engines
    finally:
        engine.dispose()
        stop_all(procs)
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
