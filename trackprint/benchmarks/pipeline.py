"""``trackprint bench-pipeline DIR [--limit N] [--analyzers N] [--trickle K]``: end-to-end throughput and latency.

In one run, on the same audio files of DIR (hard-linked into a scratch library):

1. engines alone: the Rust engine (or Python when Rust is not built) on every
   file, N at a time, with the server already running (``trackprint bench``'s
   own measurement), files/s;
2. the whole pipeline: ``trackprint up`` (embedded NATS, Rust server, watcher,
   N analyzers, persister on SQLite) on the same files, from the first
   file-event's quiescence (its ``observed_at``) to the last committed row
   (``track_fingerprints.updated_at``), files/s, and the ratio to (1);
3. latency: with the backlog done, K more files are linked in one at a time,
   a few seconds apart; for each, commit time minus the moment the watcher
   found it quiescent; median and 95th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

AUDIO_SUFFIXES = {".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif"}


def say(message: str) -> None:
    print(message, flush=True)


def audio_files(directory: str) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def engines_alone(paths: list[Path], jobs: int) -> float:
    """The engine the analyzers use, alone: `trackprint bench`'s Rust column (server already up, `jobs` at
    a time), or its Python column when the Rust server is not built."""
    from trackprint.benchmarks import engines as bench
    from trackprint.binaries import rust_server_binary

    names = [str(p) for p in paths]
    engines = {e.name: e for e in bench.ENGINES}
    server = None
    if rust_server_binary():
        server = bench.start_rust_server(sorted({os.path.dirname(os.path.realpath(p)) for p in names}), jobs)
        os.environ[bench.RUST_URL_ENV], os.environ[bench.RUST_PID_ENV] = server.url, str(server.process.pid)
    try:
        result = bench.run_engine(engines["rust" if server else "python"], names, jobs)
    finally:
        if server is not None:
            server.stop()
    rate = len(result.ok) / result.wall_s
    say(f"engines alone: {result.engine.name} engine, {len(result.ok)} files in {result.wall_s:.1f} s = "
        f"{rate:.2f} files/s ({len(names) - len(result.ok)} failed)")
    return rate


def committed_rows(db_path: Path) -> dict[str, float]:
    """path -> commit time (epoch seconds) of every fingerprint row so far."""
    from sqlalchemy import exc, select

    from trackprint.persister.db import DatabaseMissing, make_engine
    from trackprint.persister.models import track_fingerprints, tracks

    try:
        engine = make_engine(str(db_path), must_exist=True)
    except DatabaseMissing:
        return {}
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(tracks.c.path, track_fingerprints.c.updated_at)
                                .join(track_fingerprints, track_fingerprints.c.track_id == tracks.c.id)).all()
    except exc.SQLAlchemyError:  # the persister is still creating the schema
        return {}
    finally:
        engine.dispose()
    return {path: _epoch(stamp) for path, stamp in rows}


def _epoch(stamp: datetime) -> float:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


async def observed_times(nats_url: str) -> dict[str, float]:
    """observed_at of the latest added/changed event per path, read back from the events stream."""
    from trackprint import bus
    from trackprint.bus.fold import latest_events

    nc = await bus.connect(nats_url, "trackprint-bench")
    try:
        events = await latest_events(nc.jetstream())
    finally:
        await bus.close(nc)
    return {path: event.observed_at for path, event in events.items()}


def wait_rows(db_path: Path, expected: int, timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    rows: dict[str, float] = {}
    while time.monotonic() < deadline:
        rows = committed_rows(db_path)
        if len(rows) >= expected:
            return rows
        time.sleep(0.25)
    raise SystemExit(f"bench-pipeline: only {len(rows)}/{expected} rows after {timeout_s:.0f} s")


def run(args: argparse.Namespace) -> int:
    files = audio_files(args.directory)
    if len(files) < args.limit + args.trickle:
        print(f"bench-pipeline: need {args.limit + args.trickle} audio files in {args.directory}, found {len(files)}"
              " (make corpus builds one)", file=sys.stderr)
        return 2
    backlog, trickle = files[: args.limit], files[args.limit: args.limit + args.trickle]
    scratch = Path(tempfile.mkdtemp(prefix="trackprint-bench-"))
    library, data = scratch / "library", scratch / "data"
    library.mkdir()
    say(f"bench-pipeline: {len(backlog)} files backlog + {len(trickle)} trickled, {args.analyzers} analyzers, "
        f"{os.cpu_count()} cores; scratch {scratch}")
    engine_rate = engines_alone(backlog, args.analyzers)

    for path in backlog:
        link(path, library / path.name)
    up = subprocess.Popen([sys.executable, "-m", "trackprint.cli", "up", str(library), "--data-dir", str(data),
                           "--analyzers", str(args.analyzers)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        rows = wait_rows(data / "trackprint.db", len(backlog), 3600)
        state = json.loads((data / "run.json").read_text())
        observed = asyncio.run(observed_times(state["nats_url"]))
        first = min(observed.values())
        last = max(rows.values())
        pipeline_rate = len(backlog) / (last - first)
        say(f"pipeline:      {len(backlog)} files from first quiescent event to last commit in {last - first:.1f} s "
            f"= {pipeline_rate:.2f} files/s")
        say(f"ratio:         pipeline / engines alone = {pipeline_rate / engine_rate:.2f} (target >= 0.85)")

        latencies = []
        for path in trickle:
            target = library / path.name
            link(path, target)
            rows = wait_rows(data / "trackprint.db", len(rows) + 1, 600)
            observed = asyncio.run(observed_times(state["nats_url"]))
            latencies.append(rows[str(target)] - observed[str(target)])
            time.sleep(args.gap_s)
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
        say(f"latency:       quiescent -> committed over {len(latencies)} files: median "
            f"{statistics.median(latencies):.2f} s, p95 {p95:.2f} s (max {latencies[-1]:.2f} s)")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
