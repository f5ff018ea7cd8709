"""``trackprint similar PATH [-k 10] [--json]``: the tracks that sound most like PATH.

Distance: see :mod:`trackprint.similarity` (robust z-scores per dimension,
root-mean-square difference). Only current-version fingerprints are compared
(a stale row would mix two definitions). A PATH that is not in the library is
analysed on the spot (the engine choice of ``trackprint analyze``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from trackprint.analyzer.engines import analyse_one
from trackprint.config import add_location_arguments, resolve_db
from trackprint.fingerprint import DIMENSIONS
from trackprint.errors import describe
from trackprint.paths import canonical
from trackprint.similarity import nearest


def register(subparsers) -> None:
    parser = subparsers.add_parser("similar", help="nearest tracks by fingerprint")
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("-k", type=int, default=10, help="how many (default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.library import iter_fingerprints

    db_url = resolve_db(args)
    try:
        rows = list(iter_fingerprints(db_url, include_stale=False))
    except Exception as exc:
        print(f"similar: cannot read the database {db_url}: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"similar: no current fingerprints in {db_url}", file=sys.stderr)
        return 1
    library = np.array([[row[d] for d in DIMENSIONS] for row in rows])
    target = canonical(args.path)
    index = next((i for i, row in enumerate(rows) if row["path"] in (args.path, target)), None)
    if index is not None:
        query = library[index]
        origin = "library"
    else:
        outcome = analyse_one(target if os.path.exists(target) else args.path)
        if outcome.error is not None:
            e = outcome.error
            print(f"similar: {describe(outcome.path, e.stage, e.code, e.message)}", file=sys.stderr)
            return 1
        query = np.array([getattr(outcome.fingerprint, d) for d in DIMENSIONS])
        origin = "analysed now (not in the library)"
    matches = nearest(library, query, args.k, exclude=index)
    if args.json:
        for i, distance in matches:
            print(json.dumps({"path": rows[i]["path"], "distance": round(distance, 4)}))
    else:
        print(f"tracks most like {args.path} ({origin}); distance 0 = identical, ~1 = one typical spread apart")
        for i, distance in matches:
            print(f"{distance:8.3f}  {rows[i]['path']}")
    return 0
