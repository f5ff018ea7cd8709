"""``trackprint config [--json] [--data-dir D] [--db URL] [--nats URL]``: the effective settings and their sources.

Every value is shown with where it came from: ``default``, ``file PATH``,
``env VAR`` or ``flag --NAME`` (see ``trackprint/settings.py``); the database
and NATS as every command resolves them (``run.json`` of the data directory
when ``trackprint up`` recorded one). A settings file that cannot be used is
one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from trackprint import settings
from trackprint.config import add_location_arguments, db_with_source, nats_with_source


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="show the effective settings and where each came from")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    add_location_arguments(parser, nats=True)
    parser.set_defaults(func=run)


def _show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run(args: argparse.Namespace) -> int:
    try:
        effective = settings.load().with_flags({"data_dir": (args.data_dir, "--data-dir")})
    except settings.SettingsError as exc:
        print(f"config: {exc}", file=sys.stderr)
        return 2
    report = effective.as_dict()
    db, db_source = db_with_source(args)
    nats, nats_source = nats_with_source(args)
    report["settings"]["database"] = {"value": db, "source": db_source}
    report["settings"]["nats"] = {"value": nats, "source": nats_source}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    where = "" if effective.found else " (not found: defaults, environment and flags only)"
    print(f"settings file  {effective.path}{where}")
    width = max(len(name) for name in report["settings"])
    for name, entry in report["settings"].items():
        print(f"{name:<{width}}  {_show(entry['value'])}  [{entry['source']}]")
    return 0
