"""``trackprint up [LIBRARY...] [--data-dir DIR] [--db URL] [--nats URL] [--analyzers N] [--poll]``: embedded.

Starts, supervises and stops everything on one machine: an embedded
nats-server (unless --nats is given), the Rust analysis server, the watcher,
N analyzers and the persister (SQLite in the data directory unless --db is
given). Prints progress every few seconds. Ctrl-C / SIGTERM stop it cleanly;
running it again resumes where it stopped (the streams, the consumers and the
watcher's state live in the data directory). Whatever is not given on the
command line comes from the settings (``trackprint config`` shows them).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from trackprint import binaries, settings
from trackprint.embedded import EmbeddedRun, StartError
from trackprint.progress import RunConsole

PROGRESS_EVERY_S = 2.0  # how often the console reads the run; it prints only what changed
# --exit-when-idle: this long with nothing waiting anywhere. Short, because what it reads is current: the
# stream's lag is asked live, and the watcher reports at once whenever "scan complete, nothing waiting" changes.
IDLE_STOP_S = 2.0


def register(subparsers) -> None:
    parser = subparsers.add_parser("up", help="run everything on this machine (embedded default)")
    parser.add_argument("libraries", nargs="*", metavar="LIBRARY", help="library roots (default: the library setting)")
    parser.add_argument("--data-dir", default=None,
                        help=f"default: the data_dir setting, else {binaries.data_dir_default()}")
    parser.add_argument("--db", default=None, help="database URL (default: the database setting, else SQLite in the "
                                                   "data directory)")
    parser.add_argument("--nats", default=None,
                        help="use this NATS instead of the embedded one (default: the nats setting)")
    parser.add_argument("--analyzers", type=int, default=None,
                        help="analyzer processes (default: the analyzers setting, else 1); together they "
                             "analyse one file per core at once")
    parser.add_argument("--poll", action="store_const", const=True, default=None,
                        help="the watcher polls instead of inotify (network shares; default: the poll setting)")
    parser.add_argument("--no-rust", action="store_true", help="do not start the Rust server (Python engine only)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus metrics: persister on PORT, analyzers on PORT+1.., watcher after them")
    parser.add_argument("--web-port", type=int, default=None,
                        help="the web page and HTTP API on 127.0.0.1:PORT (default: the ports.web setting, 8765; "
                             "0: none)")
    parser.add_argument("--exit-when-idle", action="store_true",
                        help="stop once every discovered file is persisted (for scripts and tests)")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    try:
        print(message, flush=True)
    except BrokenPipeError:  # `up | head`: the reader is gone; stop cleanly, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def not_writable(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be used (None: it can): it or its nearest existing parent is read-only, ..."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=data_dir).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def banner(message: str) -> None:
    line = "!" * 78
    print(f"{line}\n{message}\n{line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        effective = settings.current().with_flags({
            "library": (args.libraries or None, "LIBRARY"), "data_dir": (args.data_dir, "--data-dir"),
            "database": (args.db, "--db"), "nats": (args.nats, "--nats"),
            "analyzers": (args.analyzers, "--analyzers"), "poll": (args.poll, "--poll"),
            "ports.web": (args.web_port, "--web-port")})
    except settings.SettingsError as exc:
        print(f"up: {exc}", file=sys.stderr)
        return 2
    libraries = [str(Path(p).resolve()) for p in effective.library]
    if not libraries:
        print(f"up: no library: give LIBRARY, or set library in {effective.path} (see `trackprint config`)",
              file=sys.stderr)
        return 2
    missing = [p for p in libraries if not os.path.isdir(p)]
    if missing:
        print(f"up: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    data_dir = Path(effective.data_dir)
    problem = not_writable(data_dir)
    if problem:
        print(f"up: the data directory {data_dir} is not writable ({problem}); give a writable one with --data-dir",
              file=sys.stderr)
        return 2
    if args.log_format:  # the children log the same way
        os.environ["TRACKPRINT_LOG_FORMAT"] = args.log_format
    run_ = EmbeddedRun(libraries=libraries, data_dir=data_dir,
                       db_url=effective.database or f"sqlite:///{data_dir / 'trackprint.db'}",
                       analyzers=effective.analyzers, nats_url=effective.nats, use_rust=not args.no_rust,
                       metrics_port=args.metrics_port, poll=effective.poll, nats_port=effective.get("ports.nats"),
                       server_port=effective.get("ports.server"), web_port=effective.get("ports.web"))
    stop_requested = False

    def request_stop(signum, frame):  # noqa: ARG001
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        try:
            run_.start()
        except StartError as exc:
            print(f"up: {exc}", file=sys.stderr)
            return 1
        _announce(run_)
        if effective.found:
            say(f"settings: {effective.path} (`trackprint config` shows every value and its source)")
        console = RunConsole(run_.db_url, run_.data_dir, run_.state.get("nats_url"),
                             rust_available=bool(run_.state.get("rust_available")))
        idle_since = None
        try:
            while not stop_requested:
                for note in run_.supervisor.check():  # restarts, as they happen
                    console.note(f"supervisor: {note}")
                now = time.monotonic()
                if console.due(now):
                    snap = console.tick(every_s=PROGRESS_EVERY_S)
                    if args.exit_when_idle:
                        idle = run_idle(snap, _watcher_pid(run_))
                        idle_since = (idle_since or now) if idle else None
                        if idle_since and now - idle_since >= IDLE_STOP_S:
                            console.close()
                            say(f"trackprint up: everything discovered is persisted (idle for {now - idle_since:.1f} s); "
                                "stopping (--exit-when-idle)")
                            break
                time.sleep(0.5)
        finally:
            console.close()
    finally:
        say("trackprint up: stopping (watcher, analyzers, persister, servers)...")
        run_.stop()
        say("trackprint up: stopped cleanly; run the same command again to resume")
    return 0


def run_idle(snap, watcher_pid: int | None) -> bool:
    """--exit-when-idle: this run's watcher (by pid: the status bucket still holds the last run's report) has
    finished its start-up scan and published everything it found, nothing is settling, and both consumers
    are drained (nothing pending or unacked). On a restart the old stream alone satisfies the last
    condition, so without the first one `up` could stop before the new files are even published."""
    from trackprint.service import host_name

    report = ((snap.bus or {}).get("watchers") or {}).get(host_name()) or {}
    return (watcher_pid is not None and report.get("pid") == watcher_pid and bool(report.get("scan_complete"))
            and not report.get("waiting_for_quiescence") and snap.lag == 0)


def _watcher_pid(run_: EmbeddedRun) -> int | None:
    child = next((c for c in run_.supervisor.children if c.name == "watcher"), None)
    return child.process.pid if child is not None and child.process is not None else None


def _announce(run_: EmbeddedRun) -> None:
    state = run_.state
    if state.get("nats_monitor_url"):
        store = state["store"]
        say(f"nats: embedded nats-server at {state['nats_url']} (JetStream store {run_.data_dir / 'nats'}, "
            f"up to {store['max_file_store'] / 2**30:.1f} GiB, streams {store['stream_max_bytes'] / 2**20:.0f} MiB "
            "each, sync_interval: always)")
        if store["short"]:
            banner(f"NOTE: the data directory's disk has {store['free_at_start'] / 2**30:.1f} GiB free, so the "
                   f"streams are limited to {store['stream_max_bytes'] / 2**20:.0f} MiB each (8 GiB on a large "
                   "disk).\nThat holds the events and results of roughly "
                   f"{store['stream_max_bytes'] // 4096:,} tracks; `trackprint status` warns before they fill up.")
    if state["server_url"] is None:
        banner(
            f"WARNING: the Rust analysis server is not running ({state['rust_reason']}).\n"
            "Every file is analysed by the Python engine instead: correct, but several times slower.\n"
            f"`trackprint status` shows this too. To get it: {binaries.RUST_BUILD_HINT}."
        )
    else:
        say(f"rust server: {state['server_url']} (engine: rust, Python fallback per file)")
    if state.get("web_url"):
        say(f"web: {state['web_url']} (the page and the HTTP API, read-only; --web-port 0 for none)")
    elif state.get("web_reason") and not state["web_reason"].startswith("off"):
        say(f"web: not served: {state['web_reason']}")
    say(f"trackprint up: libraries {', '.join(run_.libraries)}; data in {run_.data_dir}; logs in {run_.logs}; "
        "Ctrl-C stops")
