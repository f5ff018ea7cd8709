"""Opening the database: one spelling of its URL (``--db``) and one engine factory for every reader and writer.

Accepted forms:
- a SQLAlchemy URL: ``sqlite:///path/to/trackprint.db``, ``postgresql+psycopg://user@host/db``;
- ``postgresql://...`` / ``postgres://...`` (rewritten to the psycopg 3 driver);
- a plain file path (``data/trackprint.db``): a SQLite database there.
"""

from __future__ import annotations

import os

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url


def normalize_url(url: str | URL) -> URL:
    """Return the SQLAlchemy URL for ``url`` (see the module docstring for the accepted forms)."""
    if isinstance(url, URL):
        parsed = url
    elif "://" not in str(url):
        return make_url("sqlite:///" + os.path.abspath(os.path.expanduser(str(url))))
    else:
        text = str(url)
        if text.startswith("postgres://"):
            text = "postgresql://" + text[len("postgres://"):]
        parsed = make_url(text)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return parsed


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for log lines."""
    return normalize_url(url).render_as_string(hide_password=True)


class DatabaseMissing(FileNotFoundError):
    """A reader asked for a SQLite database that does not exist (a typo, or `trackprint up` never ran)."""


def make_engine(url: str | URL, *, sqlite_busy_timeout_s: float = 30.0, echo: bool = False,
                application_name: str = "trackprint", must_exist: bool = False) -> Engine:
    """The Engine every part of trackprint uses (the persister writes through it, commands read through it).

    SQLite: WAL (readers never block the writer), busy_timeout, foreign keys,
    synchronous=FULL, and BEGIN IMMEDIATE so a write transaction takes the
    lock at its start. PostgreSQL: psycopg 3, pre-ping, a small pool.
    ``must_exist`` (readers): a missing SQLite file is :class:`DatabaseMissing`,
    never a new empty database.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if must_exist and parsed.database and parsed.database != ":memory:" and not Path(parsed.database).is_file():
            raise DatabaseMissing(f"no database at {parsed.database}")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo, connect_args={"timeout": sqlite_busy_timeout_s})
        busy_ms = int(sqlite_busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": 10, "application_name": application_name},
    )
