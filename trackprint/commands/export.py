"""``trackprint export --format csv|jsonl|parquet [--out FILE]``: the current fingerprints as a file.

One row per active (not tombstoned) track with a fingerprint: path,
fingerprint_version, stale, engine, duration_s, analyzed_at and the 25
dimensions under their spec names. Stale rows (older fingerprint_version) are
included and flagged, never mixed silently; ``--current-only`` drops them.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys

from trackprint.config import add_location_arguments, resolve_db
from trackprint.fingerprint import DIMENSIONS
from trackprint.persister.db import redact

COLUMNS = ["path", "fingerprint_version", "stale", "engine", "duration_s", "analyzed_at", *DIMENSIONS]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write the fingerprints to CSV, JSON lines or Parquet",
        epilog="exit status: 0 ok; 1 the database cannot be read (on a fresh machine: \"nothing here yet: run "
               "`trackprint up LIBRARY`\", nothing written); 2 usage error; 141 the reader closed the output early")
    parser.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    parser.add_argument("--out", default="-", help="output file (default: standard output; required for parquet)")
    parser.add_argument("--current-only", action="store_true", help="leave out stale (older-version) rows")
    add_location_arguments(parser)
    parser.set_defaults(func=run)


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from trackprint.persister.queries import iter_fingerprints
    from trackprint.status import unreadable

    db_url = resolve_db(args)
    if args.format == "parquet" and args.out == "-":
        print("export: --out FILE is required for parquet", file=sys.stderr)
        return 2
    if args.format == "parquet" and not _have_pyarrow():
        print("export: parquet needs pyarrow, which this install leaves out: pip install 'trackprint[export]' "
              "(or use --format csv or jsonl)", file=sys.stderr)
        return 2
    rows = iter_fingerprints(db_url, include_stale=not args.current_only)
    try:
        first = next(rows, None)  # opens the database: no header, no output file, when it cannot be read
    except Exception as exc:
        problem = unreadable(exc, db_url)
        if problem is None:
            raise
        print(f"export: {problem}", file=sys.stderr)
        return 1
    rows = itertools.chain([first] if first is not None else [], rows)
    if args.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        materialised = list(rows)
        table = pa.table({name: [row[name] for row in materialised] for name in COLUMNS})
        pq.write_table(table, args.out)
        count = len(materialised)
    else:
        out = sys.stdout if args.out == "-" else open(args.out, "w", newline="", encoding="utf-8")
        count = 0
        try:
            if args.format == "csv":
                writer = csv.DictWriter(out, fieldnames=COLUMNS)
                writer.writeheader()
                for row in rows:
                    writer.writerow(row)
                    count += 1
            else:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
        finally:
            if out is not sys.stdout:
                out.close()
    print(f"export: {count} fingerprints from {redact(db_url)}", file=sys.stderr)
    return 0
