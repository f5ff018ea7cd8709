"""``trackprint bench``: see :mod:`trackprint.benchmarks.engines` for what is measured and how."""

from __future__ import annotations

import argparse

from trackprint.benchmarks.engines import ENGINES


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="time decode-only vs the engines (and bliss-audio) on a folder of audio")
    parser.add_argument("dir", metavar="DIR", help="folder of audio files, any mix of formats (searched recursively)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes per engine (default 2)")
    parser.add_argument("--limit", type=int, default=0, help="use at most N files (default all)")
    parser.add_argument("--engines", default=None,
                        help=f"comma-separated columns of {','.join(e.name for e in ENGINES)} "
                             "(default: all; bliss only when bliss-audio is installed: pip install 'trackprint[bench]')")
    parser.add_argument("--long-file", action="store_true",
                        help="also analyse a synthesised 2-hour FLAC in a subprocess and report its peak RSS; with the "
                             "rust column, the same 2 hours as FLAC, Opus and AAC on a fresh server (peak RSS each)")
    parser.add_argument("--long-file-path", default=None,
                        help="where to keep the 2-hour FLAC (default: the temp folder; reused when present)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat every engine this many times, alternating the order, and report medians "
                             "(the machines are shared and noisy; default 3)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.engines import run as run_benchmark

    return run_benchmark(args)
