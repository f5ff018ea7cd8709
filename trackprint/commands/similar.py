"""``trackprint similar PATH [-k 10] [--json]``: the tracks that sound most like PATH.

Distance: see :mod:`trackprint.similarity` (robust z-scores per dimension,
root-mean-square difference); the search itself: :mod:`trackprint.search`.
"""

from __future__ import annotations

import argparse
import json
import sys

from trackprint.config import add_location_arguments, resolve_db


def register(subparsers) -> None:
    parser = subparsers.add_parser("similar", help="nearest tracks by fingerprint")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("-k", type=int, default=10, help="how many (default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.errors import AnalysisError
    from trackprint.search import NothingToCompare, similar_tracks

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
        print(f"similar: cannot read the database {db_url}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for match in found.matches:
            print(json.dumps({"path": match.path, "distance": round(match.distance, 4)}))
    else:
        print(f"tracks most like {args.path} ({found.origin}); distance 0 = identical, ~1 = one typical spread apart")
        for match in found.matches:
            print(f"{match.distance:8.3f}  {match.path}")
    return 0
