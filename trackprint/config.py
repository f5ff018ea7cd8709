"""Where things are: resolving ``--db`` / ``--nats`` / ``--data-dir`` the same way in every command.

Each is the flag, else the setting from the environment or the settings file
(:mod:`trackprint.settings`), else what ``trackprint up`` recorded in the data
directory's run.json, else the default.
"""

from __future__ import annotations

import json
from pathlib import Path

from trackprint import binaries, settings


def add_location_arguments(parser, *, nats: bool = False) -> None:
    parser.add_argument("--db", default=None, help="database URL (default: the data directory's SQLite)")
    parser.add_argument("--data-dir", default=None, help=f"data directory of `trackprint up` (default {binaries.data_dir_default()})")
    if nats:
        parser.add_argument("--nats", default=None, help="NATS URL(s), comma-separated (default: the data directory's)")


def data_dir(given: str | None) -> Path:
    """``--data-dir``, else the ``data_dir`` setting (its default: the per-user data folder)."""
    return Path(given).expanduser() if given else Path(settings.current().data_dir)


def run_state(given: str | None) -> dict:
    """What ``trackprint up`` recorded in DATA/run.json (empty when it never ran there)."""
    try:
        return json.loads((data_dir(given) / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def db_with_source(args) -> tuple[str, str]:
    """The database URL and where it came from (flag, env, file, run.json, default)."""
    if getattr(args, "db", None):
        return args.db, "flag --db"
    current = settings.current()
    if current.database:
        return current.database, current.source("database")
    state = run_state(getattr(args, "data_dir", None))
    if state.get("db"):  # the data directory's own SQLite, named relative to it
        return f"sqlite:///{data_dir(getattr(args, 'data_dir', None)) / state['db']}", \
            f"run.json of {data_dir(getattr(args, 'data_dir', None))}"
    if state.get("db_url"):
        return state["db_url"], f"run.json of {data_dir(getattr(args, 'data_dir', None))}"
    return f"sqlite:///{data_dir(getattr(args, 'data_dir', None)) / 'trackprint.db'}", "default (data_dir)"


def resolve_db(args) -> str:
    return db_with_source(args)[0]


def nats_with_source(args) -> tuple[str | None, str]:
    """The NATS URL(s) and where they came from (None: nothing known)."""
    if getattr(args, "nats", None):
        return args.nats, "flag --nats"
    current = settings.current()
    if current.nats:
        return current.nats, current.source("nats")
    url = run_state(getattr(args, "data_dir", None)).get("nats_url")
    if url:
        return url, f"run.json of {data_dir(getattr(args, 'data_dir', None))}"
    return None, "default (the embedded nats-server of `trackprint up`)"


def resolve_nats(args) -> str | None:
    return nats_with_source(args)[0]


DEFAULT_SERVICE_NATS = "nats://127.0.0.1:4222"


def service_nats(given: str | None) -> str:
    """The bus of a standalone service (watcher, analyzer, persister): ``--nats``, else the ``nats``
    setting (``$TRACKPRINT_NATS`` or the settings file), else a local nats-server's default port."""
    return given or settings.current().nats or DEFAULT_SERVICE_NATS
