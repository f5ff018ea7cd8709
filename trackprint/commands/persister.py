"""``trackprint persister [--nats URL[,URL]] [--db URL] [--batch 500] [--batch-wait-s 0.5] [--metrics-port N]``

Binds to the durable pull consumer ``persister`` on the results stream and
writes every result to SQL: one transaction per batch, commit, then ack. Runs
the schema migrations (``alembic upgrade head``) at start. Stops cleanly on
SIGTERM/SIGINT after the in-flight batch. See ``persister/README.md``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("persister", help="results stream -> SQL (upsert, commit, then ack)")
    parser.add_argument("--nats", default=None, help="server URL(s), comma-separated (default: the nats setting, else nats://127.0.0.1:4222)")
    parser.add_argument("--db", default=None,
                        help="database: sqlite:///FILE, postgresql+psycopg://..., or a file path "
                             "(default: the database setting, $TRACKPRINT_DB or the settings file)")
    parser.add_argument("--library", action="append", default=[], metavar="ROOT",
                        help="a library root (repeat for several; default $TRACKPRINT_LIBRARY): results for paths "
                             "outside them are recorded as invalid_message, never stored as tracks")
    parser.add_argument("--batch", type=int, default=500, help="messages per transaction (default 500)")
    parser.add_argument("--batch-wait-s", type=float, default=0.5, help="how long a fetch waits for messages (default 0.5)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus counters on 127.0.0.1:PORT")
    parser.add_argument("--nak-delay-s", type=float, default=2.0, help="redelivery delay after a database error")
    parser.add_argument("--sqlite-busy-timeout-s", type=float, default=30.0, help="SQLite busy_timeout (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint import settings
    from trackprint.config import service_nats
    from trackprint.persister.service import PersisterConfig, PersisterService
    from trackprint.paths import library_from_env
    from trackprint.service import run_service

    db = args.db or settings.current().database
    if not db:
        print("trackprint persister: --db (or TRACKPRINT_DB, or database in the settings file) is required",
              file=sys.stderr)
        return 2
    if args.batch < 1 or args.batch_wait_s <= 0:
        print("trackprint persister: --batch must be >= 1 and --batch-wait-s > 0", file=sys.stderr)
        return 2
    library = library_from_env(args.library)
    config = PersisterConfig(nats=service_nats(args.nats), db=db, batch=args.batch, batch_wait_s=args.batch_wait_s,
                             library=library if library.roots else None,
                             metrics_port=args.metrics_port, nak_delay_s=args.nak_delay_s,
                             sqlite_busy_timeout_s=args.sqlite_busy_timeout_s)
    return run_service(PersisterService(config), metrics_port=config.metrics_port)
