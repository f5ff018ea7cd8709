"""``trackprint bench-queries``: see :mod:`trackprint.benchmarks.queries` for what is measured and how."""

from __future__ import annotations

import argparse

from trackprint.argtypes import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench-queries",
                                   help="time query and similar on a large synthetic library (SQLite)")
    parser.add_argument("--rows", type=positive_int, default=500_000, help="tracks (default 500000)")
    parser.add_argument("--repeat", type=positive_int, default=15, help="runs per case; medians reported (default 15)")
    parser.add_argument("--db-path", default=None,
                        help="the benchmark database (default: the temp folder; reused when it has --rows rows)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.queries import run as run_benchmark

    return run_benchmark(args)
