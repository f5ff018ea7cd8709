"""``trackprint similar PATH... [--query EXPR] [-k 10] [--exclude-seed-albums]``: the tracks that sound most like
the seeds.

Distance: see :mod:`trackprint.similarity` (robust z-scores per dimension,
equal weight per feature group, root-mean-square difference, a missing tempo
left out; several seeds: the root mean square of the distances to each); the search and its cached matrix: :mod:`trackprint.search`.
Output as ``query``'s: a table, ``--json``, ``--paths`` or ``--m3u8 FILE``.
"""

from __future__ import annotations

import argparse
import sys

from trackprint.argtypes import positive_int
from trackprint.listing import add_output_arguments, cache_dir, emit
from trackprint.config import add_location_arguments, resolve_db


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "similar", help="nearest tracks by fingerprint",
        epilog="exit status: 0 ok; 1 nothing to compare with (on a fresh machine: \"nothing here yet: run "
               "`trackprint up LIBRARY`\"), no seed, or a seed cannot be analysed; 2 usage error")
    parser.add_argument("path", metavar="PATH", nargs="*", help="seed tracks (a path outside the library is analysed)")
    parser.add_argument("--query", metavar="EXPR", default=None,
                        help="the tracks matching EXPR (trackprint query's language) are seeds too")
    parser.add_argument("-k", type=positive_int, default=10, help="how many (1 or more, default 10)")
    parser.add_argument("--exclude-seed-albums", action="store_true",
                        help="leave out the tracks of the seeds' albums (same MusicBrainz release, or same album "
                             "and album artist)")
    add_output_arguments(parser)
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.errors import AnalysisError
    from trackprint.query import QueryError, find
    from trackprint.search import NothingToCompare, SeedNotFound, similar_to
    from trackprint.status import unreadable

    db_url = resolve_db(args)
    if not args.path and args.query is None:
        print("similar: give a seed: PATH... or --query EXPR", file=sys.stderr)
        return 2
    try:
        seeds = list(args.path)
        if args.query is not None:
            seeds += [t["path"] for t in find(db_url, args.query)]
            if not seeds:
                print(f"similar: no track matches {args.query!r}: no seed", file=sys.stderr)
                return 1
        found = similar_to(db_url, seeds, args.k, exclude_seed_albums=args.exclude_seed_albums,
                           cache_dir=cache_dir(args))
    except QueryError as exc:
        print(f"similar: {exc}", file=sys.stderr)
        return 2
    except (NothingToCompare, SeedNotFound, AnalysisError) as exc:
        print(f"similar: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"similar: {problem}", file=sys.stderr)
        return 1
    if len(seeds) == 1:
        heading = f"tracks most like {seeds[0]} ({found.origin}); distance 0 = identical, ~1 = one typical spread apart"
    else:
        heading = (f"tracks most like {len(seeds)} seeds ({found.origin}); distance: root mean square over the "
                   f"seeds, 0 = identical, ~1 = one typical spread apart")
    return emit([m.track for m in found.matches], args, distances=[m.distance for m in found.matches],
                heading=heading, what="similar")
