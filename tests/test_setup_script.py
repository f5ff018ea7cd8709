"""`make up` (scripts/setup.sh run): installs only what running needs and shows the Rust build as it goes.

The real script runs with every program it calls replaced by a stub that records its arguments (python in
the venv, cargo, pkg-config, cmake, cc, apt-get, the installed trackprint and trackprint-server), so what it
would install and how it builds is seen without a venv or a ten-minute build.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"


def stub(path: Path, log: Path, output: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{path.name} $*" >> "{log}"\n' + (f'echo "{output}"\n' if output else "")
                    + "exit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def run_setup(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log, venv, tools = tmp_path / "calls.log", tmp_path / "venv", tmp_path / "tools"
    log.write_text("")
    for name in ("cargo", "pkg-config", "cmake", "cc", "apt-get", "sudo"):
        stub(tools / name, log)
    stub(venv / "bin" / "python", log)
    stub(venv / "bin" / "trackprint", log, "trackprint 0.0-stub")
    stub(venv / "bin" / "trackprint-server", log, "trackprint-server 0.0-stub")
    env = dict(os.environ, PATH=f"{tools}:/usr/bin:/bin")
    done = subprocess.run(["bash", str(SCRIPT), mode, str(venv)], capture_output=True, text=True, env=env, timeout=60)
    return done, log.read_text().splitlines()


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize("mode, target", [("run", "."), ("test", ".[test,export]")])
def test_run_installs_no_extras_and_the_rust_build_is_shown(tmp_path, mode, target):
    done, calls = run_setup(tmp_path, mode)
    assert done.returncode == 0, done.stdout + done.stderr
    installs = [call.split() for call in calls if call.startswith("python -m pip install") and "--upgrade" not in call]
    assert installs == [["python", "-m", "pip", "install", "--quiet", "-e", target]], calls
    cargo = [call.split() for call in calls if call.startswith("cargo ")]
    # not --quiet: a line per crate; the test install also builds the test-only HE-AAC encoder
    assert cargo == [["cargo", "build", "--release", "--locked"]] * (2 if mode == "test" else 1), calls
    assert "building the Rust analysis server" in done.stdout
    assert calls.index("cargo build --release --locked") < calls.index(f"python -m pip install --quiet -e {target}")
