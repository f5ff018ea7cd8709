"""The systemd units of deploy/systemd/ are valid, hardened and keep secrets off the command line.

For every unit file (the multi-host set in deploy/systemd/, the single-host
user unit in deploy/systemd/user/):

- ``systemd-analyze verify`` reports nothing: no unknown key, no bad value, no
  missing dependency, every command path present. ``verify`` checks that each
  command exists, and the product is not installed at /opt/trackprint (or in
  the user's ~/.local/bin) on a test machine, so a system unit is verified
  against a throw-away ``--root`` holding this machine's own systemd units plus
  an empty executable at each command path the unit names, and the user unit
  (``--user`` takes no ``--root``) with ``HOME`` pointing at a folder holding
  ``.local/bin/trackprint``. The unit files themselves are verified unchanged.
- ``systemd-analyze security --offline=true`` rates the exposure at 4.0 or
  below (the units of before this test scored 8.8-9.2).
- No command line (ExecStart= and the other Exec*= lines) carries the database
  URL or a password: ``ps`` shows command lines to every user.

``systemd-analyze`` comes with Debian's ``systemd`` package; when it is missing
it is installed with apt-get the way tests/fixtures_pg.py installs PostgreSQL
(the tests run as root on Debian), and the test fails loudly when that fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
MAX_EXPOSURE = 4.0
SYSTEM_UNITS = ["nats.service", "trackprint-analyzer@.service", "trackprint-persister.service",
                "trackprint-server.service", "trackprint-watcher.service"]
USER_UNITS = ["user/trackprint-up.service"]
SYSTEMD_UNIT_DIRS = ["/usr/lib/systemd/system", "/lib/systemd/system"]
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecCondition", "ExecReload", "ExecStop", "ExecStopPost")


def _run(cmd: list[str], *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def analyze() -> str:
    """Path of systemd-analyze (>= 250, for --offline); installs Debian's systemd package when missing."""
    found = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze" if os.path.exists("/usr/bin/systemd-analyze") else None)
    if not found:
        if os.geteuid() != 0:
            raise RuntimeError("systemd-analyze is not installed and the tests are not root: apt-get install systemd")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "systemd"]):
            proc = _run(cmd, env=env, timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed, exit {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        found = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
        assert os.path.exists(found), "apt-get installed systemd but there is no systemd-analyze"
    version = _run([found, "--version"]).stdout
    number = re.search(r"systemd (\d+)", version)
    assert number and int(number.group(1)) >= 250, f"systemd-analyze security --offline needs systemd 250+: {version!r}"
    return found


def unit_lines(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of every assignment; continuation lines joined, comments dropped."""
    out, section, pending = [], "", ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(path: Path, key: str) -> list[str]:
    return [v for _, k, v in unit_lines(path) if k == key]


def commands(path: Path) -> list[str]:
    return [v for _, k, v in unit_lines(path) if k in EXEC_KEYS and v]


def command_path(command: str) -> str:
    """The executable of an Exec*= value, without the @-:+! prefixes."""
    return command.split()[0].lstrip("@-:+!")


def user_env(tmp_path: Path) -> dict:
    """A user manager's environment for systemd-analyze --user: a runtime dir, and a HOME with the
    command `pipx install trackprint` puts in ~/.local/bin."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    return dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(home))


def stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def all_units() -> list[str]:
    return SYSTEM_UNITS + USER_UNITS


def test_the_unit_set_is_complete():
    present = sorted(str(p.relative_to(UNITS)) for p in UNITS.rglob("*.service"))
    assert present == sorted(all_units()), "a new unit belongs in SYSTEM_UNITS/USER_UNITS (and under this test)"
    assert (UNITS / "trackprint.sysusers.conf").exists() and (UNITS / "trackprint.env.example").exists()


@pytest.mark.parametrize("name", all_units())
def test_security_exposure_at_most_4(name, analyze, tmp_path):
    path = UNITS / name
    user = name in USER_UNITS
    cmd = [analyze, *(["--user"] if user else []), "security", "--offline=true", "--no-pager", str(path)]
    proc = _run(cmd, env=user_env(tmp_path) if user else None)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert found, f"no exposure level from {' '.join(cmd)} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    exposure = float(found.group(1))
    failing = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("✗"))
    assert exposure <= MAX_EXPOSURE, f"{name}: exposure {exposure} > {MAX_EXPOSURE}; failing checks:\n{failing}"


@pytest.mark.parametrize("name", SYSTEM_UNITS)
def test_system_unit_verifies(name, analyze, tmp_path):
    root = tmp_path / "root"
    for source in SYSTEMD_UNIT_DIRS:  # sysinit.target, network-online.target, ... of this machine
        if os.path.isdir(source) and not (root / source.lstrip("/")).exists():
            shutil.copytree(source, root / source.lstrip("/"), symlinks=True)
    assert (root / "usr/lib/systemd/system/sysinit.target").exists() or (root / "lib/systemd/system/sysinit.target").exists()
    target = root / "etc" / "systemd" / "system"
    target.mkdir(parents=True)
    shutil.copy2(UNITS / name, target / name)
    for command in commands(UNITS / name):
        assert command_path(command).startswith("/"), f"{name}: a command without an absolute path: {command}"
        stub(root / command_path(command).lstrip("/"))
    instance = name.replace("@.", "@1.")  # a template is verified as one of its instances
    proc = _run([analyze, "verify", "--man=no", f"--root={root}", instance])
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), \
        f"systemd-analyze verify {name}:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("name", USER_UNITS)
def test_user_unit_verifies(name, analyze, tmp_path):
    env = user_env(tmp_path)
    home = Path(env["HOME"])
    for command in commands(UNITS / name):
        executable = command_path(command)
        if executable.startswith("%h/"):
            stub(home / executable[3:])
        else:  # system tools (mkdir) must exist as named
            assert os.access(executable, os.X_OK), f"{name}: {executable} is not an executable on this machine"
    proc = _run([analyze, "--user", "verify", "--man=no", str(UNITS / name)], env=env)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), \
        f"systemd-analyze --user verify {name}:\n{proc.stdout}\n{proc.stderr}"


SECRET_ON_COMMAND_LINE = [
    (re.compile(r"TRACKPRINT_DB"), "the database URL (the persister reads $TRACKPRINT_DB itself)"),
    (re.compile(r"--db\b"), "--db (the URL holds the database password)"),
    (re.compile(r"pass(word)?|secret|token|credential", re.I), "a password or a variable holding one"),
    (re.compile(r"://[^/\s@:]+:[^/\s@]+@"), "a URL with user:password@"),
]


@pytest.mark.parametrize("name", all_units())
def test_no_secret_on_a_command_line(name):
    lines = commands(UNITS / name)
    assert any(True for _, k, _ in unit_lines(UNITS / name) if k == "ExecStart"), f"{name}: no ExecStart"
    for command in lines:
        for pattern, what in SECRET_ON_COMMAND_LINE:
            assert not pattern.search(command), f"{name}: {what} on the command line: {command}"


@pytest.mark.parametrize("name", SYSTEM_UNITS)
def test_system_unit_shape(name):
    """network-online ordered and pulled in, the sysusers user, NATS secrets as credentials."""
    path = UNITS / name
    after = " ".join(values(path, "After")).split()
    wants = " ".join(values(path, "Wants")).split()
    assert "network-online.target" in after and "network-online.target" in wants, \
        f"{name}: After=network-online.target needs Wants=network-online.target (After= alone waits for nothing)"
    sysusers = (UNITS / "trackprint.sysusers.conf").read_text()
    assert re.search(r"^u\s+trackprint\s", sysusers, re.M), "trackprint.sysusers.conf creates no trackprint user"
    assert values(path, "User") == ["trackprint"], f"{name}: not run as the trackprint user"
    environment = " ".join(values(path, "Environment"))
    credentials = values(path, "LoadCredential")
    if "TRACKPRINT_NATS_PASSWORD_FILE" in environment:
        assert "TRACKPRINT_NATS_PASSWORD_FILE=%d/nats-password" in environment, \
            f"{name}: the NATS password file is not the unit's credential"
        assert any(c.startswith("nats-password:/etc/trackprint/secrets/nats-") for c in credentials), \
            f"{name}: TRACKPRINT_NATS_PASSWORD_FILE without LoadCredential=nats-password:..."
        assert re.search(r"TRACKPRINT_NATS_USER=(watcher|analyzer|persister)\b", environment), \
            f"{name}: no NATS role user"


def test_watcher_and_nats_keep_state_in_the_state_directory():
    assert "trackprint" in " ".join(values(UNITS / "trackprint-watcher.service", "StateDirectory")).split()
    assert "%S/trackprint/watcher.sqlite" in " ".join(commands(UNITS / "trackprint-watcher.service"))
    assert "trackprint/nats" in " ".join(values(UNITS / "nats.service", "StateDirectory")).split()


def test_env_example_holds_no_secret():
    text = (UNITS / "trackprint.env.example").read_text()
    assignments = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert "TRACKPRINT_DB" not in assignments, "the database URL (with its password) belongs in the secrets file"
    for key, value in assignments.items():
        assert not re.search(r"://[^/\s@:]+:[^/\s@]+@", value), f"{key}: a URL with a password"
        assert not re.search(r"pass(word)?|secret", key, re.I) or key.endswith("_FILE"), f"{key}: a secret"
    assert all(url.startswith("tls://") for url in assignments["TRACKPRINT_NATS"].split(",")), \
        "the NATS URLs are tls:// (TRACKPRINT_NATS_CA_FILE signs the servers' certificates)"
    assert assignments.get("TRACKPRINT_NATS_CA_FILE", "").startswith("/")
