"""kill -9 of the Rust server in the middle of a backfill: the analyzers fall back to Python per file,
the server is restarted, and every file ends persisted exactly once (SQLite and PostgreSQL)."""

import time

import pytest
from sqlalchemy import create_engine, text

from tests.audio import write_tone_library
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.persister.db import normalize_url

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

WAVE = 70
FILES = 3 * WAVE
SR = 16000
BREAKER_COOLDOWN_S = 5  # the analyzers' --breaker-cooldown-s (30 by default: a wait the test would sit through)


def test_kill_9_rust_server_mid_backfill(tmp_path, nats_server, db_url, start_rust_server):
    library = tmp_path / "music"
    library.mkdir()
    # three waves: the first is being analysed when the server dies, the second arrives while it is
    # dead (so the fallback must run even if the first wave was finished before the kill landed), the
    # third after it is back (so the Rust engine must be used again)
    write_tone_library(library, WAVE, SR, base_hz=100, step_hz=9, seed=5, name="a{i:03d}.flac")
    server = start_rust_server([library])
    url = server.url
    procs = [
        service("persister", "--nats", nats_server.url, "--db", db_url),
        *(service("analyzer", "--nats", nats_server.url, "--library", str(library), "--server", url,
                  "--breaker-cooldown-s", str(BREAKER_COOLDOWN_S)) for _ in range(2)),
        service("watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"), "--quiet-s", "0.5",
                str(library)),
    ]
    engine = create_engine(normalize_url(db_url))

    def rows():
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM track_fingerprints")).scalar_one()
        except Exception:
            return 0

    def wait_rows(n, timeout):
        return wait_until(rows, timeout, 0.3, f"{n} fingerprint rows", until=lambda count: count >= n)

    try:
        assert 0 < wait_rows(WAVE // 5, 180)
        server.kill()  # the Rust server dies mid-backfill (SIGKILL)
        write_tone_library(library / "while-dead", WAVE, SR, base_hz=110, step_hz=9, seed=6)
        assert wait_rows(2 * WAVE, 240) == 2 * WAVE  # the analyzers keep going on the Python engine
        server.start()  # back on the same port
        time.sleep(BREAKER_COOLDOWN_S + 1)  # the analyzers' breaker stays open that long, then probes again
        write_tone_library(library / "after", WAVE, SR, base_hz=120, step_hz=9, seed=7)
        assert wait_rows(FILES, 300) == FILES
        time.sleep(3)
        with engine.connect() as conn:
            one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
            assert one("SELECT count(*) FROM track_fingerprints") == FILES
            assert one("SELECT count(DISTINCT path) FROM tracks") == one("SELECT count(*) FROM tracks") == FILES
            assert one("SELECT count(*) FROM analysis_failures") == 0
            engines = dict(conn.execute(text("SELECT engine, count(*) FROM track_fingerprints GROUP BY engine")).all())
            after = dict(conn.execute(text(
                "SELECT f.engine, count(*) FROM track_fingerprints f JOIN tracks t ON t.id = f.track_id"
                " WHERE t.path LIKE '%/after/%' GROUP BY f.engine")).all())
        assert engines.get("rust", 0) > 0 and engines.get("python", 0) > 0, engines
        assert after.get("rust", 0) > 0, after  # back on the fast engine once the server is back
    finally:
        engine.dispose()
        stop_all(procs)


def test_a_frozen_rust_server_is_a_timeout_then_an_open_breaker_then_answers_again(tmp_path, start_rust_server):
    """SIGSTOP: the server's socket still accepts (the kernel's backlog) but nothing answers. The client
    must give up after its own timeout, with that reason, open its breaker after ``breaker_threshold``
    such failures (later files go straight to the fallback, no wait), and use the server again once it
    is back and the cooldown is over."""
    import asyncio
    import os
    import signal

    from tests.audio import SR as AUDIO_SR, music_like, write_audio
    from trackprint.analyzer.engines import RustClient, RustUnavailable

    (tmp_path / "music").mkdir()
    track = write_audio(tmp_path / "music" / "a.flac", music_like(2.0, seed=3), AUDIO_SR)
    server = start_rust_server([track.parent])

    async def scenario() -> list[str]:
        client = RustClient(server.url, timeout_s=1.0, breaker_threshold=2, breaker_cooldown_s=1.0)
        seen = []
        try:
            assert (await client.analyse(str(track))).fingerprint is not None
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                for _ in range(3):
                    started = time.monotonic()
                    try:
                        await client.analyse(str(track))
                        seen.append("answered")
                    except RustUnavailable as exc:
                        seen.append(f"{exc} after {time.monotonic() - started:.1f} s")
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            await asyncio.sleep(1.2)  # the cooldown
            outcome = await client.analyse(str(track))
            seen.append("answered" if outcome.fingerprint is not None else f"error {outcome.error}")
            assert not client.breaker_open and client.consecutive_failures == 0
        finally:
            await client.aclose()
        return seen

    first, second, third, after = asyncio.run(scenario())
    assert first.startswith("no answer within 1.0 s") and second.startswith("no answer within 1.0 s"), (first, second)
    assert float(first.split(" after ")[1].split()[0]) < 5  # the client's own limit, not the server's 300 s
    assert third.startswith("circuit breaker open") and third.endswith("after 0.0 s"), third
    assert after == "answered"
