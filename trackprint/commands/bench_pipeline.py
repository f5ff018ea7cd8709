"""``trackprint bench-pipeline``: see :mod:`trackprint.benchmarks.pipeline` for what is measured and how."""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench-pipeline", help="end-to-end throughput and latency on a music folder")
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--limit", type=int, default=40, help="files in the backlog (default 40)")
    parser.add_argument("--analyzers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--trickle", type=int, default=8, help="files added one by one for latency (default 8)")
    parser.add_argument("--gap-s", type=float, default=4.0, help="seconds between trickled files (default 4)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.pipeline import run as run_benchmark

    return run_benchmark(args)
