"""The wheel: ``pip wheel .`` from the source tree is a platform wheel that carries the Rust server.

Built once per module the way a user's ``pip install .`` / ``pipx install .`` builds it:
build isolation (setuptools and setuptools-rust from the package index, or pip's cache),
in-tree, so cargo reuses rust-server/target (`make test` has built it already: a few
seconds; a cold target dir is a full release build, several minutes on two cores).

Then the wheel is installed into a fresh venv (its dependencies come from the test
venv's site-packages through a .pth file, so nothing is downloaded) and that venv's
``trackprint analyze --engine auto`` fingerprints a FLAC with ``engine: rust``, with a
PATH of only the fresh venv's bin/ and the system's, so the server can only be the wheel's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.audio import SR, sine, stereo, write_audio

ROOT = Path(__file__).resolve().parent.parent
SERVER = "trackprint-server"
# where each installed package's sources live in the tree (pyproject.toml's package-dir)
FOLDERS = {"trackprint": "trackprint", "trackprint/watcher": "watcher", "trackprint/analyzer": "analyzer",
           "trackprint/pyengine": "pyengine", "trackprint/persister": "persister"}
BUILD_TIMEOUT_S = 1800  # a cold cargo release build on two shared cores takes ~10 minutes

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    (found,) = out.glob("trackprint-*.whl")
    return found


def _source_of(name: str) -> Path | None:
    """The tree's file that the wheel's ``trackprint/...`` file ``name`` was copied from."""
    for prefix in sorted(FOLDERS, key=len, reverse=True):
        if name.startswith(prefix + "/"):
            return ROOT / FOLDERS[prefix] / name[len(prefix) + 1:]
    return None


def test_the_wheel_is_a_platform_wheel_with_the_server_the_license_and_one_package(wheel):
    # a platform tag, not py3-none-any: the server is a native binary
    assert not wheel.name.endswith("-any.whl"), wheel.name
    assert re.search(r"-(cp3\d+-cp3\d+|py3-none)-linux_\w+\.whl$", wheel.name), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        names = set(infos)
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        data = dist_info.removesuffix(".dist-info") + ".data"

        # the server, in the scripts folder (installed into the venv's bin/), executable, an ELF binary
        server = f"{data}/scripts/{SERVER}"
        assert server in names, sorted(n for n in names if not n.startswith("trackprint/"))
        assert zf.read(server)[:4] == b"\x7fELF"
        assert infos[server].file_size > 1_000_000
        assert (infos[server].external_attr >> 16) & stat.S_IXUSR

        # the license, named in the metadata
        license_text = zf.read(f"{dist_info}/licenses/LICENSE").decode()
        assert license_text.startswith("MIT License")
        assert "Copyright (c) 2026 the trackprint authors" in license_text
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
        assert zf.read(f"{dist_info}/WHEEL").decode().count("Root-Is-Purelib: false") == 1

        # one top-level package: no generic `watcher`, `analyzer`, `persister`, `pyengine`
        # (and beets' plugin namespace, beetsplug/trackprint.py, which beets looks for by that name)
        assert {n.split("/")[0] for n in names} == {"trackprint", "beetsplug", dist_info, data}
        assert sorted(zf.read(f"{dist_info}/top_level.txt").decode().split()) == ["beetsplug", "trackprint"]
        assert {n for n in names if n.startswith(data + "/")} == {server}

    # every module comes from the tree (nothing stale from an old build/), and every stage ships
    modules = {n for n in names if n.startswith("trackprint/") and n.endswith(".py")}
    stale = [n for n in modules if not (_source_of(n) and _source_of(n).is_file())]
    assert not stale, f"modules in the wheel but not in the tree (a stale build/ folder? rm -rf build): {stale}"
    for name in ("trackprint/cli.py", "trackprint/binaries.py", "trackprint/watcher/service.py",
                 "trackprint/analyzer/engines.py", "trackprint/pyengine/engine.py", "trackprint/persister/store.py",
                 "trackprint/persister/migrations/env.py", "trackprint/persister/migrations/versions/0001_initial.py"):
        assert name in modules, name


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv with only the wheel installed; the dependencies are the test venv's (a .pth file)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    Path(purelib, "_test_venv_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout[-4000:] + installed.stderr[-4000:]
    return venv


def _isolated_env(venv: Path, home: Path) -> dict[str, str]:
    """Only the fresh venv's bin/ and the system's on PATH; no settings or overrides from this machine."""
    home.mkdir(exist_ok=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CACHE_HOME": str(home / "cache")}
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def test_the_installed_wheel_analyses_with_its_own_rust_server(wheel, fresh_venv, tmp_path):
    bin_dir = fresh_venv / "bin"
    server = bin_dir / SERVER
    assert server.is_file() and os.access(server, os.X_OK), sorted(p.name for p in bin_dir.iterdir())
    with zipfile.ZipFile(wheel) as zf:
        packed = next(zf.read(n) for n in zf.namelist() if n.endswith(f".data/scripts/{SERVER}"))
    assert hashlib.sha256(server.read_bytes()).digest() == hashlib.sha256(packed).digest()

    env = _isolated_env(fresh_venv, tmp_path / "home")
    # the installed package, not the tree; and it finds the wheel's server
    probe = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import json, trackprint, trackprint.watcher, trackprint.binaries as b;"
         "print(json.dumps([trackprint.__file__, trackprint.watcher.__file__, b.rust_server_binary()]))"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert probe.returncode == 0, probe.stderr
    package, stage, binary = json.loads(probe.stdout)
    assert Path(package).is_relative_to(fresh_venv) and Path(stage).is_relative_to(fresh_venv), (package, stage)
    assert Path(binary) == server.resolve() or Path(binary) == server, binary

    track = write_audio(tmp_path / "tone.flac", stereo(sine(440.0, 3.0)), SR)
    out = subprocess.run([str(bin_dir / "trackprint"), "analyze", "--engine", "auto", "--json", str(track)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (result,) = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert result["ok"] and result["engine"] == "rust", (result, out.stderr)
    assert "fallback_reason" not in result, result
