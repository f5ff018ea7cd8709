"""``trackprint playlist SEED [--length N] [--max-tempo-step BPM] [--max-loudness-step LU]``: a smooth playlist.

From the seed (a fingerprinted track of the library), each next track is the
unused one nearest to the previous (the ``similar`` distance) among those
within the tempo and loudness steps; no track twice; it stops early when no
track is left within the limits. See :func:`trackprint.search.smooth_playlist`.
Output as ``query``'s: a table, ``--json``, ``--paths`` or ``--m3u8 FILE``.
"""

from __future__ import annotations

import argparse
import sys

from trackprint.argtypes import positive_float, positive_int
from trackprint.listing import add_output_arguments, cache_dir, emit
from trackprint.config import add_location_arguments, resolve_db


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "playlist", help="a smooth continuous playlist from a seed track",
        epilog="exit status: 0 ok; 1 nothing here yet, or SEED is not a fingerprinted track of the library; "
               "2 usage error")
    parser.add_argument("seed", metavar="SEED", help="the first track (a path in the library)")
    parser.add_argument("--length", type=positive_int, default=20, help="tracks, the seed included (default 20)")
    parser.add_argument("--max-tempo-step", type=positive_float, default=None, metavar="BPM",
                        help="at most this tempo change from one track to the next")
    parser.add_argument("--max-loudness-step", type=positive_float, default=None, metavar="LU",
                        help="at most this loudness (LUFS) change from one track to the next")
    add_output_arguments(parser)
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.search import NothingToCompare, SeedNotFound, smooth_playlist
    from trackprint.status import unreadable

    db_url = resolve_db(args)
    try:
        chain = smooth_playlist(db_url, args.seed, args.length, max_tempo_step=args.max_tempo_step,
                                max_loudness_step=args.max_loudness_step, cache_dir=cache_dir(args))
    except (NothingToCompare, SeedNotFound) as exc:
        print(f"playlist: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"playlist: {problem}", file=sys.stderr)
        return 1
    if len(chain) < args.length:
        print(f"playlist: {len(chain)} of {args.length} tracks: no unused track left within the limits",
              file=sys.stderr)
    heading = f"playlist from {args.seed}: {len(chain)} tracks; dist = distance to the previous track"
    return emit([m.track for m in chain], args, distances=[m.distance for m in chain], heading=heading,
                what="playlist")
