"""``trackprint eval-tempo``: see :mod:`trackprint.benchmarks.evaluation.tempo_sets`."""

from __future__ import annotations

import argparse

from trackprint.argtypes import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-tempo",
        help="tempo agreement with Essentia on held-out music (Debian packages the estimator never saw), "
             "next to Essentia degara, with the paired difference's McNemar p")
    parser.add_argument("dir", nargs="?", default="corpus-tempo", metavar="DIR",
                        help="where the held-out sets are built (one folder per set) and reused (default corpus-tempo)")
    parser.add_argument("--sets", default="", help="comma-separated sets (default all: held-out-1, held-out-2)")
    parser.add_argument("--engine", choices=("auto", "rust", "python"), default="auto",
                        help="the engine computing tempo_bpm (default: rust when its server is built)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="files analysed at once (default 2)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.evaluation.tempo_sets import run as run_tempo_sets

    return run_tempo_sets(args)
