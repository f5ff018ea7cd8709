"""Running the ``trackprint`` CLI and its services as real subprocesses in tests.

- :func:`run_cli`: ``trackprint ARGS...`` to completion, output captured (text).
- :func:`service`: ``trackprint ARGS...`` in the background (a watcher, an
  analyzer, the persister, ``up``), its output to a log file when given.
- :func:`stop_all`: SIGTERM, wait, SIGKILL what does not stop.

The Rust server has its own fixture (tests/fixtures_rust.py), nats-server and
PostgreSQL theirs (tests/fixtures_nats.py, tests/fixtures_pg.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "trackprint.cli"]


def run_cli(*args: str, env=None, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``trackprint ARGS...`` to completion; stdout and stderr captured as UTF-8 text."""
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
