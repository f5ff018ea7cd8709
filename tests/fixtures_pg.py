"""A real PostgreSQL for tests (Debian's package), plus a ``db_url`` fixture over SQLite and PostgreSQL.

- ``pg_server`` (session): finds ``initdb``/``pg_ctl`` (``/usr/lib/postgresql/*/bin`` or PATH);
  when absent, installs Debian's ``postgresql`` package with apt-get (the tests run as root on
  Debian 12) and fails loudly with apt's output when that fails. ``initdb`` runs as the
  ``postgres`` system user (created if missing) into a temp dir; the server listens on a free
  127.0.0.1 port with its unix socket in the temp dir, durability off (tests only), and is
  stopped at session end. :class:`PgServer` has ``stop()``/``start()`` for fault tests
  ("PostgreSQL stopped and started during a run"), ``create_database()`` and ``url(db)``.
- ``db_url`` (function, parametrized ``sqlite``/``postgresql``): a SQLite file in ``tmp_path``,
  or a fresh PostgreSQL database ``test_<n>`` dropped afterwards. Tests that take ``db_url``
  run on both.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from trackprint.binaries import free_port

_counter = itertools.count(1)


def _pg_bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")) and os.path.exists(os.path.join(candidate, "pg_ctl")):
            return candidate
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return os.path.dirname(os.path.realpath(pg_ctl))
    return None


def _run(cmd: list[str], *, what: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd)}), exit {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def ensure_postgres_installed() -> str:
    """Directory with initdb/pg_ctl/postgres; installs Debian's postgresql package when missing."""
    bindir = _pg_bindir()
    if bindir:
        return bindir
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL is not installed and the tests are not root: apt-get install postgresql")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update"], what="apt-get update", env=env)
    _run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], what="apt-get install postgresql", env=env)
    bindir = _pg_bindir()
    if not bindir:
        raise RuntimeError("apt-get installed postgresql but no initdb/pg_ctl was found under /usr/lib/postgresql")
    return bindir


def _ensure_postgres_user() -> None:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres"],
             what="useradd postgres")


class PgServer:
    """One PostgreSQL cluster in a temp dir, on 127.0.0.1:<port>, superuser ``postgres`` (trust auth)."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        self.base = tempfile.mkdtemp(prefix="trackprint-pg-")
        os.chmod(self.base, 0o755)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "postgres.log")
        os.makedirs(self.sockdir)
        if self.as_postgres:
            _ensure_postgres_user()
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        self.port = free_port()
        self._initdb()

    def _cmd(self, *args: str) -> list[str]:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else cmd

    def _initdb(self) -> None:
        _run(self._cmd("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                       "--locale=C.UTF-8", "--no-sync"), what="initdb", timeout=120)

    def start(self, timeout: float = 60) -> None:
        opts = (f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        _run(self._cmd("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-o", opts, "-w", "-t", str(int(timeout)),
                       "start"), what="pg_ctl start", timeout=timeout + 10)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash-like stop)."""
        _run(self._cmd("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", str(int(timeout)), "stop"),
             what="pg_ctl stop", timeout=timeout + 10)

    def is_running(self) -> bool:
        return subprocess.run(self._cmd("pg_ctl", "-D", self.datadir, "status"), capture_output=True).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"test_{os.getpid()}_{next(_counter)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.logfile, errors="replace") as fh:
                return fh.read()[-n:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        try:
            if self.is_running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """A running PostgreSQL for the whole session (installed with apt-get when missing)."""
    server = PgServer(ensure_postgres_installed())
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty PostgreSQL database; dropped afterwards. The server is restarted if a test left it down."""
    if not pg_server.is_running():
        pg_server.start()
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        if not pg_server.is_running():
            pg_server.start()
        pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A database URL on each backend: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trackprint.db'}"
    else:
        yield request.getfixturevalue("pg_url")
