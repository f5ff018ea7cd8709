"""``trackprint bench-scale N``: see :mod:`trackprint.benchmarks.scale` for what is measured and how."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench-scale", help="the whole pipeline on N generated short files: CPU per file "
                                                       "per stage, files/s, memory, sizes, restart and stop cost")
    parser.add_argument("files", type=int, metavar="N", help="distinct 2-s FLAC files to generate")
    parser.add_argument("--folders-of", type=int, default=10, help="files per album folder (default 10)")
    parser.add_argument("--dir", default=None, help="work directory (default: a new one in the temp folder); a "
                                                    "library already generated there for the same N is reused")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (library, data, logs)")
    parser.add_argument("--analyzers", type=int, default=None, help="analyzer processes (default: up's default)")
    parser.add_argument("--stop-test-files", type=int, default=None,
                        help="files added for the stop test (default N/10, at least 500; 0: no stop test)")
    parser.add_argument("--second-pass", action=argparse.BooleanOptionalAction, default=True,
                        help="touch every file and run again: the store after two full passes against one "
                             "(default on)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.scale import run as run_benchmark

    return run_benchmark(args)
