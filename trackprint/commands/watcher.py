"""``trackprint watcher --nats URL[,URL] LIBRARY... [--poll] [--quiet-s 3] [--reconcile-s 300]``

Watches the library roots and publishes FileEvents (added, changed, moved,
removed) to the events stream; see watcher/README.md.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("watcher", help="watch library roots and publish file events to NATS")
    parser.add_argument("roots", nargs="+", metavar="LIBRARY")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="server URL(s), comma-separated")
    parser.add_argument("--poll", action="store_true", help="poll instead of inotify (network shares)")
    parser.add_argument("--quiet-s", type=float, default=3.0, help="seconds a file must be unchanged (default 3)")
    parser.add_argument("--reconcile-s", type=float, default=300.0, help="full rescan period (default 300)")
    parser.add_argument("--extensions", default=None, help="comma-separated (default: flac,mp3,ogg,opus,wav,...)")
    parser.add_argument("--state", default=None, help="state file (default ~/.local/share/trackprint/watcher.sqlite)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics on 127.0.0.1:PORT (default off)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.service import run_service
    from trackprint.watcher.service import DEFAULT_EXTENSIONS, Watcher, WatcherConfig
    from trackprint.watcher.state import default_state_path

    exts = tuple(e.strip() for e in args.extensions.split(",") if e.strip()) if args.extensions else DEFAULT_EXTENSIONS
    config = WatcherConfig(roots=args.roots, nats=args.nats, poll=args.poll, quiet_s=args.quiet_s,
                           reconcile_s=args.reconcile_s, extensions=exts,
                           state_path=args.state or default_state_path())
    return run_service(Watcher(config), metrics_port=args.metrics_port)
