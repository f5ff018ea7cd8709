"""``trackprint query EXPR``: find tracks by fingerprint ranges and tags (the language: :mod:`trackprint.query`).

Output: a table (default), ``--json`` (one object per line: path, state, the
tags, the 25 values), ``--paths`` (one path per line), or ``--m3u8 FILE``
(paths relative to ``--base``, default the playlist's folder; see
:mod:`trackprint.playlists`); the output helpers are :mod:`trackprint.listing`,
shared with ``similar`` and ``playlist``.
"""

from __future__ import annotations

import argparse
import sys

from trackprint.argtypes import positive_int
from trackprint.config import add_location_arguments, resolve_db
from trackprint.listing import add_output_arguments, emit


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "query", help="find tracks by fingerprint ranges and tags",
        description="EXPR: words that must all hold: name:LO..HI (a fingerprint value or year/track/disc/duration "
                    "in a range; LO.. or ..HI open), field:text (artist, album_artist, album, title, genre, path, "
                    "mb_*_id contain text, ignoring case), a bare word (artist, album, title or path contains it), "
                    "-TERM (not), ',' or OR (either side), sort:name+ / sort:name-. Example: "
                    "trackprint query 'genre:jazz tempo_bpm:120..130 lufs:-12.. sort:tempo_bpm-'",
        epilog="exit status: 0 ok (also when nothing matches); 1 nothing here yet (no database); 2 usage error "
               "(a malformed EXPR names the word)")
    parser.add_argument("expression", metavar="EXPR", nargs="*", help="the query (several words are joined)")
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N tracks")
    parser.add_argument("--sort", default=None, metavar="FIELD[+|-]", help="sort by FIELD (overrides sort: words)")
    add_output_arguments(parser)
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.query import QueryError, find
    from trackprint.status import unreadable

    db_url = resolve_db(args)
    expression = " ".join(args.expression)
    try:
        tracks = find(db_url, expression, sort=args.sort, limit=args.limit)
    except QueryError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"query: {problem}", file=sys.stderr)
        return 1
    if not tracks:
        print(f"query: no track matches {expression!r}", file=sys.stderr)
    return emit(tracks, args, what="query")
