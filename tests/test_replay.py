"""Replay: rebuild a database from the results stream without re-analysing (real NATS, real services)."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import soundfile as sf
from sqlalchemy import create_engine, text

from trackprint.db import normalize_url

SR = 16000
WRITE_TIMES = {"created_at", "updated_at"}  # when the row was written, not what it says


def plain(value):
    """Compare across backends: PostgreSQL returns aware datetimes, SQLite naive UTC strings."""
    if isinstance(value, datetime):
        return str(value.astimezone(timezone.utc).replace(tzinfo=None))
    return value


def snapshot(db_url):
    """Every table's content, minus the write timestamps, in a stable order."""
    engine = create_engine(normalize_url(db_url))
    out = {}
    with engine.connect() as conn:
        out["tracks"] = [tuple(plain(v) for k, v in r._mapping.items() if k not in WRITE_TIMES | {"id"})
                         for r in conn.execute(text("SELECT * FROM tracks ORDER BY path"))]
        out["fingerprints"] = [tuple(plain(v) for k, v in r._mapping.items() if k not in WRITE_TIMES | {"track_id"})
                               for r in conn.execute(text(
                                   "SELECT t.path, f.* FROM track_fingerprints f JOIN tracks t ON t.id = f.track_id "
                                   "ORDER BY t.path"))]
        out["failures"] = [tuple(r) for r in conn.execute(text(
            "SELECT path, code, stage, attempts, source_seq FROM analysis_failures ORDER BY path, code"))]
    engine.dispose()
    return out


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def count(db_url, sql):
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_replay_into_an_empty_database_gives_the_same_rows_and_twice_changes_nothing(tmp_path, nats_server, db_url):
    library = tmp_path / "music"
    library.mkdir()
    for i in range(8):
        tone = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * np.arange(SR) / SR)
        sf.write(library / f"t{i}.flac", tone.astype(np.float32), SR, subtype="PCM_16")
    (library / "broken.flac").write_bytes(b"\x00" * 64)
    original = f"sqlite:///{tmp_path / 'original.db'}"
    python = [sys.executable, "-m", "trackprint.cli"]
    procs = [
        subprocess.Popen([*python, "persister", "--nats", nats_server.url, "--db", original]),
        subprocess.Popen([*python, "analyzer", "--nats", nats_server.url, "--no-rust"]),
        subprocess.Popen([*python, "watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"),
                          "--quiet-s", "0.5", str(library)]),
    ]
    try:
        wait_for(lambda: count(original, "SELECT count(*) FROM track_fingerprints") == 8, 120, "8 fingerprints")
        os.remove(library / "t3.flac")  # a tombstone
        os.rename(library / "t5.flac", library / "moved.flac")  # a move
        wait_for(lambda: count(original, "SELECT count(*) FROM tracks WHERE state = 'deleted'") == 2
                 and count(original, "SELECT count(*) FROM tracks WHERE path LIKE '%moved.flac'") == 1,
                 120, "the tombstone and the move")
        time.sleep(2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)

    before = snapshot(original)
    assert len(before["failures"]) == 1 and before["failures"][0][1] == "unsupported_format"

    replay = subprocess.run([*python, "replay", "--nats", nats_server.url, "--db", db_url],
                            capture_output=True, text=True, timeout=180)
    assert replay.returncode == 0, replay.stderr
    assert "replay: done" in replay.stderr
    rebuilt = snapshot(db_url)
    for table in before:
        for a, b in zip(before[table], rebuilt[table]):
            assert a == b, (table, a, b)
    assert rebuilt == before

    again = subprocess.run([*python, "replay", "--nats", nats_server.url, "--db", db_url],
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert snapshot(db_url) == before
