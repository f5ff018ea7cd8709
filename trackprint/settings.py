"""Settings: one TOML file, read by every command and service, each value remembering where it came from.

Layers, later ones win: built-in defaults < the settings file < the
environment (the ``TRACKPRINT_*`` variables) < command-line flags. The file is
``$TRACKPRINT_CONFIG`` when set, else ``$XDG_CONFIG_HOME/trackprint/config.toml``
(``~/.config/trackprint/config.toml``); a missing default file means defaults.
``trackprint config`` prints the effective values and the source of each.

An unknown key, a wrong type or a file that is not TOML is one line naming
the file and the key (:class:`SettingsError`; :func:`current` turns it into
exit status 2), never a traceback and never silently ignored.

Example::

    library = ["~/Music", "/mnt/nas/music"]
    database = "postgresql+psycopg://trackprint@db.local/trackprint"   # default: SQLite in data_dir
    data_dir = "~/.local/share/trackprint"
    excludes = ["Podcasts", "*.part", "Audiobooks/*"]
    exclude_marker = ".trackprintignore"
    poll = false
    analyzers = 2

    [ports]
    nats = 4222      # the embedded nats-server of `trackprint up` (0: any free port)
    server = 7878    # its Rust server (0: any free port)
    web = 8765       # the web page and HTTP API of `up` and `serve` (0: `up` serves none)
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

CONFIG_ENV = "TRACKPRINT_CONFIG"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A settings file or variable that cannot be used; the message is one line naming where and which key."""


def _data_dir_default() -> str:
    from trackprint.binaries import data_dir_default

    return str(data_dir_default())


@dataclass(frozen=True)
class Key:
    name: str  # as written in the file; "ports.nats" is `nats` in the [ports] table
    kind: str  # paths | path | text | globs | name | bool | count | port
    default: Any  # a value, or a callable giving it
    env: str | None
    help: str


KEYS: tuple[Key, ...] = (
    Key("library", "paths", (), "TRACKPRINT_LIBRARY",
        "library roots (the environment separates them with ':')"),
    Key("database", "text", None, "TRACKPRINT_DB", "database URL (unset: SQLite in data_dir)"),
    Key("data_dir", "path", _data_dir_default, "TRACKPRINT_DATA_DIR",
        "data directory of `trackprint up` (streams, database, logs)"),
    Key("nats", "text", None, "TRACKPRINT_NATS", "NATS URL(s), comma-separated (unset: `up` embeds its own)"),
    Key("excludes", "globs", (), None,
        "globs never looked at: a name anywhere (Podcasts, *.part), a path below the root (Audiobooks/*)"),
    Key("default_excludes", "bool", True, None,
        "also exclude hidden names, ._*, .Trash*, @eaDir, lost+found, $RECYCLE.BIN, System Volume Information"),
    Key("exclude_marker", "name", ".trackprintignore", None,
        "a folder holding a file of this name is excluded with everything below (empty: no marker)"),
    Key("poll", "bool", False, None, "the watcher polls instead of inotify (network shares)"),
    # one process analysing a file per core at once costs less CPU per file than one process per core
    # (bench-scale, 5,000 files: 5.1-5.6 against 6.4-6.6 ms in all; the bus round trips of its files share
    # wake-ups and writes); the Python engine's pool has a worker per core either way
    Key("analyzers", "count", 1, None, "analyzer processes of `trackprint up`; together they analyse one "
        "file per core at once (default 1)"),
    Key("allow_symlinks_outside", "bool", False, "TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE",
        "follow symlinks that lead out of the library"),
    Key("ports.nats", "port", 0, None, "port of the embedded nats-server of `up` (0: any free port)"),
    Key("ports.server", "port", 0, None, "port of the Rust server of `up` (0: any free port)"),
    Key("ports.web", "port", 8765, None, "port of the web page and HTTP API of `up` and `serve` (0: off in `up`)"),
)
BY_NAME = {k.name: k for k in KEYS}
TABLES = {"ports"}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "default", "file PATH", "env VAR" or "flag --NAME"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the settings file is looked for (whether or not it exists)."""
    environ = os.environ if environ is None else environ
    given = environ.get(CONFIG_ENV)
    if given:
        return Path(given).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "trackprint" / "config.toml"


# -- checking one value -----------------------------------------------------------------------------
def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _convert(key: Key, value: Any, base: Path | None) -> Any:
    """The value of ``key`` from the file (``base``: its folder) or a flag; raises ValueError("expected ...")."""
    def path(text: Any) -> str:
        if not isinstance(text, str) or not text:
            raise ValueError(f"expected a path (a non-empty string), got {_type_name(text)} {text!r}")
        expanded = Path(text).expanduser()
        if not expanded.is_absolute() and base is not None:
            expanded = base / expanded
        return os.path.normpath(os.path.abspath(expanded))

    kind = key.kind
    if kind == "paths":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"expected a list of paths, got {_type_name(value)} {value!r}")
        return tuple(path(item) for item in items)
    if kind == "path":
        return path(value)
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)} {value!r}")
        return value or None
    if kind == "globs":
        if not isinstance(value, (list, tuple)) or not all(isinstance(g, str) and g for g in value):
            raise ValueError(f"expected a list of glob strings, got {_type_name(value)} {value!r}")
        return tuple(value)
    if kind == "name":
        if not isinstance(value, str) or "/" in value or value in (".", ".."):
            raise ValueError(f"expected a file name (no '/'; empty for none), got {_type_name(value)} {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)} {value!r}")
        return value
    if kind in ("count", "port"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_type_name(value)} {value!r}")
        if kind == "count" and value < 1:
            raise ValueError(f"expected an integer >= 1, got {value}")
        if kind == "port" and not 0 <= value <= 65535:
            raise ValueError(f"expected a port number 0..65535 (0: any free port), got {value}")
        return value
    raise AssertionError(kind)


def _from_env(key: Key, text: str) -> Any:
    if key.kind == "paths":
        return _convert(key, [p for p in text.split(os.pathsep) if p], None)
    if key.kind == "bool":
        if text.strip().lower() in TRUE:
            return True
        if text.strip().lower() in FALSE:
            return False
        raise ValueError(f"expected a boolean ({'/'.join(TRUE)} or {'/'.join(FALSE)}), got {text!r}")
    if key.kind in ("count", "port"):
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        return _convert(key, number, None)
    return _convert(key, text, None)


# -- the layers -------------------------------------------------------------------------------------
def _read_file(path: Path) -> dict[str, Any]:
    """The flat ``{key: value}`` of the file (tables flattened to ``table.key``); raises SettingsError."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings file: {exc.strerror or exc}") from None
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if name in TABLES:
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: key {name!r}: expected a table ([{name}]), got {_type_name(value)}")
            for sub, subvalue in value.items():
                flat[f"{name}.{sub}"] = subvalue
        else:
            flat[name] = value
    for name in flat:
        if name not in BY_NAME:
            known = ", ".join(k.name for k in KEYS)
            raise SettingsError(f"{path}: unknown key {name!r} (known keys: {known})")
    return flat


class Settings:
    """The effective settings: ``settings.poll``, ``settings.get("ports.nats")``, ``settings.source("poll")``."""

    def __init__(self, path: Path, found: bool, values: Mapping[str, Setting]):
        self.path = path
        self.found = found
        self.values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name].value
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str) -> Any:
        return self.values[name].value

    def source(self, name: str) -> str:
        return self.values[name].source

    def is_default(self, name: str) -> bool:
        return self.values[name].source == "default"

    def with_flags(self, flags: Mapping[str, tuple[Any, str]]) -> "Settings":
        """These settings with command-line flags on top: ``{key: (value, "--flag")}``; a None value is no flag.
        Raises SettingsError for a flag of the wrong type."""
        values = dict(self.values)
        for name, (value, flag) in flags.items():
            if value is None:
                continue
            try:
                values[name] = Setting(_convert(BY_NAME[name], value, Path.cwd()), f"flag {flag}")
            except ValueError as exc:
                raise SettingsError(f"{flag}: {exc}") from None
        return Settings(self.path, self.found, values)

    def as_dict(self) -> dict:
        """{"file", "file_found", "settings": {key: {"value", "source"}}} (for ``trackprint config --json``)."""
        return {"file": str(self.path), "file_found": self.found,
                "settings": {name: {"value": list(s.value) if isinstance(s.value, tuple) else s.value,
                                    "source": s.source} for name, s in self.values.items()}}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < file < environment. Raises SettingsError (one line) for anything unusable."""
    environ = os.environ if environ is None else environ
    if path is None:
        given = environ.get(CONFIG_ENV)
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise SettingsError(f"{path}: no such settings file (named by ${CONFIG_ENV})")
        else:
            path = config_path(environ)
    found = path.exists()
    in_file = _read_file(path) if found else {}
    values: dict[str, Setting] = {}
    for key in KEYS:
        default = key.default() if callable(key.default) else key.default
        values[key.name] = Setting(default, "default")
        if key.name in in_file:
            try:
                values[key.name] = Setting(_convert(key, in_file[key.name], path.parent.resolve()), f"file {path}")
            except ValueError as exc:
                raise SettingsError(f"{path}: key {key.name!r}: {exc}") from None
        if key.env and environ.get(key.env):
            try:
                values[key.name] = Setting(_from_env(key, environ[key.env]), f"env {key.env}")
            except ValueError as exc:
                raise SettingsError(f"environment {key.env} (setting {key.name!r}): {exc}") from None
    return Settings(path, found, values)


_cache: dict[tuple, Settings] = {}


def _cache_key() -> tuple:
    path = config_path()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    env = tuple(os.environ.get(k.env, "") for k in KEYS if k.env)
    return (str(path), stamp, env, os.environ.get(CONFIG_ENV), os.environ.get("XDG_DATA_HOME"))


def current(exit: Callable[[int], Any] = sys.exit) -> Settings:
    """The settings of this process (re-read when the file or the variables change). A SettingsError is
    printed as one line and the process exits with status 2: every command and service starts with it."""
    key = _cache_key()
    cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        settings = load()
    except SettingsError as exc:
        print(f"trackprint: settings: {exc}", file=sys.stderr, flush=True)
        exit(2)
        raise
    _cache.clear()
    _cache[key] = settings
    return settings
