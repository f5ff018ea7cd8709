"""``trackprint bench-queries --rows 500000``: query and similar times on a large synthetic library.

Method:

1. A benchmark SQLite database (``--db-path``, default in the temp folder; reused
   when it already holds ``--rows`` rows) is created with the real migrations and
   filled directly (sqlite3 ``executemany``, no persister) with synthetic rows:
   paths ``/bench/<artist>/<album>/NN.flac``, tags from pools (5,000 artists,
   40 genres, years 1950-2024, MusicBrainz release ids per album) and the 25
   values drawn inside the spec's ranges (tempo 60-200 BPM, LUFS -30..-4, ...).
2. Every timing runs in this process, as a server (``trackprint serve``) or a
   long-lived caller would: one Engine kept open. Each case runs ``--repeat``
   times; the median and the worst are printed. ``query`` cases are
   :func:`trackprint.search.find` on the cached columns
   (:class:`trackprint.query.QueryColumns`: the parsed expression evaluated with
   numpy over the columns, then the matching rows read by id), each also run once
   on SQL (``columns=False``, the reference: the feature columns' comparisons,
   LIKE scans for text), whose time is printed beside it and whose answer must be
   the same (else the run fails); ``similar`` cases are
   :func:`trackprint.search.similar_to` on the float32 matrix (one
   matrix-vector product per call; the album look-up on the columns), the
   playlist :func:`trackprint.search.smooth_playlist` (each step scores only the
   tracks within the tempo step).
3. The one-off costs are printed apart: reading the matrix and the columns from
   SQL (the first call after a database change), loading them from the ``.npz``
   caches (the first call of a new process), and the cache-key probe every call
   makes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION

QUERIES = [
    ("range, 2 features, --limit 100", "tempo_bpm:120..130 lufs:-12..", 100),
    ("range, narrow, all rows", "tempo_bpm:120..120.5", None),
    ("tag substring, --limit 100", "artist:artist_00042", 100),
    ("tag + range + sort, --limit 50", "genre:jazz tempo_bpm:120..130 sort:lufs-", 50),
    ("negation + OR, --limit 100", "year:1990..1999 -genre:rock , genre:ambient lufs:..-20", 100),
    ("bare word, --limit 20", "album_0123", 20),
]
GENRES = ["rock", "jazz", "ambient", "electronic", "classical", "folk", "hip hop", "metal", "pop", "blues"] + \
    [f"genre_{i:02d}" for i in range(30)]


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    from trackprint.fingerprint import RANGES

    out = np.empty((n, len(DIMENSIONS)))
    for j, name in enumerate(DIMENSIONS):
        lo, hi = RANGES[name]
        if name == "tempo_bpm":
            lo, hi = 60.0, 200.0
        elif name == "lufs":
            lo, hi = -30.0, -4.0
        elif name in ("spectral_centroid", "spectral_rolloff"):
            lo, hi = 200.0, 9000.0
        elif hi - lo > 100:
            hi = lo + 100
        out[:, j] = rng.uniform(lo, hi, n)
    return out


def fill(db_path: Path, rows: int, *, seed: int = 0, chunk: int = 50_000, say=print) -> None:
    from trackprint.persister.store import Store

    store = Store(f"sqlite:///{db_path}")
    store.migrate()
    store.close()
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc).isoformat(sep=" ")
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA synchronous=OFF")
    fp_cols = ["track_id", "fingerprint_version", "engine", "content_id", "codec", "sample_rate", "channels",
               "duration_s", "analysis_s", "reused", "source_seq", "analyzed_at", "updated_at", *DIMENSIONS]
    tag_cols = ["track_id", "artist", "album_artist", "album", "title", "track_number", "disc_number", "genre",
                "year", "duration_s", "mb_recording_id", "mb_release_id", "mb_artist_id", "updated_at"]
    started = time.monotonic()
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = np.arange(start + 1, start + n + 1)
        values = _values(rng, n)
        albums = rng.integers(0, max(1, rows // 10), n)
        artists = albums % 5000
        genres = rng.integers(0, len(GENRES), n)
        years = rng.integers(1950, 2025, n)
        durations = rng.uniform(90, 600, n)
        track_rows, fp_rows, tag_rows = [], [], []
        for i in range(n):
            tid = int(ids[i])
            artist, album = f"Artist_{artists[i]:05d}", f"Album_{albums[i]:05d}"
            path = f"/bench/{artist}/{album}/{tid:07d}.flac"
            track_rows.append((tid, path, 1_000_000 + tid, tid, tid, f"flac-{tid:040x}", "active", tid, now, now))
            fp_rows.append((tid, FINGERPRINT_VERSION, "rust", f"flac-{tid:040x}", "flac", 44100, 2,
                            float(durations[i]), 0.5, 0, tid, now, now, *map(float, values[i])))
            tag_rows.append((tid, artist, artist, album, f"Title {tid}", int(tid % 12) + 1, 1,
                             GENRES[genres[i]], int(years[i]), float(durations[i]), None,
                             f"00000000-0000-0000-0000-{albums[i]:012d}", None, now))
        with con:
            con.executemany("INSERT INTO tracks (id, path, size, mtime_ns, inode, content_id, state, last_source_seq, "
                            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", track_rows)
            con.executemany(f"INSERT INTO track_fingerprints ({', '.join(fp_cols)}) VALUES "
                            f"({', '.join('?' * len(fp_cols))})", fp_rows)
            con.executemany(f"INSERT INTO track_tags ({', '.join(tag_cols)}) VALUES "
                            f"({', '.join('?' * len(tag_cols))})", tag_rows)
        say(f"bench-queries: filled {start + n:,} of {rows:,} rows ({time.monotonic() - started:.0f} s)")
    con.execute("ANALYZE")
    con.close()


def _timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def run(args) -> int:
    from trackprint import search
    from trackprint.persister.db import make_engine
    from trackprint.persister.queries import read_counts
    from trackprint.search import find

    db_path = Path(args.db_path or Path(tempfile.gettempdir()) / f"trackprint-bench-{args.rows}.db")
    url = f"sqlite:///{db_path}"
    have = 0
    if db_path.exists():
        try:
            with sqlite3.connect(db_path) as con:
                have = con.execute("SELECT count(*) FROM track_fingerprints").fetchone()[0]
        except sqlite3.Error:
            have = 0
    if have != args.rows:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        fill(db_path, args.rows)
    print(f"bench-queries: {args.rows:,} tracks in {db_path} ({db_path.stat().st_size / 1e6:.0f} MB); "
          f"{args.repeat} runs per case, in-process, one Engine; times in ms")
    engine = make_engine(url, must_exist=True)
    figures: dict[str, dict] = {}

    def report(name: str, times: list[float], note: str = "") -> None:
        med = statistics.median(times)
        figures[name] = {"median_ms": round(med, 1), "max_ms": round(max(times), 1), "runs": len(times)}
        print(f"  {name:<46} median {med:8.1f}   max {max(times):8.1f}  {note}")

    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            search._memo.clear()
            print("one-off costs (once per database change / per process):")
            t0 = time.perf_counter()
            search.load_matrix(url, engine=engine, cache_dir=cache)
            report("one-off: matrix from SQL (+ write .npz)", [(time.perf_counter() - t0) * 1000])
            t0 = time.perf_counter()
            search.load_matrix(url, engine=engine, cache_dir=cache, columns=True)
            report("one-off: query columns from SQL (+ write .npz)", [(time.perf_counter() - t0) * 1000])
            search._memo.clear()
            t0 = time.perf_counter()
            search.load_matrix(url, engine=engine, cache_dir=cache)
            report("one-off: matrix from the .npz (new process)", [(time.perf_counter() - t0) * 1000])
            t0 = time.perf_counter()
            search.load_matrix(url, engine=engine, cache_dir=cache, columns=True)
            report("one-off: query columns from the .npz (new process)", [(time.perf_counter() - t0) * 1000])
            with engine.connect() as conn:
                times, _ = _timed(lambda: search.library_key(conn), args.repeat)
            report("cache-key probe (every call)", times)

            print("status (every count `status` and `up`'s console read, in one transaction):")
            times, found = _timed(lambda: read_counts(url, engine=engine), args.repeat)
            report("status counts", times, f"{found.known:,} known, {found.active:,} active, "
                                           f"{found.stale:,} stale")

            print("query (trackprint.search.find on the cached columns; SQL once beside it, same answer required):")
            for name, expression, limit in QUERIES:
                t0 = time.perf_counter()
                reference = find(url, expression, limit=limit, engine=engine, columns=False)
                sql_ms = (time.perf_counter() - t0) * 1000
                times, rows = _timed(lambda: find(url, expression, limit=limit, engine=engine, cache_dir=cache,
                                                  columns=True), args.repeat)
                if rows != reference:
                    raise SystemExit(f"bench-queries: {expression!r}: the columns' answer differs from SQL's")
                report(f"query {name}", times, f"{len(rows):,} rows, same as SQL ({sql_ms:,.0f} ms)  "
                                               f"[{expression}]")
                figures[f"query {name}"]["sql_ms"] = round(sql_ms, 1)

            print("similar (trackprint.search, float32 matrix):")
            rng = np.random.default_rng(1)
            with engine.connect() as conn:
                picks = rng.integers(1, args.rows + 1, size=args.repeat * 5 + 5)
                paths = dict(conn.exec_driver_sql(
                    f"SELECT id, path FROM tracks WHERE id IN ({','.join(str(int(p)) for p in picks)})").all())
            seeds = [paths[int(p)] for p in picks]
            it = iter(seeds)
            times, found = _timed(lambda: search.similar_to(url, [next(it)], 10, engine=engine, cache_dir=cache),
                                  args.repeat)
            report("similar 1 seed, k=10", times, f"{len(found.matches)} matches")
            times, found = _timed(lambda: search.similar_to(url, [next(it) for _ in range(3)], 50,
                                                            exclude_seed_albums=True, engine=engine,
                                                            cache_dir=cache), args.repeat)
            report("similar 3 seeds, k=50, --exclude-seed-albums", times, f"{len(found.matches)} matches")
            t0 = time.perf_counter()
            search.smooth_playlist(url, next(it), 2, max_tempo_step=8, engine=engine, cache_dir=cache)
            report("one-off: playlist's tempo-sorted copies (first playlist)", [(time.perf_counter() - t0) * 1000])
            times, chain = _timed(lambda: search.smooth_playlist(url, next(it), 20, max_tempo_step=8,
                                                                 max_loudness_step=3, engine=engine,
                                                                 cache_dir=cache), args.repeat)
            report("playlist --length 20 (20 nearest-unused steps)", times, f"{len(chain)} tracks")
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"rows": args.rows, "repeat": args.repeat, "figures": figures}))
    targets = {name: 100 if name == "status counts" else 300 for name in figures if not name.startswith("one-off")}
    slow = [f"{name} (target {target} ms)" for name, target in targets.items() if figures[name]["median_ms"] >= target]
    if slow:
        print(f"bench-queries: over target: {', '.join(slow)}")
    return 0
