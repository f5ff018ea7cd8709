"""``trackprint serve [--host 127.0.0.1] [--port 8765] [--db URL] [--data-dir DIR] [--nats URL]``: the web page
and the HTTP API, read-only.

Serves the database that ``status`` would read (``--db``, else the settings, else the data directory's
run.json, else its SQLite) on loopback by default; ``trackprint up`` serves the same application on its
``--web-port``. Nothing is written: no database is created (a missing one answers ``no_database`` until
it appears), no file is analysed. See docs/http-api.md for the endpoints.
"""

from __future__ import annotations

import argparse
import sys

from trackprint.config import add_location_arguments, data_dir, resolve_db, run_state
from trackprint.web import LOOPBACK

DEFAULT_PORT = 8765


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="the web page and the HTTP API (read-only)",
        epilog="exit status: 0 stopped by Ctrl-C/SIGTERM; 2 the port cannot be used. Endpoints: /, /api/status, "
               "/api/tracks?q=, /api/tracks/similar?path=&k=, /api/tracks/one?path=, /api/playlist?seed=&length=, "
               "/api/map, /metrics (docs/http-api.md)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; the API has no "
                             "authentication, so anything else exposes the library's paths to that network)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default: the ports.web setting, else {DEFAULT_PORT}; 0: any free port)")
    add_location_arguments(parser, nats=True)
    parser.add_argument("--federate", action="append", default=[], metavar="NAME=URL",
                        help="also serve this service's own /metrics on /metrics with service=NAME "
                             "(repeatable; `up --metrics-port` passes its services)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint import settings
    from trackprint.web import bind, run_server
    from trackprint.web.app import create_app

    port = args.port
    if port is None:
        port = settings.current().get("ports.web") or DEFAULT_PORT
    if not 0 <= port <= 65535:
        print(f"serve: --port must be 0..65535, got {port}", file=sys.stderr)
        return 2
    federate = {}
    for item in args.federate:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith("http"):
            print(f"serve: --federate expects NAME=http://HOST:PORT/metrics, got {item!r}", file=sys.stderr)
            return 2
        federate[name] = url
    try:
        sock = bind(args.host, port)
    except OSError as exc:
        print(f"serve: cannot listen on {args.host}:{port}: {exc.strerror or exc} (another server there? give "
              "--port, 0 for any free port)", file=sys.stderr)
        return 2
    directory = data_dir(args.data_dir)
    # NATS: the flag or the setting; else run.json's, read again each time (a restarted `up` may move it)
    app = create_app(resolve_db(args), nats_url=args.nats or settings.current().nats, data_dir=directory,
                     run_state=lambda: run_state(args.data_dir), federate=federate)

    def announce(url: str) -> None:
        print(f"trackprint serve: {url} (read-only; Ctrl-C stops)", flush=True)
        if args.host not in LOOPBACK:
            print(f"serve: WARNING: listening on {args.host}: anyone who can reach it reads the library's paths "
                  "and counts (no authentication)", file=sys.stderr, flush=True)

    return run_server(app, sock, announce=announce)
