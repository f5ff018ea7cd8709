"""``trackprint similar PATH [-k 10] [--json]``: the tracks that sound most like PATH.

Distance: see :mod:`trackprint.similarity` (robust z-scores per dimension,
root-mean-square difference); the search itself: :mod:`trackprint.search`.
"""

from __future__ import annotations

import argparse
import json
import sys

from trackprint.argtypes import positive_int
from trackprint.config import add_location_arguments, resolve_db


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "similar", help="nearest tracks by fingerprint",
        epilog="exit status: 0 ok; 1 nothing to compare with (on a fresh machine: \"nothing here yet: run "
               "`trackprint up LIBRARY`\") or PATH cannot be analysed; 2 usage error")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("-k", type=positive_int, default=10, help="how many (1 or more, default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.errors import AnalysisError
    from trackprint.search import NothingToCompare, similar_tracks
    from trackprint.status import unreadable

    db_url = resolve_db(args)
    try:
        found = similar_tracks(db_url, args.path, args.k)
    except NothingToCompare as exc:
        print(f"similar: {exc}", file=sys.stderr)
        return 1
    except AnalysisError as exc:
        print(f"similar: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"similar: {problem}", file=sys.stderr)
        return 1
    if args.json:
        for match in found.matches:
            print(json.dumps({"path": match.path, "distance": round(match.distance, 4)}))
    else:
        print(f"tracks most like {args.path} ({found.origin}); distance 0 = identical, ~1 = one typical spread apart")
        for match in found.matches:
            print(f"{match.distance:8.3f}  {match.path}")
    return 0
