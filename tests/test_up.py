"""`trackprint up`, the embedded default, run as a user runs it (real nats-server, real services)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import soundfile as sf
from sqlalchemy import create_engine, exc as sa_exc, text

from trackprint.persister.db import normalize_url

SR = 22050


def write_tracks(folder, names, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        t = np.arange(int(SR * 1.5)) / SR
        tone = 0.3 * np.sin(2 * np.pi * (200 + 97 * i + 13 * seed) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / name, np.stack([tone, tone * 0.8], 1).astype(np.float32), SR, subtype="PCM_16")


def up(library, data_dir, *extra, env=None, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "trackprint.cli", "up", str(library), "--data-dir", str(data_dir),
         "--analyzers", "2", "--exit-when-idle", *extra],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def status(data_dir):
    out = subprocess.run([sys.executable, "-m", "trackprint.cli", "status", "--json", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackprint.cli", "up", str(library), "--data-dir", str(data), "--analyzers", "2",
         *db_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=without_rust(),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if len(rows(data, db_url)) >= 3:
                break
        except sa_exc.SQLAlchemyError:
            pass
        time.sleep(0.5)
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackprint.cli", "up", str(library), "--data-dir", str(data), "--analyzers", "1"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True, env=without_rust(),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_safe_rows(data)) < 1:
            time.sleep(0.5)
        persister = subprocess.run(["pgrep", "-f", f"persister --nats .* --db sqlite:///{data}"],
                                   capture_output=True, text=True).stdout.split()
        assert len(persister) == 1, persister
        os.kill(int(persister[0]), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "persister exited with status -9" not in log.read_text():
            time.sleep(0.5)
        assert "persister exited with status -9; restarting" in log.read_text()
        write_tracks(library, ["second.flac"], seed=3)  # the restarted persister stores it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_safe_rows(data)) < 2:
            time.sleep(0.5)
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
