"""persister.store / persister.queries on real SQLite and real PostgreSQL (``db_url`` runs each test on both)."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from trackprint.persister import queries
from trackprint.persister.models import analysis_failures, persister_heartbeat, track_fingerprints, track_tags, tracks
from trackprint.persister.store import Meta, Store
from trackprint.contracts import (
    AnalysisFailure,
    DecodeFacts,
    Fingerprint,
    FingerprintResult,
    Tags,
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
    assert store.current_revision() == "0006"
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
    assert {("state", "last_failure_code"), ("fingerprint_version",), ("code",), ("analyzed_at",)} <= indexed
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


def test_an_equal_sequence_re_applies_only_from_the_same_results_message(store):
    """A redelivery or a replay of the results message that wrote a row re-applies; another message naming the
    same event (a publisher reusing a real sequence) is stale, for every kind; rows from before migration 0005
    (writer unknown, 0) take no equal sequence from a real message."""
    store.apply([(result("/lib/a.flac", 5, lufs=-10.0), Meta(100))])
    assert store.apply([(result("/lib/a.flac", 5, lufs=-10.0), Meta(100))]).persisted == 1  # redelivery
    forged = store.apply([(result("/lib/a.flac", 5, lufs=-30.0), Meta(101)), (failure("/lib/a.flac", 5), Meta(102)),
                          (TrackRemoved(path="/lib/a.flac", source_seq=5), Meta(103)),
                          (TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", source_seq=5), Meta(104))])
    assert [o.action for o in forged.outcomes] == ["stale"] * 4, forged.outcomes
    assert all("event 5 already answered (by results seq 100)" in o.detail for o in forged.outcomes)
    a = track(store, "/lib/a.flac")
    assert (a.state, a.last_source_seq, a.last_results_seq) == ("active", 5, 100)
    assert fingerprint_of(store, "/lib/a.flac").lufs == -10.0 and count(store, analysis_failures) == 0
    assert track(store, "/lib/b.flac") is None
    with store.engine.begin() as c:  # as migration 0005 leaves a row written before it
        c.execute(tracks.update().values(last_results_seq=0))
    assert store.apply([(result("/lib/a.flac", 5, lufs=-30.0), Meta(100))]).stale == 1
    assert store.apply([(result("/lib/a.flac", 6, lufs=-20.0), Meta(105))]).persisted == 1  # a newer event wins
    assert fingerprint_of(store, "/lib/a.flac").lufs == -20.0


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


def test_an_undecodable_message_naming_a_huge_sequence_freezes_nothing(store):
    """An undecodable message's source_seq is only what its bytes claim (it was never checked against the
    events stream): it is recorded with its failure, but never orders a track, so a later genuine result
    still lands, on a stored path and on a path first seen through the garbage."""
    apply(store, result("/lib/a.flac", 5))
    for path, stream_seq in (("/lib/a.flac", 10), ("/lib/new.flac", 11)):
        doc = _valid_json(path, 2 ** 62)
        doc["fingerprint"]["lufs"] = None
        store.apply([(json.dumps(doc).encode(), Meta(stream_seq))])
    assert track(store, "/lib/a.flac").state == "active" and track(store, "/lib/new.flac").state == "failed"
    assert {r.source_seq for r in rows(store, analysis_failures)} == {2 ** 62}  # recorded as claimed
    summary = apply(store, result("/lib/a.flac", 6, lufs=-20.0), result("/lib/new.flac", 7, lufs=-21.0), start=20)
    assert summary.persisted == 2 and summary.stale == 0
    assert fingerprint_of(store, "/lib/a.flac").lufs == -20.0 and fingerprint_of(store, "/lib/new.flac").lufs == -21.0
    assert track(store, "/lib/new.flac").state == "active"


def test_batch_is_one_transaction(store, monkeypatch):
    """A failure in the middle of a batch rolls back the items before it: the set-based writes of the
    fingerprints, and the per-message items (tombstones) before the one that fails."""
    original = Store._apply_one
    calls = {"n": 0}

    def boom(self, conn, item, now):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash mid-batch")
        return original(self, conn, item, now)

    monkeypatch.setattr(Store, "_apply_one", boom)
    with pytest.raises(RuntimeError):
        apply(store, result("/lib/a.flac", 1), result("/lib/b.flac", 2), TrackRemoved(path="/lib/c.flac", source_seq=3),
              TrackRemoved(path="/lib/d.flac", source_seq=4))
    assert calls["n"] == 2 and count(store, tracks) == 0


def test_batch_is_one_transaction_inside_the_set_based_writes(store, monkeypatch):
    """The tracks are written, then writing the fingerprints fails: nothing of the batch stays."""
    apply(store, result("/lib/old.flac", 1, lufs=-3.0))

    def boom(self, conn, rows, now):
        raise RuntimeError("simulated crash between the statements of a batch")

    monkeypatch.setattr(Store, "_write_fingerprints", boom)
    with pytest.raises(RuntimeError):
        apply(store, result("/lib/a.flac", 1), result("/lib/old.flac", 2, lufs=-9.0), failure("/lib/bad.flac", 3))
    assert count(store, tracks) == 1 and count(store, analysis_failures) == 0
    old = track(store, "/lib/old.flac")
    assert old.last_source_seq == 1 and fingerprint_of(store, "/lib/old.flac").lufs == -3.0


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


# -- set-based batches ------------------------------------------------------------------------

def tagged(message: FingerprintResult, title: str | None) -> FingerprintResult:
    return msgspec.structs.replace(message, tags=Tags(title=title, artist="Band") if title else None)


def tags_of(store: Store, path: str):
    t = track(store, path)
    found = rows(store, track_tags, track_tags.c.track_id == t.id) if t else []
    return found[0] if found else None


def test_several_messages_for_one_path_in_a_batch_newest_wins_whatever_the_order(store):
    for order in ([5, 9, 7], [9, 7, 5], [7, 5, 9]):
        path = f"/lib/order-{'-'.join(map(str, order))}.flac"
        summary = apply(store, *[result(path, seq, lufs=-float(seq)) for seq in order])
        t = track(store, path)
        assert (t.state, t.last_source_seq) == ("active", 9), order
        f = fingerprint_of(store, path)
        assert (f.lufs, f.source_seq, f.content_id) == (-9.0, 9, f"cid-{path}"), order
        # as one message at a time: a message is stale when a newer one came before it in the batch
        expect_stale = sum(1 for i, seq in enumerate(order) if seq < max(order[:i], default=0))
        assert summary.stale == expect_stale and summary.persisted == 3 - expect_stale, order
    assert count(store, tracks) == 3 and count(store, track_fingerprints) == 3


def test_tags_of_a_batch_come_from_the_last_applied_result_that_carries_them(store):
    apply(store, tagged(result("/lib/a.flac", 5), "five"), tagged(result("/lib/a.flac", 6, lufs=-6.0), None))
    assert tags_of(store, "/lib/a.flac").title == "five" and fingerprint_of(store, "/lib/a.flac").lufs == -6.0
    apply(store, tagged(result("/lib/b.flac", 6), None), tagged(result("/lib/b.flac", 5), "stale"))
    assert tags_of(store, "/lib/b.flac") is None
    apply(store, tagged(result("/lib/a.flac", 8), "eight"), tagged(result("/lib/a.flac", 7), "seven"))
    assert tags_of(store, "/lib/a.flac").title == "eight"
    assert count(store, track_tags) == 1


def test_failures_and_fingerprints_of_one_path_in_a_batch(store):
    # a failure then a newer fingerprint on a new path: one row, active, no failure code; the failure recorded
    apply(store, failure("/lib/a.flac", 1), result("/lib/a.flac", 2))
    a = track(store, "/lib/a.flac")
    assert (a.state, a.last_failure_code, a.last_source_seq) == ("active", None, 2)
    # a fingerprint then a newer failure: still active (a fingerprint is never removed), failure code set
    apply(store, result("/lib/b.flac", 1), failure("/lib/b.flac", 2, ErrorCode.TIMEOUT))
    b = track(store, "/lib/b.flac")
    assert (b.state, b.last_failure_code, b.last_source_seq) == ("active", "timeout", 2)
    assert fingerprint_of(store, "/lib/b.flac") is not None
    # a newer fingerprint before an older failure: the failure is stale and records nothing
    summary = apply(store, result("/lib/c.flac", 5), failure("/lib/c.flac", 4))
    assert summary.stale == 1 and track(store, "/lib/c.flac").state == "active"
    # the same failure message twice in a batch (a redelivery): one row, the first's; another results message
    # answering the same event is stale ("event already answered")
    d = failure("/lib/d.flac", 3)
    summary = store.apply([(d, Meta(40)), (d, Meta(40)), (d, Meta(41))])
    assert (summary.failures, summary.stale) == (2, 1) and track(store, "/lib/d.flac").state == "failed"
    assert "event 3 already answered (by results seq 40)" in summary.outcomes[2].detail
    found = {(r.path, r.source_seq): r for r in rows(store, analysis_failures)}
    assert set(found) == {("/lib/a.flac", 1), ("/lib/b.flac", 2), ("/lib/d.flac", 3)}
    assert found[("/lib/d.flac", 3)].results_seq == 40
    assert found[("/lib/b.flac", 2)].track_id == b.id and found[("/lib/a.flac", 1)].track_id == a.id


def test_a_batch_mixing_new_and_existing_paths_and_stale_messages(store):
    apply(store, result("/lib/old1.flac", 10, lufs=-10.0), result("/lib/old2.flac", 10, lufs=-10.0),
          failure("/lib/bad.flac", 10))
    ids = {p: track(store, p).id for p in ("/lib/old1.flac", "/lib/old2.flac", "/lib/bad.flac")}
    summary = apply(store,
                    result("/lib/new1.flac", 11, lufs=-11.0),
                    result("/lib/old1.flac", 12, lufs=-12.0),       # newer: applied
                    result("/lib/old2.flac", 3, lufs=-3.0),         # older: stale
                    failure("/lib/old2.flac", 4),                   # older: stale, no failure row
                    result("/lib/bad.flac", 13, lufs=-13.0),        # a failed track gets its fingerprint
                    failure("/lib/new2.flac", 14),
                    result("/lib/new1.flac", 10, lufs=-10.0))       # older than the first of the batch: stale
    assert (summary.persisted, summary.failures, summary.stale) == (3, 1, 3)
    assert count(store, tracks) == 5 and count(store, track_fingerprints) == 4
    assert {p: track(store, p).id for p in ids} == ids  # existing rows keep their ids
    assert fingerprint_of(store, "/lib/old1.flac").lufs == -12.0 and track(store, "/lib/old1.flac").last_source_seq == 12
    assert fingerprint_of(store, "/lib/old2.flac").lufs == -10.0 and track(store, "/lib/old2.flac").last_source_seq == 10
    bad = track(store, "/lib/bad.flac")
    assert (bad.state, bad.last_failure_code, bad.last_source_seq) == ("active", None, 13)
    assert fingerprint_of(store, "/lib/new1.flac").lufs == -11.0
    new2 = track(store, "/lib/new2.flac")
    assert (new2.state, new2.last_failure_code) == ("failed", "corrupt")
    assert sorted((r.path, r.source_seq) for r in rows(store, analysis_failures)) == [
        ("/lib/bad.flac", 10), ("/lib/new2.flac", 14)]


def _snapshot(store: Store) -> dict:
    """Every table by path (ids and the write times differ between two databases with the same contents)."""
    with store.engine.connect() as c:
        paths = dict(c.execute(select(tracks.c.id, tracks.c.path)).all())
        got = {
            "tracks": {r.path: (r.size, r.mtime_ns, r.inode, r.content_id, r.state, r.last_source_seq,
                                r.last_results_seq, r.last_failure_code, r.deleted_at is None, r.deleted_reason)
                       for r in c.execute(select(tracks))},
            "fingerprints": {paths[r.track_id]: tuple(v for k, v in r._mapping.items() if k not in ("track_id", "updated_at"))
                             for r in c.execute(select(track_fingerprints))},
            "tags": {paths[r.track_id]: (r.title, r.artist) for r in c.execute(select(track_tags))},
            "failures": sorted((r.path, r.code, r.source_seq, r.message, r.stage, r.attempts, r.engine, r.results_seq,
                                paths.get(r.track_id)) for r in c.execute(select(analysis_failures))),
        }
    return got


def _random_batches(seed: int) -> list[list]:
    rng = random.Random(seed)
    paths = [f"/lib/r{i}.flac" for i in range(6)]
    sent: list = []
    out, stream = [], 0
    for _ in range(8):
        batch = []
        for _ in range(rng.randint(1, 14)):
            stream += 1
            roll, seq, path = rng.random(), rng.randint(1, 60), rng.choice(paths)
            meta = Meta(stream_seq=stream)
            if roll < 0.1 and sent:
                message, meta = rng.choice(sent)  # a redelivery: the same results message
            elif roll < 0.15 and sent:  # another results message answering an event already answered
                message = rng.choice(sent)[0]
            elif roll < 0.5:
                awkward = dict(lufs=rng.uniform(-70, 40), spectral_flatness=rng.choice([rng.random(), 0.1 + 0.2, 5e-324]),
                               tempo_bpm=rng.uniform(0, 240))  # doubles that must come back bit for bit
                message = tagged(result(path, seq, **awkward), rng.choice([None, f"t{seq}\u00e9\"'\\"]))
            elif roll < 0.7:
                message = failure(path, seq, rng.choice([ErrorCode.CORRUPT, ErrorCode.TIMEOUT]))
            elif roll < 0.8:
                message = TrackRemoved(path=path, source_seq=seq, observed_at=1_700_000_000.0)
            elif roll < 0.9:
                message = TrackMoved(old_path=path, path=rng.choice(paths), size=seq, source_seq=seq,
                                     observed_at=1_700_000_000.0)
            else:
                doc = _valid_json(path, seq)
                doc["fingerprint"]["lufs"] = None
                message = json.dumps(doc).encode()
            sent.append((message, meta))
            batch.append((message, meta))
        out.append(batch)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_set_based_batches_write_what_one_message_at_a_time_writes(store, db_url, seed, tmp_path):
    """The same random batches (fingerprints, failures, removals, moves, invalid messages, redeliveries, second
    answers to an event, several messages per path) into this store and into one that applies every message on its own path, one by one."""
    if db_url.startswith("sqlite"):
        ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    else:
        ref_url = db_url  # the same database, emptied in between
    batches = _random_batches(seed)
    outcomes = [[(o.kind, o.path, o.action, o.seq) for o in store.apply(b).outcomes] for b in batches]
    got = _snapshot(store)
    if ref_url == db_url:
        with store.engine.begin() as c:
            for table in (analysis_failures, track_tags, track_fingerprints, tracks):
                c.execute(table.delete())
    reference = Store(ref_url, sqlite_busy_timeout_s=5)
    reference.migrate()
    reference._split = lambda prepared: ([], list(range(len(prepared))))  # every message on its own
    try:
        ref_outcomes = [[(o.kind, o.path, o.action, o.seq) for o in reference.apply(b).outcomes] for b in batches]
        assert outcomes == ref_outcomes
        assert got == _snapshot(reference)
    finally:
        reference.close()


def test_the_same_batch_twice_changes_nothing(store):
    apply(store, result("/lib/x.flac", 1), failure("/lib/y.flac", 2))
    batch = [(result("/lib/x.flac", 5, lufs=-5.0), Meta(10)), (failure("/lib/x.flac", 4), Meta(11)),
             (tagged(result("/lib/z.flac", 6), "zed"), Meta(12)), (result("/lib/y.flac", 7), Meta(13)),
             (result("/lib/z.flac", 6), Meta(14)), (failure("/lib/w.flac", 8), Meta(15)),
             (TrackRemoved(path="/lib/v.flac", source_seq=9), Meta(16))]
    first = store.apply(batch)
    before = _snapshot(store)
    second = store.apply(batch)
    assert _snapshot(store) == before
    assert [(o.kind, o.action) for o in first.outcomes] == [(o.kind, o.action) for o in second.outcomes]
    # z twice: the second results message answers event 6 again, stale both times (the first re-applies)
    assert (first.persisted, first.failures, first.stale) == (3, 1, 2)
    assert "event 6 already answered (by results seq 12)" in second.outcomes[4].detail
    assert count(store, tracks) == 5 and count(store, analysis_failures) == 2


def test_database_errors_of_the_set_based_writes_are_sqlalchemy_errors(pg_url):
    """The service tells an outage (OperationalError) from a poison message (any other DBAPIError) by
    SQLAlchemy's classes: the set-based statements raise those too, and roll the batch back. (PostgreSQL
    only: it refuses a NUL in text, where SQLite stores it.)"""
    from sqlalchemy.exc import DBAPIError, OperationalError

    store = Store(pg_url)
    store.migrate()
    with pytest.raises(DBAPIError) as caught:
        apply(store, result("/lib/fine.flac", 1), result("/lib/nul\x00.flac", 2))
    assert not isinstance(caught.value, OperationalError)
    assert count(store, tracks) == 0
    apply(store, result("/lib/fine.flac", 1))  # the connection is usable again
    assert count(store, tracks) == 1
    store.close()


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


def test_counts_taken_from_indexes_equal_the_definitions_even_for_rows_the_store_never_writes(store):
    apply(store,
          result("/lib/a.flac", 1, engine="rust"), result("/lib/b.flac", 2, engine="python"),
          result("/lib/c.flac", 3, engine="rust"), result("/lib/d.flac", 4, engine="rust"),
          failure("/lib/bad.flac", 5, ErrorCode.CORRUPT), failure("/lib/a.flac", 6, ErrorCode.TIMEOUT),
          result("/lib/gone.flac", 7, engine="python"), TrackRemoved(path="/lib/gone.flac", source_seq=8),
          TrackMoved(old_path="/lib/nowhere.flac", path="/lib/new.flac", source_seq=9))

    def reference(c) -> queries.Counts:
        since = datetime.now(timezone.utc) - timedelta(minutes=5)
        recent = c.execute(queries.recent_q(since)).one()
        return queries.Counts(
            known=c.execute(queries.known_q()).scalar_one(), active=c.execute(queries.active_q()).scalar_one(),
            pending=c.execute(queries.pending_q()).scalar_one(),
            failed_by_code=dict(c.execute(queries.failed_by_code_q()).all()),
            failures_by_code=dict(c.execute(queries.failures_by_code_q()).all()),
            tombstoned=c.execute(queries.tombstoned_q()).scalar_one(), stale=c.execute(queries.stale_q()).scalar_one(),
            engine_share=dict(c.execute(queries.engine_share_q()).all()), recent_minutes=5,
            recent_persisted=recent[0], recent_analyzed=recent[1])

    edits = [
        None,  # as the store wrote it
        # a failed track keeping an old fingerprint, a pending one with a fingerprint
        "UPDATE tracks SET state = 'failed', last_failure_code = 'corrupt' WHERE path = '/lib/b.flac'",
        "UPDATE tracks SET state = 'pending' WHERE path = '/lib/c.flac'",
        # active tracks without a fingerprint (the store never writes one), with and without a failure row
        "DELETE FROM track_fingerprints WHERE track_id = (SELECT id FROM tracks WHERE path = '/lib/d.flac')",
        "DELETE FROM track_fingerprints WHERE track_id = (SELECT id FROM tracks WHERE path = '/lib/a.flac')",
        "UPDATE track_fingerprints SET analyzed_at = NULL",
    ]
    seen = set()
    for edit in edits:
        with store.engine.begin() as c:
            if edit:
                c.execute(text(edit))
            got, want = queries.counts(c, recent_minutes=5), reference(c)
            assert got == want, edit
            seen.add((got.active, got.pending, got.failed, got.recent_analyzed))
    assert len(seen) == len(edits)  # every edit changed what is counted


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


def test_the_source_event_rule_for_replaced_events_and_exclusions():
    """One message per file's subject: a missing event was replaced by a newer one of the same file; an
    ``excluded`` removal answering anything but a removal needs the persister's library to exclude the path."""
    from trackprint.contracts import FileEvent
    from trackprint.paths import Library
    from trackprint.persister.sources import MISSING, source_problem, subject_path

    fp = result("/lib/a.flac", 5)
    assert source_problem(fp, MISSING, 9, latest=7) is None  # replaced by the path's newer event 7
    assert "names no event of '/lib/a.flac'" in source_problem(fp, MISSING, 9, latest=3)  # its newest is older
    assert "holds none of it" in source_problem(fp, MISSING, 9, latest=None)
    move = TrackMoved(old_path="/lib/a.flac", path="/lib/b.flac", source_seq=5)
    assert subject_path(move) == "/lib/a.flac" and subject_path(fp) == "/lib/a.flac"
    library = Library(("/lib",), excludes=("Podcasts",))
    podcast = "/lib/Podcasts/p.flac"
    added = FileEvent(kind="added", path="/lib/a.flac", root="/lib")
    removed = FileEvent(kind="removed", path="/lib/a.flac", root="/lib")
    excluded_a = TrackRemoved(path="/lib/a.flac", source_seq=5, reason="excluded")
    assert source_problem(excluded_a, added, 9) is None  # no library: not judged
    assert "not an exclusion" in source_problem(excluded_a, added, 9, library=library)
    assert "not an exclusion" in source_problem(excluded_a, MISSING, 9, latest=7, library=library)
    assert source_problem(excluded_a, removed, 9, library=library) is None  # the watcher's own removal
    excluded_p = TrackRemoved(path=podcast, source_seq=5, reason="excluded")
    assert source_problem(excluded_p, FileEvent(kind="added", path=podcast, root="/lib"), 9, library=library) is None
    assert source_problem(excluded_p, MISSING, 9, latest=7, library=library) is None
