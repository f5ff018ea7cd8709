"""Settings: defaults < file < environment < flags, the source of every value, one-line errors, and
`trackprint config` (text and --json) as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.procs import sqlite_fingerprint_count, run_cli
from trackprint import settings
from trackprint.config import resolve_db
from trackprint.paths import library_from_env

EXAMPLE = """\
library = ["~/Music", "relative/lib"]
database = "sqlite:////srv/tp.db"
data_dir = "/srv/trackprint"
excludes = ["Podcasts", "*.part"]
exclude_marker = ".nomedia"
poll = true
analyzers = 3
allow_symlinks_outside = false

[ports]
nats = 4333
server = 7999
"""


def clean_env(tmp_path, **extra) -> dict:
    """No TRACKPRINT_* from the caller's shell; a private XDG config home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKPRINT_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env.update(extra)
    return env


def write(tmp_path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


def test_defaults_without_a_file(tmp_path):
    s = settings.load(environ=clean_env(tmp_path))
    assert s.path == tmp_path / "xdg" / "trackprint" / "config.toml" and not s.found
    assert s.library == () and s.database is None and s.poll is False and s.exclude_marker == ".trackprintignore"
    assert s.analyzers == 1 and s.get("ports.nats") == 0
    assert all(s.source(k.name) == "default" for k in settings.KEYS)


def test_the_file_layer_and_its_sources(tmp_path):
    path = write(tmp_path, EXAMPLE)
    s = settings.load(environ=clean_env(tmp_path, TRACKPRINT_CONFIG=str(path)))
    assert s.found and s.path == path
    assert s.library == (os.path.expanduser("~/Music"), str(tmp_path / "relative" / "lib"))  # relative: to the file
    assert (s.database, s.data_dir, s.poll, s.analyzers) == ("sqlite:////srv/tp.db", "/srv/trackprint", True, 3)
    assert s.excludes == ("Podcasts", "*.part") and s.exclude_marker == ".nomedia"
    assert (s.get("ports.nats"), s.get("ports.server")) == (4333, 7999)
    assert s.source("poll") == f"file {path}" and s.source("default_excludes") == "default"


def test_the_default_location_follows_xdg_config_home(tmp_path):
    (tmp_path / "xdg" / "trackprint").mkdir(parents=True)
    (tmp_path / "xdg" / "trackprint" / "config.toml").write_text("poll = true\n")
    s = settings.load(environ=clean_env(tmp_path))
    assert s.poll is True and s.source("poll").startswith("file ") and s.source("poll").endswith("config.toml")


def test_environment_beats_the_file_and_flags_beat_both(tmp_path):
    path = write(tmp_path, EXAMPLE)
    env = clean_env(tmp_path, TRACKPRINT_CONFIG=str(path), TRACKPRINT_DB="sqlite:////env.db",
                    TRACKPRINT_LIBRARY=f"/env/a{os.pathsep}/env/b", TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE="yes")
    s = settings.load(environ=env)
    assert s.database == "sqlite:////env.db" and s.source("database") == "env TRACKPRINT_DB"
    assert s.library == ("/env/a", "/env/b") and s.source("library") == "env TRACKPRINT_LIBRARY"
    assert s.allow_symlinks_outside is True
    assert s.analyzers == 3 and s.source("analyzers") == f"file {path}"
    flagged = s.with_flags({"database": ("sqlite:////flag.db", "--db"), "analyzers": (1, "--analyzers"),
                            "poll": (None, "--poll")})
    assert (flagged.database, flagged.source("database")) == ("sqlite:////flag.db", "flag --db")
    assert (flagged.analyzers, flagged.source("analyzers")) == (1, "flag --analyzers")
    assert flagged.source("poll") == f"file {path}"  # a flag not given changes nothing
    with pytest.raises(settings.SettingsError, match="--analyzers: expected an integer >= 1"):
        s.with_flags({"analyzers": (0, "--analyzers")})


@pytest.mark.parametrize("body, message", [
    ("libary = ['/m']\n", "unknown key 'libary'"),
    ("analyzers = 'two'\n", "key 'analyzers': expected an integer, got a string 'two'"),
    ("analyzers = 0\n", "key 'analyzers': expected an integer >= 1"),
    ("poll = 'yes'\n", "key 'poll': expected true or false"),
    ("excludes = 'Podcasts'\n", "key 'excludes': expected a list of glob strings"),
    ("exclude_marker = 'a/b'\n", "key 'exclude_marker': expected a file name"),
    ("[ports]\nnats = 70000\n", "key 'ports.nats': expected a port number"),
    ("[ports]\nrust = 1\n", "unknown key 'ports.rust'"),
    ("ports = 4222\n", "key 'ports': expected a table"),
    ("library = [\n", "not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(environ=clean_env(tmp_path, TRACKPRINT_CONFIG=str(path)))
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_environment_values_and_a_missing_named_file(tmp_path):
    with pytest.raises(settings.SettingsError, match="environment TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE"):
        settings.load(environ=clean_env(tmp_path, TRACKPRINT_ALLOW_SYMLINKS_OUTSIDE="maybe"))
    with pytest.raises(settings.SettingsError, match="no such settings file"):
        settings.load(environ=clean_env(tmp_path, TRACKPRINT_CONFIG=str(tmp_path / "nope.toml")))


def test_commands_and_services_read_it(tmp_path, monkeypatch):
    """The location helpers and the library (roots, excludes, marker) follow the settings."""
    for name in [k.env for k in settings.KEYS if k.env]:
        monkeypatch.delenv(name, raising=False)
    path = write(tmp_path, 'library = ["/music"]\ndatabase = "sqlite:////from/file.db"\nexcludes = ["Podcasts"]\n'
                           'exclude_marker = ".nomedia"\n')
    monkeypatch.setenv("TRACKPRINT_CONFIG", str(path))
    args = type("Args", (), {"db": None, "data_dir": str(tmp_path / "data")})()
    assert resolve_db(args) == "sqlite:////from/file.db"
    library = library_from_env()
    assert library.roots == ("/music",) and library.excludes == ("Podcasts",) and library.marker == ".nomedia"
    assert library.excluded("/music/Podcasts/a.mp3") and library.excluded("/music/.x/a.mp3")
    assert library_from_env(["/other"]).roots == ("/other",)  # given roots win, the excludes stay


# -- the command line ------------------------------------------------------------------------------
def test_trackprint_config_shows_values_and_sources(tmp_path):
    path = write(tmp_path, EXAMPLE)
    env = clean_env(tmp_path, TRACKPRINT_CONFIG=str(path), TRACKPRINT_NATS="nats://10.0.0.1:4222")
    out = run_cli("config", "--data-dir", str(tmp_path / "d"), env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert lines["settings"] == f"settings file  {path}"
    assert lines["analyzers"].endswith(f"3  [file {path}]")
    assert lines["nats"].endswith("nats://10.0.0.1:4222  [env TRACKPRINT_NATS]")
    assert lines["data_dir"].endswith(f"{tmp_path / 'd'}  [flag --data-dir]")
    assert lines["default_excludes"].endswith("true  [default]")

    out = run_cli("config", "--json", "--db", "sqlite:////x.db", env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["file"] == str(path) and report["file_found"] is True
    assert report["settings"]["database"] == {"value": "sqlite:////x.db", "source": "flag --db"}
    assert report["settings"]["ports.server"] == {"value": 7999, "source": f"file {path}"}
    assert report["settings"]["excludes"]["value"] == ["Podcasts", "*.part"]


def test_a_bad_settings_file_stops_every_command_with_one_line(tmp_path):
    path = write(tmp_path, "analyzers = 'two'\n")
    env = clean_env(tmp_path, TRACKPRINT_CONFIG=str(path))
    for argv in (["config"], ["status", "--data-dir", str(tmp_path / "d")], ["up", str(tmp_path)]):
        out = run_cli(*argv, env=env, timeout=60)
        assert out.returncode == 2, (argv, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        assert f"{path}: key 'analyzers': expected an integer" in out.stderr, (argv, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, (argv, out.stderr)
    assert not (tmp_path / "d").exists()


def test_the_readme_example_is_a_valid_settings_file(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("## Settings", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    s = settings.load(write(tmp_path, block), environ=clean_env(tmp_path))
    assert s.excludes and s.get("ports.nats") == 4222


def test_standalone_services_take_the_bus_database_and_library_from_the_settings(tmp_path, nats_server):
    """watcher, analyzer and persister with no flags at all: the settings file names the bus, the
    database and the library, and a file in the library ends up fingerprinted."""

    from tests.audio import write_tones
    from tests.procs import service, stop_all
    from tests.waiting import wait_until

    library = tmp_path / "music"
    write_tones(library, ["a.flac"], 22050, base_hz=330, step_hz=40, seed=5, duration_s=2.0)
    db = tmp_path / "tp.db"
    path = write(tmp_path, f'library = ["{library}"]\ndatabase = "sqlite:///{db}"\nnats = "{nats_server.url}"\n')
    env = clean_env(tmp_path, TRACKPRINT_CONFIG=str(path))
    procs = [service("persister", log=tmp_path / "persister.log", env=env),
             service("analyzer", "--no-rust", log=tmp_path / "analyzer.log", env=env),
             service("watcher", "--state", str(tmp_path / "w.sqlite"), log=tmp_path / "watcher.log", env=env)]

    def fingerprints():
        for p in procs:
            assert p.poll() is None, "".join(f.read_text() for f in tmp_path.glob("*.log"))[-3000:]
            return sqlite_fingerprint_count(db)

    try:
        wait_until(fingerprints, 120, 0.5, "the file fingerprinted through the settings' bus and database",
                   until=lambda n: n == 1)
    finally:
        stop_all(procs)
