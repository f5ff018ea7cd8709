"""status, similar and export read what the persister wrote (real SQLite and PostgreSQL)."""

import csv
import io
import json
import subprocess

import pyarrow.parquet as pq
from sqlalchemy import create_engine, text

from tests.procs import run_cli
from trackprint.persister.store import Store
from trackprint.contracts import (AnalysisFailure, DecodeFacts, Fingerprint, FingerprintResult, Timings,
                                  TrackRemoved)
from trackprint.persister.db import normalize_url
from trackprint.errors import ErrorCode
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION


def fingerprint(seed: float) -> Fingerprint:
    values = {name: 0.0 for name in DIMENSIONS}
    values.update(sub_bass_pct=10 + seed, bass_pct=30 - seed, mid_pct=60.0, lufs=-14 - seed, tempo_bpm=100 + 3 * seed,
                  spectral_centroid=1500 + 40 * seed, stereo_width=0.1 + seed / 100, phase_correlation=0.5,
                  harmonic_ratio=0.5 + seed / 50, crest_db=12 + seed / 3)
    return Fingerprint(**values)


def result(path: str, seed: float, seq: int, engine: str = "python") -> FingerprintResult:
    return FingerprintResult(
        path=path, fingerprint=fingerprint(seed), fingerprint_version=FINGERPRINT_VERSION, engine=engine,
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=200.0),
        timings=Timings(total_s=0.5), content_id=f"c{seed}", source_seq=seq,
    )


def populate(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    messages = [result(f"/music/track{i:02d}.flac", float(i), seq=i + 1, engine="rust" if i % 3 else "python")
                for i in range(12)]
    messages[5] = result("/music/track05.flac", 0.2, seq=6)  # a near twin of track00
    messages.append(AnalysisFailure(path="/music/broken.flac", code=ErrorCode.TRUNCATED, message="cut", source_seq=20))
    messages.append(AnalysisFailure(path="/music/empty.flac", code=ErrorCode.EMPTY_FILE, message="0 bytes", source_seq=21))
    messages.append(TrackRemoved(path="/music/track11.flac", source_seq=30))
    store.apply([(m, {"stream_seq": i + 1}) for i, m in enumerate(messages)])
    store.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=120)


def test_status_json_agrees_with_direct_sql(db_url):
    populate(db_url)
    out = cli("status", "--json", "--db", db_url, "--nats", "nats://127.0.0.1:1")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    db = report["database"]
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        def one(sql):
            return conn.execute(text(sql)).scalar_one()
        assert db["known"] == one("SELECT count(*) FROM tracks WHERE state <> 'deleted'")
        assert db["active"] == one("SELECT count(*) FROM tracks t JOIN track_fingerprints f ON f.track_id = t.id "
                                   "WHERE t.state = 'active'")
        assert db["tombstoned"] == one("SELECT count(*) FROM tracks WHERE state = 'deleted'")
        assert db["failed"] == one("SELECT count(*) FROM tracks WHERE state = 'failed'")
        by_code = dict(conn.execute(text("SELECT code, count(*) FROM analysis_failures GROUP BY code")).all())
        shares = dict(conn.execute(text(
            "SELECT f.engine, count(*) FROM track_fingerprints f JOIN tracks t ON t.id = f.track_id "
            "WHERE t.state <> 'deleted' GROUP BY f.engine")).all())
    engine.dispose()
    assert (db["active"], db["tombstoned"], db["failed"]) == (11, 1, 2)
    assert db["failures_by_code"] == by_code == {"truncated": 1, "empty_file": 1}
    assert db["engine_share"] == shares
    assert db["stale"] == 0 and db["pending"] == 0
    assert report["bus"]["reachable"] is False
    assert any("NATS not reachable" in w for w in report["warnings"])


def test_similar_finds_the_near_twin_and_export_writes_every_current_row(db_url, tmp_path):
    populate(db_url)
    out = cli("similar", "/music/track00.flac", "-k", "3", "--json", "--db", db_url)
    assert out.returncode == 0, out.stderr
    matches = [json.loads(line) for line in out.stdout.splitlines()]
    assert matches[0]["path"] == "/music/track05.flac"
    assert [m["distance"] for m in matches] == sorted(m["distance"] for m in matches)
    assert "/music/track00.flac" not in [m["path"] for m in matches]
    assert "/music/track11.flac" not in [m["path"] for m in matches]  # tombstoned

    out = cli("export", "--format", "csv", "--db", db_url)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 11 and set(DIMENSIONS) <= set(rows[0])
    row = next(r for r in rows if r["path"] == "/music/track03.flac")
    assert float(row["tempo_bpm"]) == 109.0 and row["stale"] == "False"

    out = cli("export", "--format", "jsonl", "--db", db_url)
    assert len(out.stdout.splitlines()) == 11

    parquet = tmp_path / "fp.parquet"
    out = cli("export", "--format", "parquet", "--out", str(parquet), "--db", db_url)
    assert out.returncode == 0, out.stderr
    table = pq.read_table(parquet)
    assert table.num_rows == 11 and "spectral_centroid" in table.column_names
