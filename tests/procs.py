"""Running the ``trackprint`` CLI and its services as real subprocesses in tests.

- :func:`run_cli`: ``trackprint ARGS...`` to completion, output captured (text).
- :func:`service`: ``trackprint ARGS...`` in the background (a watcher, an
  analyzer, the persister, ``up``), its output to a log file when given.
- :func:`stop_all`: SIGTERM, wait, SIGKILL what does not stop.

The Rust server has its own fixture (tests/fixtures_rust.py), nats-server and
PostgreSQL theirs (tests/fixtures_nats.py, tests/fixtures_pg.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "trackprint.cli"]


_scratch_data_dir: str | None = None


def scratch_data_dir() -> str:
    """One temporary data directory for this test process (removed at exit)."""
    global _scratch_data_dir
    if _scratch_data_dir is None:
        _scratch_data_dir = tempfile.mkdtemp(prefix="trackprint-test-data-")
        atexit.register(shutil.rmtree, _scratch_data_dir, True)
    return _scratch_data_dir


def run_cli(*args: str, env=None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``trackprint ARGS...`` to completion; stdout and stderr captured as UTF-8 text.

    A command given ``--db`` without ``--data-dir`` still has a data directory (its ``cache/`` takes the
    similarity and query-column files): unless the environment names one, TRACKPRINT_DATA_DIR is set to a
    temporary folder, never the user's ~/.local/share/trackprint."""
    if "--db" in args and "--data-dir" not in args and "TRACKPRINT_DATA_DIR" not in (env or os.environ):
        env = dict(os.environ if env is None else env, TRACKPRINT_DATA_DIR=scratch_data_dir())
    return subprocess.run([*CLI, *args], capture_output=True, text=True, encoding="utf-8", env=env,
                          timeout=timeout, **kwargs)


def service(*args: str, log=None, env=None, **popen_kwargs) -> subprocess.Popen:
    """``trackprint ARGS...`` in the background: stdout and stderr appended to ``log`` when given,
    else as ``popen_kwargs`` say (e.g. ``stdout=subprocess.PIPE, text=True``), else inherited."""
    out = open(log, "ab") if log else None
    if out:
        popen_kwargs.update(stdout=out, stderr=subprocess.STDOUT)
    try:
        return subprocess.Popen([*CLI, *args], env=env, **popen_kwargs)
    finally:
        if out:
            out.close()


def stop_all(procs, timeout: float = 30.0) -> None:
    """SIGTERM every process (they finish what they hold), then wait; kill what does not stop."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sqlite_fingerprint_count(db) -> int:
    """Fingerprints in the SQLite file ``db`` so far (0 while it or its tables do not exist yet)."""
    from sqlalchemy import create_engine, text

    if not Path(db).exists():
        return 0
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM track_fingerprints")).scalar_one()
    except Exception:  # the persister has not created the schema yet
        return 0
    finally:
        engine.dispose()
