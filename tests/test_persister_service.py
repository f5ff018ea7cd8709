"""The persister service against a real nats-server (tests.fixtures_nats) and real SQLite/PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import msgspec
import nats
import pytest
from sqlalchemy import create_engine, func, select, text

from tests.sources import answered
from tests.waiting import wait_until, wait_until_async
from trackprint.persister.models import analysis_failures, track_fingerprints, tracks
from trackprint.persister.service import PersisterConfig, PersisterService
from trackprint.persister.store import Store
from trackprint import bus
from trackprint.contracts import DecodeFacts, FileEvent, Fingerprint, FingerprintResult, Timings, TrackMoved, TrackRemoved, encode
from trackprint.persister.db import normalize_url
from trackprint.fingerprint import DIMENSIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _short_ack_wait(monkeypatch):
    # Redelivery of unacked messages (after a kill -9) within seconds, not a minute.
    monkeypatch.setenv("TRACKPRINT_ACK_WAIT_S", "2")
    monkeypatch.setenv("TRACKPRINT_MAX_DELIVER", "20")


def result(i: int, seq: int | None = None) -> FingerprintResult:
    values = {name: 0.25 for name in DIMENSIONS}
    values["lufs"] = -float(i % 60)
    return FingerprintResult(
        path=f"/lib/track{i:05d}.flac", fingerprint=Fingerprint(**values), fingerprint_version=1, engine="rust",
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=60.0),
        timings=Timings(total_s=0.1), content_id=f"c{i}", source_seq=seq if seq is not None else i + 1,
    )


async def _publish(url: str, payloads: list[tuple[str, bytes | FingerprintResult]]) -> None:
    """Publishes each payload; a result (not bytes) after the event it answers (tests/sources.py)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await bus.ensure_topology(js)
    for subject, data in payloads:
        if not isinstance(data, bytes):
            data = encode((await answered(js, [data]))[0])
        await js.publish(subject, data)
    await nc.close()


def publish_results(url: str, start: int, n: int) -> None:
    asyncio.run(_publish(url, [(bus.result_subject(result(i).path), result(i)) for i in range(start, start + n)]))


async def _consumer(url: str):
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)
    finally:
        await nc.close()


def consumer(url: str):
    return asyncio.run(_consumer(url))


def db_counts(db_url: str) -> tuple[int, int, int, int]:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as c:
            return (
                c.execute(select(func.count()).select_from(tracks)).scalar_one(),
                c.execute(select(func.count(func.distinct(tracks.c.path)))).scalar_one(),
                c.execute(select(func.count()).select_from(track_fingerprints)).scalar_one(),
                c.execute(select(func.count()).select_from(analysis_failures)).scalar_one(),
            )
    finally:
        engine.dispose()


async def _wait(predicate, timeout: float, what: str, interval: float = 0.2):
    """tests.waiting.wait_until_async under the name the start-up code below calls."""
    return await wait_until_async(predicate, timeout, interval, what)


async def _drained(url: str) -> bool:
    info = await _consumer(url)
    return info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0


def _service(nats_url: str, db_url: str, **kw) -> PersisterService:
    cfg = PersisterConfig(nats=nats_url, db=db_url, batch=kw.pop("batch", 50), batch_wait_s=0.2,
                          nak_delay_s=kw.pop("nak_delay_s", 0.3), max_backoff_s=1.0, **kw)
    return PersisterService(cfg)


async def _start(service: PersisterService) -> asyncio.Task:
    task = asyncio.create_task(service.run(install_signal_handlers=False))
    # running once the consumer has a waiting pull request
    async def bound():
        if task.done():
            task.result()
        try:
            return (await _consumer(service.config.nats if isinstance(service.config.nats, str) else "")).num_waiting > 0
        except Exception:
            return False
    await _wait(bound, 30, "the persister to bind")
    return task


async def _stop(service: PersisterService, task: asyncio.Task) -> None:
    service.stop()
    assert await asyncio.wait_for(task, 30) == 0


def test_results_are_persisted_and_acked(nats_server, db_url):
    n = 230
    garbage = b"\x00 definitely not json"
    nan_doc = json.loads(encode(result(9999)))
    nan_doc["fingerprint"]["lufs"] = None  # a NaN, as hand-written JSON writes it

    async def main():
        service = _service(nats_server.url, db_url)
        task = await _start(service)
        payloads = [encode(r) for r in await answered(service.js, [result(i) for i in range(n)])]
        subjects = [bus.result_subject(result(i).path) for i in range(n)]
        publish_payloads = list(zip(subjects, payloads))
        publish_payloads += [(bus.result_subject("/lib/garbage"), garbage),
                             (bus.result_subject(result(9999).path), json.dumps(nan_doc).encode())]
        await _publish(nats_server.url, publish_payloads)
        await wait_until_async(lambda: _drained(nats_server.url), 60, message="every result acked")
        # the same results published once more (new results messages answering events already answered: stale,
        # nothing changes), after the first ones were read: on their files' subjects a copy would replace an
        # unread original
        await _publish(nats_server.url, list(zip(subjects[:10], payloads[:10])))
        await wait_until_async(lambda: _drained(nats_server.url), 60, message="every copy acked")
        await _stop(service, task)
        return service

    service = asyncio.run(main())
    info = consumer(nats_server.url)
    assert info.num_ack_pending == 0 and info.num_pending == 0 and info.num_redelivered == 0
    total, distinct, fps, failures = db_counts(db_url)
    assert (total, distinct, fps) == (n + 1, n + 1, n)  # + the track of the NaN message (state failed)
    assert failures == 2
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as c:
        invalid = c.execute(select(analysis_failures.c.path, analysis_failures.c.message)
                            .where(analysis_failures.c.code == "invalid_message")
                            .order_by(analysis_failures.c.path)).all()
    engine.dispose()
    assert [p for p, _ in invalid] == ["", "/lib/track09999.flac"]
    assert "lufs" in invalid[1][1] and "unreadable" in invalid[0][1]
    m = service.metrics.values
    assert m["persisted"] == n and m["stale"] == 10 and m["invalid"] == 2 and m["acked"] == n + 12
    assert m["db_errors"] == 0


class SqliteLock:
    """An exclusive lock on a SQLite file, held by one dedicated thread from ``acquire()`` to ``release()``.

    A sqlite3 connection may only be used by the thread that opened it, and the
    test calls from the event loop through ``asyncio.to_thread``, which runs
    each call on whichever pool thread is free: so the connection is opened,
    locked, rolled back and closed all inside this class's own thread, and
    nothing depends on which thread calls ``acquire``/``release``.
    """

    def __init__(self, path: str):
        self.path = path
        self._locked = threading.Event()
        self._release = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._hold, name="sqlite-lock-holder", daemon=True)

    def _hold(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                conn.execute("BEGIN EXCLUSIVE")
                self._locked.set()
                self._release.wait()
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except BaseException as exc:  # reported by acquire()/release()
            self._error = exc
        finally:
            self._locked.set()

    def acquire(self, timeout_s: float = 60) -> None:
        self._thread.start()
        assert self._locked.wait(timeout_s), f"no exclusive lock on {self.path} within {timeout_s} s"
        if self._error is not None:
            raise self._error

    def release(self, timeout_s: float = 60) -> None:
        self._release.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"the lock on {self.path} was not released within {timeout_s} s"
        if self._error is not None:
            raise self._error


def test_database_outage_naks_and_persists_everything_once_it_is_back(nats_server, db_url, request):
    n = 120
    is_pg = db_url.startswith("postgresql")
    pg = request.getfixturevalue("pg_server") if is_pg else None
    lock = None if is_pg else SqliteLock(normalize_url(db_url).database)

    def make_unavailable():
        if is_pg:
            pg.stop(mode="fast")
        else:
            lock.acquire()

    def make_available():
        if is_pg:
            pg.start()
        else:
            lock.release()

    async def main():
        service = _service(nats_server.url, db_url, batch=25, sqlite_busy_timeout_s=0.3)
        task = await _start(service)
        await asyncio.to_thread(make_unavailable)
        try:
            await _publish(nats_server.url, [(bus.result_subject(result(i).path), result(i)) for i in range(n)])
            await wait_until_async(lambda: service.metrics.values["db_errors"], 60, message="a database error",
                                   until=lambda errors: errors >= 1)
            await asyncio.sleep(1.0)
            assert service.metrics.values["acked"] == 0, "acked while the database was down"
            info = await _consumer(nats_server.url)
            assert info.ack_floor.stream_seq == 0  # nothing acked
        finally:
            await asyncio.to_thread(make_available)
        await wait_until_async(lambda: _drained(nats_server.url), 90, message="every result acked after the outage")
        await _stop(service, task)
        return service

    service = asyncio.run(main())
    total, distinct, fps, failures = db_counts(db_url)
    assert (total, distinct, fps, failures) == (n, n, n, 0)
    assert service.metrics.values["acked"] >= n and service.metrics.values["db_errors"] >= 1


def test_the_store_process_killed_mid_stream_is_restarted_and_nothing_is_lost(nats_server, db_url):
    """The database work runs in a child process (persister/store_process.py). kill -9 of that child
    while results stream in: the batch it held is not acked, the death is counted as a database
    error, a new child takes over, and every result ends in exactly one row."""
    n = 300

    async def main():
        service = _service(nats_server.url, db_url, batch=20)
        task = await _start(service)
        await _publish(nats_server.url, [(bus.result_subject(result(i).path), result(i)) for i in range(n)])
        await wait_until_async(lambda: service.metrics.values["acked"], 60, message="the first batches",
                               until=lambda acked: acked >= 40)
        first = await service.store.pid()
        assert first not in (None, os.getpid())
        os.kill(first, signal.SIGKILL)
        await _publish(nats_server.url, [(bus.result_subject(result(i).path), result(i)) for i in range(n, 2 * n)])
        await wait_until_async(lambda: _drained(nats_server.url), 90, message="every result acked")
        second = await service.store.pid()
        await _stop(service, task)
        return service, first, second

    service, first, second = asyncio.run(main())
    assert second != first
    assert service.metrics.values["db_errors"] >= 1  # the death was noticed, not swallowed
    assert db_counts(db_url) == (2 * n, 2 * n, 2 * n, 0)


def _spawn(nats_url: str, db_url: str, log_path: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "trackprint.cli", "-v", "persister", "--nats", nats_url, "--db", db_url,
             "--batch", "10", "--batch-wait-s", "0.2", "--nak-delay-s", "0.3"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def test_a_stop_signal_to_the_whole_process_group_still_commits_the_batch_in_hand(nats_server, db_url, tmp_path):
    """Ctrl-C in a terminal and a service manager's stop signal the persister AND its store's process
    (one process group). The store's process must leave the stop to the persister, which finishes
    the batch in hand: exit 0, no database error, every acked result stored."""
    Store(db_url).migrate()
    log_path = str(tmp_path / "persister.log")
    publish_results(nats_server.url, 0, 3000)
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "trackprint.cli", "-v", "persister", "--nats", nats_server.url,
                                 "--db", db_url, "--batch", "100"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: db_counts(db_url)[2], 60, 0.05, "the first rows", until=lambda rows: rows >= 100)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, open(log_path).read()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    output = open(log_path).read()
    assert "DATABASE UNAVAILABLE" not in output and "StoreProcessDied" not in output, output[-3000:]
    info = consumer(nats_server.url)
    assert info.num_ack_pending == 0
    assert db_counts(db_url)[2] >= info.ack_floor.stream_seq > 0  # every acked result is a row


@pytest.mark.slow  # 1600 results through a persister subprocess, killed and restarted
def test_kill_9_mid_stream_then_restart_gives_exact_rows(nats_server, db_url, tmp_path):
    n = 1500
    Store(db_url).migrate()
    log_path = str(tmp_path / "persister.log")
    publish_results(nats_server.url, 0, n)
    proc = _spawn(nats_server.url, db_url, log_path)
    try:
        def persisted():
            assert proc.poll() is None, open(log_path).read()[-3000:]
            return db_counts(db_url)[2]

        wait_until(persisted, 60, 0.05, lambda: "progress: " + open(log_path).read()[-3000:],
                   until=lambda rows: rows >= 50)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        mid = db_counts(db_url)[2]
        print(f"persister killed with {mid}/{n} rows written")
        publish_results(nats_server.url, n, 100)  # more arrive while it is down
        proc = _spawn(nats_server.url, db_url, log_path)
        asyncio.run(wait_until_async(lambda: _drained(nats_server.url), 120, message="every result acked after restart"))
        proc.send_signal(signal.SIGTERM)  # graceful stop
        assert proc.wait(30) == 0, open(log_path).read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    total, distinct, fps, failures = db_counts(db_url)
    assert (total, distinct, fps, failures) == (n + 100, n + 100, n + 100, 0), f"killed at {mid} rows"
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as c:
        dupes = c.execute(text("SELECT count(*) FROM (SELECT path FROM tracks GROUP BY path HAVING count(*) > 1) d"))
        assert dupes.scalar_one() == 0
        assert c.execute(text("SELECT min(last_source_seq), max(last_source_seq) FROM tracks")).one() == (1, n + 100)
    engine.dispose()


def test_results_that_name_no_event_of_their_path_change_nothing(nats_server, db_url):
    """Hand-published results are checked against the events stream: reusing another path's event
    sequence, a sequence beyond the stream (2^62), a removal or a move answering an `added` event are
    recorded as invalid_message and change no row; the path is not frozen, its next real event wins."""
    a, b, c = "/lib/a.flac", "/lib/b.flac", "/lib/c.flac"

    def fp(path: str, lufs: float, seq: int = 0) -> FingerprintResult:
        r = result(0, seq)
        return msgspec.structs.replace(r, path=path, fingerprint=msgspec.structs.replace(r.fingerprint, lufs=lufs))

    def track(path: str):
        engine = create_engine(normalize_url(db_url))
        try:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT t.state, f.lufs FROM tracks t LEFT JOIN track_fingerprints f ON f.track_id = t.id "
                    "WHERE t.path = :p"), {"p": path}).one_or_none()
        finally:
            engine.dispose()

    async def main():
        service = _service(nats_server.url, db_url)
        task = await _start(service)
        js = service.js
        real_a, real_b = await answered(js, [fp(a, -10.0), fp(b, -11.0)])
        for r in (real_a, real_b):
            await js.publish(bus.result_subject(r.path), encode(r))
        await wait_until_async(lambda: _drained(nats_server.url), 60, message="the real results acked")
        (added_c,) = await answered(js, [fp(c, -12.0)])  # an event for c, its result never published
        forged = [
            fp(a, -50.0, seq=real_b.source_seq),  # another path's event
            fp(a, -51.0, seq=2 ** 62),  # beyond the stream: would freeze the path
            TrackRemoved(path=a, source_seq=real_a.source_seq),  # an `added` event is no removal
            TrackMoved(old_path=a, path=c, source_seq=added_c.source_seq),  # nor a move
        ]
        for i, r in enumerate(forged):  # each on a subject of its own, so that none replaces another unread
            await js.publish(bus.result_subject(f"/forged/{i}"), encode(r))
        await wait_until_async(lambda: _drained(nats_server.url), 60, message="the forged results acked")
        assert track(a) == ("active", -10.0) and track(c) is None
        (newer,) = await answered(js, [fp(a, -20.0)])
        await js.publish(bus.result_subject(newer.path), encode(newer))
        await wait_until_async(lambda: _drained(nats_server.url), 60, message="the newer result acked")
        await _stop(service, task)
        return service

    service = asyncio.run(main())
    assert track(a) == ("active", -20.0) and track(b) == ("active", -11.0) and track(c) is None
    assert service.metrics.values["invalid"] == 4
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        rows = conn.execute(select(analysis_failures.c.path, analysis_failures.c.message)
                            .where(analysis_failures.c.code == "invalid_message")).all()
    engine.dispose()
    assert sorted(p for p, _ in rows) == [a, a, a, c]
    messages = " | ".join(m for _, m in rows)
    for phrase in ("another path", "names no event", "not a removal", "not this move"):
        assert phrase in messages, messages


def _fp(path: str, lufs: float, seq: int = 0) -> FingerprintResult:
    r = result(0, seq)
    return msgspec.structs.replace(r, path=path, fingerprint=msgspec.structs.replace(r.fingerprint, lufs=lufs))


def _track_row(db_url: str, path: str):
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT t.state, f.lufs, t.last_source_seq, t.deleted_reason FROM tracks t "
                "LEFT JOIN track_fingerprints f ON f.track_id = t.id WHERE t.path = :p"), {"p": path}).one_or_none()
    finally:
        engine.dispose()


def test_forged_answers_to_real_events_change_nothing(nats_server, db_url):
    """Ordering comes from the streams, not from a field a publisher sets (issue 9, point 8):

    - a second results message reusing a path's own latest event sequence is stale ("event already answered"):
      the fingerprint stays;
    - a forged ``excluded`` removal answering an ``added`` event is invalid unless the persister's library
      excludes the path (the file stays active); the analyzer's own, for an excluded path, is applied;
    - an event no longer in the stream was replaced by a newer event of the SAME file (one message per file's
      subject): a result naming a replaced sequence of another path is invalid, a late result naming its own
      path's replaced event is plausible (ordering handles it);
    - a genuine redelivery of the same results message (its ack lost after the commit) still applies.
    """
    from trackprint.paths import Library

    a, b, d = "/lib/a.flac", "/lib/b.flac", "/lib/d.flac"
    podcast = "/lib/Podcasts/p.flac"
    outcomes = []

    async def main():
        service = _service(nats_server.url, db_url, library=Library(("/lib",), excludes=("Podcasts",)))
        account = service._account
        service._account = lambda summary: (outcomes.extend(summary.outcomes), account(summary))[1]
        task = await _start(service)
        js = service.js

        async def send(results, name: str = "") -> None:
            for i, r in enumerate(results):  # forged ones each on a subject of its own (none replaces another)
                subject = bus.result_subject(f"/forged/{name}{i}" if name else r.path)
                await js.publish(subject, encode(r))
            await wait_until_async(lambda: _drained(nats_server.url), 60, message=f"results {name or 'real'} acked")

        real_a, real_b = await answered(js, [_fp(a, -10.0), _fp(b, -11.0)])
        (replaced_d,) = await answered(js, [_fp(d, -13.0)])  # d's first event, replaced by the next one
        (latest_d,) = await answered(js, [_fp(d, -14.0)])
        (added_podcast,) = await answered(js, [_fp(podcast, -15.0)])
        await send([real_a, real_b])
        (changed_b,) = await answered(js, [_fp(b, -12.0)])  # b's newer event, not answered yet

        # a genuine redelivery: the commit happens, the ack is lost, the same message comes back
        lost = []
        ack_all = service._ack_all

        async def lossy(msgs):
            keep = []
            for m in msgs:
                if not lost and m.data == encode(latest_d):
                    lost.append(m)  # committed, never acked: redelivered after ack_wait
                else:
                    keep.append(m)
            await ack_all(keep)
        service._ack_all = lossy
        await send([latest_d])
        assert lost, "the ack of d's result was not dropped"
        service._ack_all = ack_all

        await send([
            _fp(a, -30.0, seq=real_a.source_seq),  # a's own latest event, already answered
            TrackRemoved(path=b, source_seq=changed_b.source_seq, reason="excluded"),  # b is not excluded
            _fp(a, -31.0, seq=replaced_d.source_seq),  # d's replaced event: a's latest event is older
        ], "f")
        assert _track_row(db_url, a)[:2] == ("active", -10.0)
        assert _track_row(db_url, b)[:2] == ("active", -11.0)
        # the analyzer's answers: an excluded path's removal, a late result for d's replaced event, b's change
        excluded = TrackRemoved(path=podcast, source_seq=added_podcast.source_seq, reason="excluded")
        await send([excluded, replaced_d, changed_b])
        await _stop(service, task)
        return service, latest_d.source_seq

    service, latest_seq = asyncio.run(main())
    assert _track_row(db_url, a)[:2] == ("active", -10.0)
    assert _track_row(db_url, b)[:2] == ("active", -12.0)
    assert _track_row(db_url, d)[:3] == ("active", -14.0, latest_seq)
    assert _track_row(db_url, podcast)[0::3] == ("deleted", "excluded")
    found = [(o.kind, o.path, o.action) for o in outcomes]
    assert found.count(("fingerprint", d, "applied")) == 2, found  # the redelivery re-applied
    assert ("fingerprint", a, "stale") in found and ("fingerprint", d, "stale") in found, found
    assert ("removed", podcast, "applied") in found and found.count(("invalid", b, "recorded")) == 1, found
    assert found.count(("invalid", a, "recorded")) == 1, found
    details = " | ".join(o.detail for o in outcomes)
    for phrase in ("already answered", "not an exclusion", "names no event of '/lib/a.flac'"):
        assert phrase in details, details
    assert service.metrics.values["invalid"] == 2


def test_the_events_of_a_batch_are_read_in_runs_and_without_direct_gets_one_by_one(nats_server):
    """EventSources reads a batch's events with one direct-get batch per run of nearby sequences; on a stream
    that does not allow direct gets (set up by hand, or by an older release) it reads them one at a time. Both
    give the same events, and a replaced event is missing in both."""
    from trackprint.persister.sources import MISSING, EventSources, clusters

    assert clusters([1, 2, 900, 1030, 5000], span=1024) == [[1, 2, 900], [1030], [5000]]

    async def main():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await bus.ensure_topology(js)
        seqs = []
        for i in range(30):
            event = FileEvent(kind="added", path=f"/lib/{i % 20}.flac", root="/lib", origin="manual")
            seqs.append((await js.publish(bus.event_subject(event.path), encode(event))).seq)
        sources = EventSources(js)
        by_direct = await sources._events(seqs, True, asyncio.Semaphore(8))
        config = (await js.stream_info(bus.EVENTS_STREAM)).config
        config.allow_direct = False
        await js.update_stream(config)
        one_by_one = await sources._events(seqs, False, asyncio.Semaphore(8))
        await nc.close()
        return seqs, by_direct, one_by_one

    seqs, by_direct, one_by_one = asyncio.run(main())
    assert by_direct == one_by_one
    assert [by_direct[s] is MISSING for s in seqs] == [True] * 10 + [False] * 20  # the first ten were replaced
    assert [by_direct[s].path for s in seqs[10:]] == [f"/lib/{i % 20}.flac" for i in range(10, 30)]
