"""Where things are: resolving ``--db`` / ``--nats`` / ``--data-dir`` the same way in every command."""

from __future__ import annotations

import json
from pathlib import Path

from trackprint import binaries


def add_location_arguments(parser, *, nats: bool = False) -> None:
    parser.add_argument("--db", default=None, help="database URL (default: the data directory's SQLite)")
    parser.add_argument("--data-dir", default=None, help=f"data directory of `trackprint up` (default {binaries.data_dir_default()})")
    if nats:
        parser.add_argument("--nats", default=None, help="NATS URL(s), comma-separated (default: the data directory's)")


def data_dir(given: str | None) -> Path:
    """``--data-dir``, else the per-user default."""
    return Path(given).expanduser() if given else binaries.data_dir_default()


def run_state(given: str | None) -> dict:
    """What ``trackprint up`` recorded in DATA/run.json (empty when it never ran there)."""
    try:
        return json.loads((data_dir(given) / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def resolve_db(args) -> str:
    if getattr(args, "db", None):
        return args.db
    state = run_state(getattr(args, "data_dir", None))
    if state.get("db_url"):
        return state["db_url"]
    return f"sqlite:///{data_dir(getattr(args, 'data_dir', None)) / 'trackprint.db'}"


def resolve_nats(args) -> str | None:
    if getattr(args, "nats", None):
        return args.nats
    return run_state(getattr(args, "data_dir", None)).get("nats_url")
