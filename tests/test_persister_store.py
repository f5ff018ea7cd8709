"""persister.store / persister.queries on real SQLite and real PostgreSQL (``db_url`` runs each test on both)."""

from __future__ import annotations

import json
import random
import threading

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from trackprint.persister import queries
from trackprint.persister.models import analysis_failures, persister_heartbeat, track_fingerprints, tracks
from trackprint.persister.store import Meta, Store
from trackprint.contracts import (
    AnalysisFailure,
    DecodeFacts,
    Fingerprint,
    FingerprintResult,
    Timings,
    TrackMoved,
    TrackRemoved,
    encode,
)
from trackprint.errors import ErrorCode
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION


def fp(**overrides: float) -> Fingerprint:
    values = {name: 0.5 for name in DIMENSIONS}
    values.update(tempo_bpm=120.0, lufs=-14.0, spectral_centroid=2000.0, spectral_rolloff=6000.0)
    values.update(overrides)
    return Fingerprint(**values)


def result(path: str, seq: int, *, engine: str = "rust", version: int = FINGERPRINT_VERSION, **fp_values) -> FingerprintResult:
    return FingerprintResult(
        path=path, fingerprint=fp(**fp_values), fingerprint_version=version, engine=engine,
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=180.0),
        timings=Timings(total_s=0.2, analysis_s=0.15), content_id=f"cid-{path}", size=1000 + seq, mtime_ns=seq,
        source_seq=seq,
    )


def failure(path: str, seq: int, code: ErrorCode = ErrorCode.CORRUPT) -> AnalysisFailure:
    return AnalysisFailure(path=path, code=code, message=f"{path}: decode: {code.value}: bad frame", stage="decode",
                           attempts=2, engine="rust", source_seq=seq)


@pytest.fixture
def store(db_url):
    s = Store(db_url, sqlite_busy_timeout_s=5)
    s.migrate()
    yield s
    s.close()


def apply(store: Store, *messages, start: int = 1):
    return store.apply([(m, Meta(stream_seq=start + i)) for i, m in enumerate(messages)])


def rows(store: Store, table, *where):
    with store.engine.connect() as c:
        return c.execute(select(table).where(*where)).all()


def track(store: Store, path: str):
    found = rows(store, tracks, tracks.c.path == path)
    return found[0] if found else None


def fingerprint_of(store: Store, path: str):
    t = track(store, path)
    found = rows(store, track_fingerprints, track_fingerprints.c.track_id == t.id) if t else []
    return found[0] if found else None


def count(store: Store, table) -> int:
    with store.engine.connect() as c:
        return c.execute(select(text("count(*)")).select_from(table)).scalar_one()


# -- schema ---------------------------------------------------------------------------------

def test_migrations_create_the_schema_and_are_idempotent(store):
    store.migrate()  # second run is a no-op
    assert store.current_revision() == "0004"
    insp = inspect(store.engine)
    assert {"tracks", "track_fingerprints", "analysis_failures", "persister_heartbeat",
            "alembic_version"} <= set(insp.get_table_names())
    cols = {c["name"]: c for c in insp.get_columns("track_fingerprints")}
    for name in DIMENSIONS:
        assert name in cols and cols[name]["nullable"] is False, name
    assert cols["fingerprint_version"]["nullable"] is False and cols["engine"]["nullable"] is False
    for table, model in (("tracks", tracks), ("track_fingerprints", track_fingerprints),
                         ("analysis_failures", analysis_failures), ("persister_heartbeat", persister_heartbeat)):
        assert {c["name"] for c in insp.get_columns(table)} == {c.name for c in model.c}, table
    indexed = {tuple(ix["column_names"]) for t in ("tracks", "track_fingerprints", "analysis_failures")
               for ix in insp.get_indexes(t)}
    assert {("state",), ("fingerprint_version",), ("code",)} <= indexed
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("analysis_failures")}
    assert ("path", "code", "source_seq") in uniques


@pytest.mark.parametrize("column", ["fingerprint_version", "engine", *DIMENSIONS])
def test_not_null_constraints_exist(store, column):
    apply(store, TrackRemoved(path="/lib/x.flac", source_seq=1))
    tid = track(store, "/lib/x.flac").id
    values = {name: 1.0 for name in DIMENSIONS}
    values.update(track_id=tid, fingerprint_version=1, engine="rust", reused=False, source_seq=1,
                  updated_at="2025-01-01 00:00:00")
    values[column] = None
    cols = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    with pytest.raises(IntegrityError):
        with store.engine.begin() as c:
            c.execute(text(f"INSERT INTO track_fingerprints ({cols}) VALUES ({params})"), values)


# -- semantics ------------------------------------------------------------------------------

def test_upsert_and_redelivery_give_the_same_rows(store):
    m = result("/lib/a.flac", 5)
    apply(store, m)
    apply(store, m)  # redelivered in a later batch
    store.apply([(encode(m), Meta(1)), (encode(m), Meta(1))])  # and twice in one batch, as raw bytes
    assert count(store, tracks) == 1 and count(store, track_fingerprints) == 1
    t = track(store, "/lib/a.flac")
    assert (t.state, t.last_source_seq, t.size, t.content_id) == ("active", 5, 1005, "cid-/lib/a.flac")
    f = fingerprint_of(store, "/lib/a.flac")
    assert f.lufs == -14.0 and f.engine == "rust" and f.fingerprint_version == FINGERPRINT_VERSION
    assert f.codec == "flac" and f.sample_rate == 44100 and f.channels == 2 and f.duration_s == 180.0
    assert f.analysis_s == 0.15 and f.reused is False and f.source_seq == 5

    apply(store, result("/lib/a.flac", 9, engine="python", lufs=-9.0))  # newer event: updates
    f = fingerprint_of(store, "/lib/a.flac")
    assert (f.lufs, f.engine, f.source_seq) == (-9.0, "python", 9)
    assert count(store, track_fingerprints) == 1


def test_out_of_order_older_changes_nothing(store):
    apply(store, result("/lib/a.flac", 10, lufs=-10.0))
    summary = apply(store, result("/lib/a.flac", 4, lufs=-20.0), TrackRemoved(path="/lib/a.flac", source_seq=3),
                    failure("/lib/a.flac", 2))
    assert summary.stale == 3
    t = track(store, "/lib/a.flac")
    assert (t.state, t.last_source_seq, t.deleted_at) == ("active", 10, None)
    assert fingerprint_of(store, "/lib/a.flac").lufs == -10.0
    assert count(store, analysis_failures) == 0


def test_source_seq_zero_falls_back_to_results_sequence(store):
    store.apply([(result("/lib/z.flac", 0, lufs=-5.0), Meta(stream_seq=50))])
    store.apply([(result("/lib/z.flac", 0, lufs=-6.0), Meta(stream_seq=40))])  # older results seq
    assert track(store, "/lib/z.flac").last_source_seq == 50
    assert fingerprint_of(store, "/lib/z.flac").lufs == -5.0


def test_tombstone_keeps_fingerprint_and_later_add_revives(store):
    apply(store, result("/lib/a.flac", 1))
    apply(store, TrackRemoved(path="/lib/a.flac", source_seq=2))
    t = track(store, "/lib/a.flac")
    assert t.state == "deleted" and t.deleted_at is not None and t.last_source_seq == 2
    assert fingerprint_of(store, "/lib/a.flac") is not None  # never a hard delete
    apply(store, TrackRemoved(path="/lib/a.flac", source_seq=2))  # redelivery
    assert count(store, tracks) == 1
    apply(store, result("/lib/a.flac", 3, lufs=-8.0))
    t = track(store, "/lib/a.flac")
    assert (t.state, t.deleted_at, t.last_source_seq) == ("active", None, 3)
    assert fingerprint_of(store, "/lib/a.flac").lufs == -8.0
    # removal of a path never seen: a tombstone that blocks a late older result
    apply(store, TrackRemoved(path="/lib/ghost.flac", source_seq=7))
    apply(store, result("/lib/ghost.flac", 6))
    assert track(store, "/lib/ghost.flac").state == "deleted"
    assert fingerprint_of(store, "/lib/ghost.flac") is None


def test_move_keeps_the_fingerprint(store):
    apply(store, result("/lib/a.flac", 1, lufs=-7.0))
    tid = track(store, "/lib/a.flac").id
    apply(store, TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", size=5, source_seq=2))
    b = track(store, "/lib/b.flac")
    assert (b.id, b.state, b.last_source_seq, b.size) == (tid, "active", 2, 5)
    assert fingerprint_of(store, "/lib/b.flac").lufs == -7.0
    a = track(store, "/lib/a.flac")
    assert a.state == "deleted" and a.last_source_seq == 2  # tombstone left behind
    apply(store, result("/lib/a.flac", 1))  # late redelivery for the old path: no resurrection
    assert track(store, "/lib/a.flac").state == "deleted"
    apply(store, TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", size=5, source_seq=2))  # redelivery
    assert track(store, "/lib/b.flac").state == "active" and fingerprint_of(store, "/lib/b.flac").lufs == -7.0


def test_move_onto_existing_row_and_from_unknown_path(store):
    apply(store, result("/lib/a.flac", 1, lufs=-7.0), result("/lib/b.flac", 2, lufs=-3.0))
    apply(store, TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", source_seq=5))  # move is newer: wins
    assert fingerprint_of(store, "/lib/b.flac").lufs == -7.0
    assert track(store, "/lib/b.flac").last_source_seq == 5 and track(store, "/lib/a.flac").state == "deleted"

    apply(store, result("/lib/c.flac", 1, lufs=-7.0), result("/lib/d.flac", 9, lufs=-3.0))
    apply(store, TrackMoved(old_path="/lib/c.flac", path="/lib/d.flac", source_seq=5))  # destination newer: wins
    assert fingerprint_of(store, "/lib/d.flac").lufs == -3.0 and track(store, "/lib/d.flac").last_source_seq == 9

    apply(store, TrackMoved(old_path="/lib/unknown.flac", path="/lib/e.flac", size=9, source_seq=3))
    e = track(store, "/lib/e.flac")
    assert (e.state, e.size) == ("pending", 9) and fingerprint_of(store, "/lib/e.flac") is None


def test_failures_are_recorded_idempotently_and_never_delete_a_fingerprint(store):
    apply(store, failure("/lib/bad.flac", 3))
    apply(store, failure("/lib/bad.flac", 3))  # redelivery
    store.apply([(encode(failure("/lib/bad.flac", 3)), Meta(8))])
    assert len(rows(store, analysis_failures)) == 1
    f = rows(store, analysis_failures)[0]
    assert (f.path, f.code, f.stage, f.attempts, f.engine, f.source_seq) == ("/lib/bad.flac", "corrupt", "decode", 2, "rust", 3)
    assert f.track_id == track(store, "/lib/bad.flac").id
    assert track(store, "/lib/bad.flac").state == "failed"

    apply(store, result("/lib/good.flac", 1))
    apply(store, failure("/lib/good.flac", 2, ErrorCode.TIMEOUT))
    t = track(store, "/lib/good.flac")
    assert t.state == "active" and t.last_failure_code == "timeout" and fingerprint_of(store, "/lib/good.flac")
    assert len(rows(store, analysis_failures)) == 2


def _valid_json(path: str, seq: int) -> dict:
    return json.loads(encode(result(path, seq)))


@pytest.mark.parametrize("case", ["nan_as_null", "out_of_range", "unknown_version", "missing_dimension",
                                  "infinite", "garbage", "unknown_type"])
def test_invalid_messages_are_recorded_not_dropped(store, case):
    path = f"/lib/{case}.flac"
    doc = _valid_json(path, 4)
    if case == "nan_as_null":
        doc["fingerprint"]["lufs"] = None  # what a NaN becomes in hand-written JSON
        raw, expect = json.dumps(doc).encode(), "lufs"
    elif case == "out_of_range":
        doc["fingerprint"]["lufs"] = 55.0
        raw, expect = json.dumps(doc).encode(), "lufs=55.0 outside"
    elif case == "unknown_version":
        doc["fingerprint_version"] = 99
        raw, expect = json.dumps(doc).encode(), "unknown fingerprint_version 99"
    elif case == "missing_dimension":
        del doc["fingerprint"]["stereo_width"]
        raw, expect = json.dumps(doc).encode(), "stereo_width"
    elif case == "infinite":
        raw = json.dumps(doc, separators=(",", ":")).replace('"lufs":-14.0', '"lufs":-1e999').encode()
        expect = "lufs"
    elif case == "garbage":
        raw, expect, path = b"\x00\xffnot json at all", "malformed", None
    else:
        doc["type"] = "telepathy"
        raw, expect = json.dumps(doc).encode(), "telepathy"
    summary = store.apply([(raw, Meta(stream_seq=77, num_delivered=1))])
    assert summary.invalid == 1
    store.apply([(raw, Meta(stream_seq=77, num_delivered=2))])  # redelivery: still one row
    found = rows(store, analysis_failures)
    assert len(found) == 1, found
    row = found[0]
    assert row.code == "invalid_message" and row.stage == "validate" and row.results_seq == 77
    assert expect in row.message
    if path:
        assert row.path == path and path in row.message and row.source_seq == 4
        assert track(store, path).state == "failed" and fingerprint_of(store, path) is None
    else:
        assert row.path == "" and row.source_seq == 77 and "unreadable" in row.message
    assert count(store, track_fingerprints) == 0


def test_invalid_message_never_touches_an_existing_fingerprint(store):
    apply(store, result("/lib/a.flac", 1))
    doc = _valid_json("/lib/a.flac", 2)
    doc["fingerprint"]["bass_pct"] = None
    store.apply([(json.dumps(doc).encode(), Meta(2))])
    t = track(store, "/lib/a.flac")
    assert t.state == "active" and fingerprint_of(store, "/lib/a.flac").bass_pct == 0.5
    assert rows(store, analysis_failures)[0].code == "invalid_message"


def test_batch_is_one_transaction(store, monkeypatch):
    """A failure in the middle of a batch rolls back the items before it."""
    original = Store._apply_one
    calls = {"n": 0}

    def boom(self, conn, item, now):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash mid-batch")
        return original(self, conn, item, now)

    monkeypatch.setattr(Store, "_apply_one", boom)
    with pytest.raises(RuntimeError):
        apply(store, result("/lib/a.flac", 1), result("/lib/b.flac", 2))
    assert count(store, tracks) == 0


def test_concurrent_stores_converge_to_last_write(store, db_url):
    """Two writers (two engines, as two persister processes) apply shuffled, overlapping batches."""
    other = Store(db_url, sqlite_busy_timeout_s=30)
    paths = [f"/lib/c{i}.flac" for i in range(8)]
    messages = [result(p, seq, lufs=-float(seq % 60)) for seq, p in
                ((s, paths[s % len(paths)]) for s in range(1, 121))]
    rng = random.Random(7)
    errors: list[BaseException] = []

    def worker(s: Store, seed: int) -> None:
        mine = messages[:]
        random.Random(seed).shuffle(mine)
        try:
            for i in range(0, len(mine), 10):
                s.apply([(m, Meta(m.source_seq)) for m in mine[i:i + 10]])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s, rng.random())) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors, errors
    assert count(store, tracks) == len(paths) and count(store, track_fingerprints) == len(paths)
    for p in paths:
        last = max(m.source_seq for m in messages if m.path == p)
        assert track(store, p).last_source_seq == last
        assert fingerprint_of(store, p).lufs == -float(last % 60)


# -- queries ---------------------------------------------------------------------------------

def test_queries_agree_with_hand_counted_sql(store):
    apply(store,
          result("/lib/r1.flac", 1, engine="rust"),
          result("/lib/r2.flac", 2, engine="rust"),
          result("/lib/p1.flac", 3, engine="python"),
          result("/lib/old.flac", 4, engine="rust"),
          failure("/lib/bad1.flac", 5, ErrorCode.CORRUPT),
          failure("/lib/bad2.flac", 6, ErrorCode.TRUNCATED),
          failure("/lib/bad3.flac", 7, ErrorCode.CORRUPT),
          result("/lib/gone.flac", 8),
          TrackRemoved(path="/lib/gone.flac", source_seq=9),
          TrackMoved(old_path="/lib/nowhere.flac", path="/lib/new.flac", source_seq=10),
          failure("/lib/r1.flac", 11, ErrorCode.TIMEOUT))
    with store.engine.begin() as c:
        c.execute(text("UPDATE track_fingerprints SET fingerprint_version = 0 WHERE track_id = "
                       "(SELECT id FROM tracks WHERE path = '/lib/old.flac')"))
        got = queries.counts(c, recent_minutes=5)
        hand = lambda sql: c.execute(text(sql)).scalar_one()  # noqa: E731
        assert got.known == hand("SELECT count(*) FROM tracks WHERE state <> 'deleted'") == 8
        assert got.active == hand("SELECT count(*) FROM tracks t JOIN track_fingerprints f ON f.track_id = t.id "
                                  "WHERE t.state = 'active'") == 4
        assert got.pending == hand("SELECT count(*) FROM tracks t WHERE t.state NOT IN ('failed', 'deleted') AND "
                                   "NOT EXISTS (SELECT 1 FROM track_fingerprints f WHERE f.track_id = t.id) AND "
                                   "NOT EXISTS (SELECT 1 FROM analysis_failures a WHERE a.track_id = t.id)") == 1
        assert got.tombstoned == hand("SELECT count(*) FROM tracks WHERE state = 'deleted'") == 2
        assert got.failed_by_code == {"corrupt": 2, "truncated": 1} and got.failed == 3
        assert got.failures_by_code == {"corrupt": 2, "truncated": 1, "timeout": 1}
        assert got.stale == hand(f"SELECT count(*) FROM tracks t JOIN track_fingerprints f ON f.track_id = t.id "
                                 f"WHERE t.state <> 'deleted' AND f.fingerprint_version < {FINGERPRINT_VERSION}") == 1
        assert got.engine_share == {"rust": 3, "python": 1}
        assert got.recent_persisted == hand("SELECT count(*) FROM track_fingerprints") == 5
        assert got.recent_analyzed == 5
        from datetime import datetime, timedelta, timezone

        later = queries.counts(c, recent_minutes=5, now=datetime.now(timezone.utc) + timedelta(hours=1))
        assert later.recent_persisted == 0


def test_results_outside_the_library_or_with_impossible_sequences_are_recorded_not_applied(db_url, tmp_path):
    """A persister that knows the library refuses a result for /etc/..., a move into /etc/..., and a
    source_seq no stream can have (2**64 used to raise OverflowError until dead-letter)."""
    from trackprint.contracts import encode
    from trackprint.paths import Library

    lib = tmp_path / "lib"
    lib.mkdir()
    store = Store(db_url, sqlite_busy_timeout_s=5, library=Library((str(lib),)))
    store.migrate()
    try:
        inside = str(lib / "a.flac")
        apply(store, result(inside, 1))
        huge = json.loads(encode(result(str(lib / "b.flac"), 2)))
        huge["source_seq"] = 2**64
        summary = store.apply([
            (result("/etc/passwd", 3), Meta(stream_seq=10)),
            (TrackMoved(old_path=inside, path="/etc/shadow", source_seq=4), Meta(stream_seq=11)),
            (TrackRemoved(path="/etc/hosts", source_seq=5), Meta(stream_seq=12)),
            (json.dumps(huge).encode(), Meta(stream_seq=13)),
        ])
        assert summary.invalid == 4
        assert track(store, inside).state == "active" and fingerprint_of(store, inside) is not None
        assert track(store, "/etc/passwd") is None and track(store, "/etc/shadow") is None
        codes = [r.code for r in rows(store, analysis_failures)]
        assert codes == ["invalid_message"] * 4
    finally:
        store.close()


def test_the_source_event_rule():
    """persister/sources.py: which event each kind of result may answer (pure)."""
    from trackprint.contracts import FileEvent
    from trackprint.persister.sources import MISSING, source_problem

    added = FileEvent(kind="added", path="/lib/a.flac", root="/lib")
    removed = FileEvent(kind="removed", path="/lib/a.flac", root="/lib")
    moved = FileEvent(kind="moved", path="/lib/b.flac", old_path="/lib/a.flac", root="/lib")
    fp = result("/lib/a.flac", 5)
    assert source_problem(fp, added, 9) is None
    assert source_problem(fp, MISSING, 9) is None  # aged out of the stream: only the range is checked
    assert "names no event" in source_problem(fp, MISSING, 4)
    assert "names no event" in source_problem(result("/lib/a.flac", 0), added, 9)
    assert "another path" in source_problem(result("/lib/b.flac", 5), added, 9)
    assert "not something to analyse" in source_problem(fp, removed, 9)
    assert "not a removal" in source_problem(TrackRemoved(path="/lib/a.flac", source_seq=5), added, 9)
    assert source_problem(TrackRemoved(path="/lib/a.flac", source_seq=5, reason="excluded"), added, 9) is None
    assert source_problem(TrackRemoved(path="/lib/a.flac", source_seq=5), removed, 9) is None
    move = TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", source_seq=5)
    assert source_problem(move, moved, 9) is None
    assert source_problem(result("/lib/b.flac", 5), moved, 9) is None  # the new path's own outcome
    assert "not this move" in source_problem(TrackMoved(old_path="/lib/x.flac", path="/lib/b.flac", source_seq=5),
                                             moved, 9)
    assert "not a file event" in source_problem(fp, None, 9)
