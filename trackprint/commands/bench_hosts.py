"""``trackprint bench-hosts``: see :mod:`trackprint.benchmarks.hosts` for what is measured and how."""

from __future__ import annotations

import argparse


def _counts(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"a comma-separated list of host counts of at least 1, got {text!r}")
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench-hosts", help="several analyzer hosts (each its own Rust server) against "
                                                       "one 3-node NATS cluster: files/s per host count, ratio, "
                                                       "exactly-once rows")
    parser.add_argument("--files", type=int, default=300, help="distinct files to generate (default 300)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each file (default 20 s)")
    parser.add_argument("--hosts", type=_counts, default=[1, 2], help="host counts to run, in order (default 1,2)")
    parser.add_argument("--analyzers-per-host", type=int, default=1, help="analyzer processes per host (default 1)")
    parser.add_argument("--files-at-once", type=int, default=1,
                        help="files each analyzer takes at once, and its host's Rust server analyses at once: a "
                             "simulated host's share of this machine's cores (default 1)")
    parser.add_argument("--db", default=None, help="database URL (PostgreSQL: its tables are dropped before each "
                                                   "run); default: a new SQLite file per run")
    parser.add_argument("--dir", default=None, help="work directory (kept); a library generated there is reused")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up on a run after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.hosts import run as run_benchmark

    return run_benchmark(args)
