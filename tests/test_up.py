"""`trackprint up`, the embedded default, run as a user runs it (real nats-server, real services)."""

import json
import os
import signal
import subprocess

import pytest
from sqlalchemy import create_engine, exc as sa_exc, text

from tests.audio import write_tones
from tests.procs import run_cli, service
from tests.waiting import wait_until
from trackprint.persister.db import normalize_url

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

SR = 22050


def write_tracks(folder, names, seed=0):
    """1.5 s stereo tones, a different pitch per name and per ``seed``."""
    write_tones(folder, names, SR, base_hz=200 + 13 * seed, step_hz=97, seed=seed, duration_s=1.5,
                amplitude=0.3, noise=0.02, channels=2)


def up(library, data_dir, *extra, env=None, timeout=240):
    return run_cli("up", str(library), "--data-dir", str(data_dir), "--analyzers", "2", "--exit-when-idle", *extra,
                   timeout=timeout, env=env)


def status(data_dir):
    out = run_cli("status", "--json", "--data-dir", str(data_dir), timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def rows(data_dir, db_url=None):
    """path -> analyzed_at of the active fingerprints (the data directory's SQLite unless db_url)."""
    engine = create_engine(normalize_url(db_url or f"sqlite:///{data_dir / 'trackprint.db'}"))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT t.path, f.analyzed_at FROM tracks t JOIN track_fingerprints f "
                                          "ON f.track_id = t.id WHERE t.state = 'active'")).all())
    finally:
        engine.dispose()


def without_rust():
    env = dict(os.environ)
    env["TRACKPRINT_SERVER_BIN"] = "/nonexistent/trackprint-server"
    return env


def test_up_fingerprints_the_library_says_loudly_that_rust_is_missing_and_resumes(tmp_path, db_url):
    library, data = tmp_path / "music", tmp_path / "data"
    write_tracks(library, [f"a{i}.flac" for i in range(5)])
    (library / "notes.txt").write_text("not music, not a supported extension")
    (library / "broken.flac").write_bytes(b"this is not audio")

    first = up(library, data, "--db", db_url, env=without_rust())
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Rust analysis server is not running" in first.stderr
    assert "stopped cleanly" in first.stdout
    before = rows(data, db_url)
    assert len(before) == 5
    report = status(data)
    assert report["database"]["pending"] == 0
    assert report["database"]["failures_by_code"] == {"unsupported_format": 1}
    assert report["database"]["engine_share"] == {"python": 5}
    assert any("Rust server not running" in w for w in report["warnings"])

    write_tracks(library, ["b0.flac", "b1.flac"], seed=1)
    second = up(library, data, "--db", db_url, env=without_rust())
    assert second.returncode == 0, second.stdout + second.stderr
    after = rows(data, db_url)
    assert len(after) == 7
    assert {p: after[p] for p in before} == before  # the first five were not analysed again


def test_up_interrupted_midway_then_restarted_loses_nothing(tmp_path, db_url):
    library, data = tmp_path / "music", tmp_path / "data"
    if db_url.startswith("sqlite"):  # the embedded default: SQLite in the data directory, no --db
        db_url, db_args = None, []
    else:
        db_args = ["--db", db_url]
    write_tracks(library, [f"t{i:02d}.wav" for i in range(30)])
    proc = service("up", str(library), "--data-dir", str(data), "--analyzers", "2", *db_args,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=without_rust())
    try:
        wait_until(lambda: len(rows(data, db_url)), 120, 0.5, "3 rows before the interruption",
                   until=lambda n: n >= 3, ignore=(sa_exc.SQLAlchemyError,))
    finally:
        proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output

    again = up(library, data, *db_args, env=without_rust())
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(rows(data, db_url)) == 30
    report = status(data)["database"]
    assert report["pending"] == 0 and report["failed"] == 0 and report["active"] == 30


def test_up_restarts_a_crashed_service_and_says_so(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    write_tracks(library, ["first.flac"])
    log = tmp_path / "up.out"
    proc = service("up", str(library), "--data-dir", str(data), "--analyzers", "1", log=log, env=without_rust())
    try:
        wait_until(lambda: len(_safe_rows(data)), 120, 0.5, "the first row", until=lambda n: n >= 1)
        # the oldest: the persister, not its store's process (a fork, with the same command line)
        persister = subprocess.run(["pgrep", "-o", "-f", f"persister --nats .* --db sqlite:///{data}"],
                                   capture_output=True, text=True).stdout.split()
        assert len(persister) == 1, persister
        os.kill(int(persister[0]), signal.SIGKILL)
        wait_until(lambda: "persister exited with status -9" in log.read_text(), 60, 0.5,
                   "up to report the persister's death")
        assert "persister exited with status -9; restarting" in log.read_text()
        write_tracks(library, ["second.flac"], seed=3)  # the restarted persister stores it
        wait_until(lambda: len(_safe_rows(data)), 120, 0.5, "the second row", until=lambda n: n >= 2)
        assert len(_safe_rows(data)) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    assert "stopped cleanly" in log.read_text()


def _safe_rows(data_dir):
    try:
        return rows(data_dir)
    except sa_exc.SQLAlchemyError:
        return {}
