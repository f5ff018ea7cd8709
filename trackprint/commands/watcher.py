"""``trackprint watcher [--nats URL[,URL]] [LIBRARY...] [--poll] [--quiet-s 3] [--reconcile-s 300]``

Watches the library roots and publishes FileEvents (added, changed, moved,
removed) to the events stream; see watcher/README.md.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("watcher", help="watch library roots and publish file events to NATS")
    parser.add_argument("roots", nargs="*", metavar="LIBRARY", help="library roots (default: the library setting)")
    parser.add_argument("--nats", default=None, help="server URL(s), comma-separated (default: the nats setting, else nats://127.0.0.1:4222)")
    parser.add_argument("--poll", action="store_true", default=None,
                        help="poll instead of inotify (network shares; default: the poll setting)")
    parser.add_argument("--quiet-s", type=float, default=3.0, help="seconds a file must be unchanged (default 3)")
    parser.add_argument("--reconcile-s", type=float, default=300.0, help="full rescan period (default 300)")
    parser.add_argument("--extensions", default=None, help="comma-separated (default: flac,mp3,ogg,opus,wav,...)")
    parser.add_argument("--state", default=None, help="state file (default ~/.local/share/trackprint/watcher.sqlite)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics on 127.0.0.1:PORT (default off)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from trackprint import settings
    from trackprint.config import service_nats
    from trackprint.service import run_service
    from trackprint.watcher.service import DEFAULT_EXTENSIONS, Watcher, WatcherConfig
    from trackprint.watcher.state import default_state_path

    exts = tuple(e.strip() for e in args.extensions.split(",") if e.strip()) if args.extensions else DEFAULT_EXTENSIONS
    current = settings.current()
    roots = args.roots or list(current.library)
    if not roots:
        print("trackprint watcher: give the library roots (LIBRARY..., or the library setting)", file=sys.stderr)
        return 2
    poll = current.poll if args.poll is None else args.poll
    config = WatcherConfig(roots=roots, nats=service_nats(args.nats), poll=poll, quiet_s=args.quiet_s,
                           reconcile_s=args.reconcile_s, extensions=exts,
                           state_path=args.state or default_state_path())
    return run_service(Watcher(config), metrics_port=args.metrics_port)
