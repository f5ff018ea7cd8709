"""``trackprint bench-persister``: see :mod:`trackprint.benchmarks.persister` for what is measured and how."""

from __future__ import annotations

import argparse

from trackprint.argtypes import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench-persister",
                                   help="the persister alone: rows/s of Store.apply (and the service) on SQLite "
                                        "and PostgreSQL")
    parser.add_argument("--rows", type=positive_int, default=20_000, help="results per case (default 20000)")
    parser.add_argument("--db", action="append", default=None, metavar="sqlite|postgresql|URL",
                        help="sqlite (default; a temp file per run), postgresql (a throwaway local server, source "
                             "checkout only) or a postgresql+psycopg:// URL (fresh databases created there); "
                             "repeat for several")
    parser.add_argument("--batch", type=positive_int, default=500,
                        help="messages per Store.apply, the service's --batch (default 500)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per case; medians reported (default 3)")
    parser.add_argument("--cases", default=None, help="comma-separated subset of new,newer,again,mixed (default all)")
    parser.add_argument("--service", action="store_true",
                        help="also the real persister service on a real nats-server (start to all acked)")
    parser.add_argument("--pg-fast", action="store_true",
                        help="throwaway PostgreSQL with the tests' settings (fsync, synchronous_commit off)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.persister import run as run_benchmark

    return run_benchmark(args)
