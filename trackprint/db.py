"""Database URLs: one spelling for every command (``--db``).

Accepted forms:
- a SQLAlchemy URL: ``sqlite:///path/to/trackprint.db``, ``postgresql+psycopg://user@host/db``;
- ``postgresql://...`` / ``postgres://...`` (rewritten to the psycopg 3 driver);
- a plain file path (``data/trackprint.db``): a SQLite database there.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url


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
