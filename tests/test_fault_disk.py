"""Small and full disks under the data directory: a real tmpfs, the real `up` (nats-server, services, SQLite)."""

from __future__ import annotations

import json

import pytest

from tests.audio import write_tones
from tests.procs import run_cli
from tests.tmpfs import tmpfs

SR = 22050


@pytest.mark.slow  # the whole `up`
def test_up_starts_on_a_2_gib_data_disk_and_says_the_streams_are_small(tmp_path):
    library = tmp_path / "music"
    write_tones(library, [f"t{i}.flac" for i in range(6)], SR, base_hz=250, step_hz=53, seed=5, duration_s=1.0)
    with tmpfs(tmp_path / "data", "2g") as data:
        out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                      timeout=240)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "streams are limited to" in out.stderr
        report = json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)
        assert report["database"]["active"] == 6 and report["database"]["pending"] == 0
        assert any("streams limited to" in w for w in report["warnings"])
        conf = (data / "nats.conf").read_text()
        assert "max_file_store" in conf


def test_streams_are_created_smaller_when_jetstream_cannot_reserve_the_default(tmp_path, caplog):
    """A nats-server on a 300 MiB disk (not started by `up`): the 8 GiB default cannot be reserved (10047);
    the topology is still created, smaller, with a warning, and publishing works."""
    import asyncio
    import logging

    from tests.fixtures_nats import NatsServer
    from trackprint import bus

    async def topology(url: str) -> dict[str, int]:
        nc = await bus.connect(url, "test-small-disk")
        try:
            js = nc.jetstream()
            await bus.ensure_topology(js, bus.Topology(max_bytes=8 << 30))
            await bus.publish(js, bus.event_subject("added"), b"{}", "probe-1")
            return {name: (await js.stream_info(name)).config.max_bytes
                    for name in (bus.EVENTS_STREAM, bus.RESULTS_STREAM, bus.DEADLETTER_STREAM)}
        finally:
            await bus.close(nc)

    with tmpfs(tmp_path / "js", "300m") as base:
        server = NatsServer(str(base)).start()
        try:
            with caplog.at_level(logging.WARNING, logger="trackprint.bus"):
                sizes = asyncio.run(topology(server.url))
        finally:
            server.stop(kill=True)
    assert all(0 < size < 300 << 20 for size in sizes.values()), sizes
    assert "insufficient storage" in caplog.text


def _result(i: int):
    from trackprint.contracts import DecodeFacts, Fingerprint, FingerprintResult, Timings
    from trackprint.fingerprint import DIMENSIONS

    return FingerprintResult(
        path=f"/lib/track{i:05d}.flac", fingerprint=Fingerprint(**{name: 0.25 for name in DIMENSIONS}),
        fingerprint_version=1, engine="rust",
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=60.0),
        timings=Timings(total_s=0.1), content_id=f"c{i}", source_seq=i + 1)


def _publish_results(url: str, numbers, topology=None) -> None:
    import asyncio

    from tests.sources import answered
    from trackprint import bus
    from trackprint.contracts import encode

    async def main():
        nc = await bus.connect(url, "test-publisher")
        js = nc.jetstream()
        await bus.ensure_topology(js, topology)
        for result in await answered(js, [_result(i) for i in numbers]):  # each after its event
            await bus.publish(js, bus.result_subject(result.path), encode(result), f"r-{result.source_seq}")
        await bus.close(nc)

    asyncio.run(main())


def _consumer_info(url: str, stream: str, consumer: str):
    import asyncio

    import nats

    async def main():
        nc = await nats.connect(url)
        try:
            return await nc.jetstream().consumer_info(stream, consumer)
        finally:
            await nc.close()

    return asyncio.run(main())


def _fingerprints(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM track_fingerprints")).scalar_one()
    finally:
        engine.dispose()


def test_a_full_sqlite_disk_holds_results_on_the_stream_until_space_returns(tmp_path, nats_server):
    """The database's disk fills: nothing is acked, no delivery is spent, no dead letter, status says so;
    space freed: every result lands, with no restart and no replay."""
    from tests.procs import service, stop_all
    from tests.tmpfs import fill
    from tests.waiting import wait_until
    from trackprint import bus
    from trackprint.persister.store import Store

    n = 200
    with tmpfs(tmp_path / "db", "48m") as disk:
        db_url = f"sqlite:///{disk / 'trackprint.db'}"
        store = Store(db_url)
        store.migrate()
        store.close()
        import sqlite3

        with sqlite3.connect(disk / "trackprint.db") as raw:  # an empty WAL: every new page needs new space
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ballast = fill(disk)
        persister = service("persister", "--nats", nats_server.url, "--db", db_url, "--batch", "50",
                            log=tmp_path / "persister.log")
        try:
            _publish_results(nats_server.url, range(n))
            log = lambda: (tmp_path / "persister.log").read_text(errors="replace")  # noqa: E731
            wait_until(log, 60, 0.5, "the persister to notice the full disk", until=lambda t: "UNAVAILABLE" in t)

            def status_warnings():
                out = run_cli("status", "--json", "--db", db_url, "--nats", nats_server.url, timeout=60)
                return json.loads(out.stdout)["warnings"]

            warnings = wait_until(status_warnings, 60, 1.0, "status to warn about the database",
                                  until=lambda w: any("not taking writes" in x for x in w))
            assert any("full" in x for x in warnings), warnings
            info = _consumer_info(nats_server.url, bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)
            assert info.ack_floor.stream_seq == 0 and info.num_redelivered == 0, info
            ballast.unlink()  # space returns
            wait_until(lambda: _fingerprints(db_url), 120, 1.0, "every result committed", until=lambda c: c == n)
            assert persister.poll() is None  # no restart was needed
            info = _consumer_info(nats_server.url, bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)
            assert info.num_ack_pending == 0 and info.num_pending == 0
            dead = _consumer_info(nats_server.url, bus.DEADLETTER_STREAM, bus.REDRIVE_CONSUMER)
            assert dead.num_pending == 0 and dead.delivered.stream_seq == 0  # nothing was dead-lettered
            wait_until(status_warnings, 60, 1.0, "the warning to clear",
                       until=lambda w: not any("not taking writes" in x for x in w))
        finally:
            stop_all([persister])


def test_dead_lettered_results_are_re_driven_once_the_database_takes_writes(tmp_path, nats_server, db_url):
    """A result whose deliveries ran out (here: an earlier consumer that nak'ed it twice) is in the
    dead-letter stream; the persister applies it from there without a replay."""
    import asyncio

    from tests.procs import service, stop_all
    from tests.waiting import wait_until
    from trackprint import bus

    topology = bus.Topology(max_deliver=2, ack_wait_s=1)
    _publish_results(nats_server.url, [7], topology)

    async def exhaust():
        nc = await bus.connect(nats_server.url, "test-exhaust")
        js = nc.jetstream()
        sub = await bus.bind_persister(js)
        for _ in range(2):
            for msg in await sub.fetch(1, timeout=10):
                await msg.nak()
        try:  # a third pull: the server finds the deliveries spent and publishes the advisory
            await sub.fetch(1, timeout=2)
        except asyncio.TimeoutError:
            pass
        await bus.close(nc, [sub])

    asyncio.run(exhaust())
    wait_until(lambda: _consumer_info(nats_server.url, bus.DEADLETTER_STREAM, bus.REDRIVE_CONSUMER).num_pending,
               30, 0.5, "the MAX_DELIVERIES advisory in the dead-letter stream", until=lambda n: n == 1)
    env = dict(__import__("os").environ, TRACKPRINT_MAX_DELIVER="2", TRACKPRINT_ACK_WAIT_S="1")
    persister = service("persister", "--nats", nats_server.url, "--db", db_url, log=tmp_path / "p.log", env=env)
    try:
        wait_until(lambda: _fingerprints(db_url), 60, 0.5, "the dead-lettered result committed",
                   until=lambda c: c == 1, ignore=(Exception,))
        assert "re-driven from the dead-letter stream" in (tmp_path / "p.log").read_text()
    finally:
        stop_all([persister])


def test_a_full_data_disk_under_up_recovers_by_itself_once_space_returns(tmp_path):
    """JetStream's store and SQLite share a full disk: no service crash-loops, status names the cause,
    and once space is freed every file lands with no restart and no replay."""
    from tests.procs import service, stop_all
    from tests.tmpfs import fill
    from tests.waiting import wait_until

    library = tmp_path / "music"
    write_tones(library, [f"a{i}.flac" for i in range(3)], SR, base_hz=300, step_hz=41, seed=7, duration_s=1.0)
    with tmpfs(tmp_path / "data", "200m") as data:
        up = service("up", str(library), "--data-dir", str(data), "--analyzers", "1", log=tmp_path / "up.log",
                     env=dict(__import__("os").environ, TRACKPRINT_STREAM_MAX_BYTES=str(32 << 20)))

        def report():
            return json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)

        try:
            wait_until(lambda: report()["database"].get("active"), 120, 1.0, "the first files persisted",
                       until=lambda n: n == 3, ignore=(ValueError, KeyError))
            ballast = fill(data)
            write_tones(library, [f"b{i}.flac" for i in range(3)], SR, base_hz=900, step_hz=41, seed=8)
            wait_until(lambda: report()["warnings"], 90, 1.0, "status to say the disk is full",
                       until=lambda w: any("disk is full" in x for x in w))
            ballast.unlink()
            wait_until(lambda: report()["database"].get("active"), 180, 1.0, "every file persisted after the disk "
                       "had space again", until=lambda n: n == 6, ignore=(ValueError, KeyError))
            assert report()["database"]["pending"] == 0 and not report()["database"]["failed_by_code"]
            assert up.poll() is None
            assert "restarting" not in (tmp_path / "up.log").read_text()  # nothing crashed on the full disk
        finally:
            stop_all([up])
