"""Replay: rebuild a database from the results stream without re-analysing (real NATS, real services)."""

import json
import os
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from tests.audio import write_tone_library
from tests.procs import run_cli, service, stop_all
from tests.waiting import wait_until
from trackprint.persister.db import normalize_url

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

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


def start_pipeline(nats_url, db_url, library, tmp_path):
    """persister + one Python-only analyzer + watcher on ``library``."""
    return [
        service("persister", "--nats", nats_url, "--db", db_url),
        service("analyzer", "--nats", nats_url, "--library", str(library), "--no-rust"),
        service("watcher", "--nats", nats_url, "--state", str(tmp_path / "w.sqlite"), "--quiet-s", "0.5", str(library)),
    ]


# The database is created by the persister once it runs: until then a query fails, which is "not yet".
NOT_YET = (Exception,)


def count(db_url, sql):
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def current_state(snap):
    """What the streams' default retention (each file's latest message) lets replay rebuild: the live and the
    failed rows with their fingerprints and failures, and which paths are tombstones (persister/README.md)."""
    live = [row for row in snap["tracks"] if "deleted" not in row]
    deleted = sorted(row[0] for row in snap["tracks"] if "deleted" in row)
    live_paths = {row[0] for row in live}
    return {"live": live, "deleted": deleted, "failures": snap["failures"],
            "fingerprints": [row for row in snap["fingerprints"] if row[0] in live_paths]}


def test_replay_into_an_empty_database_gives_the_same_rows_and_twice_changes_nothing(tmp_path, nats_server, db_url):
    """With the default retention (each file's latest message) replay gives every path's current state."""
    replay_round_trip(tmp_path, nats_server, db_url, history=False)


def test_with_full_history_replay_gives_every_row_as_it_was(tmp_path, nats_server, monkeypatch):
    """With the streams keeping every message (TRACKPRINT_STREAM_MSGS_PER_FILE=-1) replay gives every row as it
    was, tombstones' last known sizes included (SQLite: the backends' part is the test above)."""
    monkeypatch.setenv("TRACKPRINT_STREAM_MSGS_PER_FILE", "-1")
    replay_round_trip(tmp_path, nats_server, f"sqlite:///{tmp_path / 'rebuilt.db'}", history=True)


def replay_round_trip(tmp_path, nats_server, db_url, *, history: bool) -> None:
    library = tmp_path / "music"
    library.mkdir()
    write_tone_library(library, 8, SR, base_hz=150, step_hz=40, seed=0, name="t{i}.flac")
    (library / "broken.flac").write_bytes(b"\x00" * 64)
    original = f"sqlite:///{tmp_path / 'original.db'}"
    procs = start_pipeline(nats_server.url, original, library, tmp_path)
    try:
        wait_until(lambda: count(original, "SELECT count(*) FROM track_fingerprints") == 8, 120, 0.5,
                   "8 fingerprints", ignore=NOT_YET)
        os.remove(library / "t3.flac")  # a tombstone
        os.rename(library / "t5.flac", library / "moved.flac")  # a move
        wait_until(lambda: count(original, "SELECT count(*) FROM tracks WHERE state = 'deleted'") == 2
                   and count(original, "SELECT count(*) FROM tracks WHERE path LIKE '%moved.flac'") == 1,
                   120, 0.5, "the tombstone and the move", ignore=NOT_YET)
        time.sleep(2)
    finally:
        stop_all(procs)

    before = snapshot(original)
    assert len(before["failures"]) == 1 and before["failures"][0][1] == "unsupported_format"

    replay = run_cli("replay", "--nats", nats_server.url, "--db", db_url, timeout=180)
    assert replay.returncode == 0, replay.stderr
    assert "replay: done" in replay.stderr
    rebuilt = snapshot(db_url)
    expected, got = (before, rebuilt) if history else (current_state(before), current_state(rebuilt))
    for table in expected:
        for a, b in zip(expected[table], got[table]):
            assert a == b, (table, a, b)
    assert got == expected
    assert len(current_state(rebuilt)["live"]) == 8 and current_state(rebuilt)["deleted"] == [
        str(library / "t3.flac"), str(library / "t5.flac")]

    again = run_cli("replay", "--nats", nats_server.url, "--db", db_url, timeout=180)
    assert again.returncode == 0, again.stderr
    assert snapshot(db_url) == rebuilt


def test_reanalyse_republishes_current_files_and_the_stale_count_goes_to_zero(tmp_path, nats_server, db_url):
    """After a spec change, `replay --reanalyse` re-runs analysis from the events stream.

    A version change is simulated by marking every stored fingerprint as an
    older version and emptying the content cache (a new version never finds
    old cache entries, as its keys carry the version).
    """
    import asyncio

    import nats

    from trackprint import bus

    library = tmp_path / "music"
    library.mkdir()
    write_tone_library(library, 6, SR, base_hz=300, step_hz=50, seed=1, name="t{i}.flac")
    db = db_url
    procs = start_pipeline(nats_server.url, db, library, tmp_path)
    try:
        wait_until(lambda: count(db, "SELECT count(*) FROM track_fingerprints") == 6, 120, 0.5, "6 fingerprints",
                   ignore=NOT_YET)
        os.remove(library / "t0.flac")
        wait_until(lambda: count(db, "SELECT count(*) FROM tracks WHERE state = 'deleted'") == 1, 60, 0.5,
                   "a tombstone", ignore=NOT_YET)
        engine = create_engine(normalize_url(db))
        with engine.begin() as conn:
            conn.execute(text("UPDATE track_fingerprints SET fingerprint_version = 0"))
        engine.dispose()

        async def purge_cache():
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().purge_stream(f"KV_{bus.FINGERPRINT_KV}")
            await nc.close()

        asyncio.run(purge_cache())
        status = run_cli("status", "--json", "--db", db, "--nats", nats_server.url, timeout=60)
        assert json.loads(status.stdout)["database"]["stale"] == 5

        out = run_cli("replay", "--reanalyse", "--nats", nats_server.url, "--rate", "20", timeout=120)
        assert out.returncode == 0, out.stderr
        assert "5 current files" in out.stderr  # the removed file is not re-analysed
        wait_until(lambda: count(db, "SELECT count(*) FROM track_fingerprints f JOIN tracks t ON t.id = f.track_id "
                                     "WHERE t.state = 'active' AND f.fingerprint_version = 0") == 0,
                   120, 0.5, "stale rows to be re-analysed", ignore=NOT_YET)
        assert count(db, "SELECT count(*) FROM track_fingerprints WHERE reused") == 0  # analysed, not copied
        assert count(db, "SELECT count(*) FROM tracks WHERE state = 'active'") == 5
    finally:
        stop_all(procs)
