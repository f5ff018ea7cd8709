"""End to end: watcher + 2 analyzers + persister as real subprocesses, real nats-server,
on SQLite and on PostgreSQL.

Checks the whole chain and crash recovery: kill -9 of an analyzer and of
nats-server in the middle of a backfill loses nothing and duplicates nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from sqlalchemy import create_engine, exc as sa_exc, text

from tests.audio import noisy_tone, write_audio, write_tone_library
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.persister.db import normalize_url

# a whole pipeline of real processes: left out of the quick loop (scripts/test.sh -m "not slow")
pytestmark = pytest.mark.slow

SR = 22050


def tone(freq, seconds=1.5, seed=0):
    return noisy_tone(freq, seconds, SR, amplitude=0.3, noise=0.02, seed=seed)


class Pipeline:
    def __init__(self, tmp_path, nats_url, lib, db_url):
        self.tmp = tmp_path
        self.url = nats_url
        self.lib = lib
        self.db_url = db_url
        self.engine = create_engine(normalize_url(db_url))
        self.procs: dict[str, subprocess.Popen] = {}
        env = dict(os.environ)
        env.pop("TRACKPRINT_SERVER", None)
        env["TRACKPRINT_ACK_WAIT_S"] = "10"
        self.env = env

    def start(self, name):
        cmd = ["-v"]
        if name == "persister":
            cmd += ["persister", "--nats", self.url, "--db", self.db_url, "--batch-wait-s", "0.2"]
        elif name.startswith("analyzer"):
            cmd += ["analyzer", "--nats", self.url, "--library", str(self.lib), "--no-rust", "--concurrency", "2",
                    "--nak-delay-s", "0.5"]
        elif name == "watcher":
            cmd += ["watcher", "--nats", self.url, "--quiet-s", "1", "--state", str(self.tmp / "w.sqlite"),
                    str(self.lib)]
        self.procs[name] = service(*cmd, log=self.tmp / f"{name}.log", env=self.env)

    def kill(self, name):
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self):
        stop_all(self.procs.values(), timeout=15)

    def query(self, sql, *args):
        """Rows as tuples; ``?`` placeholders are bound in order (on either backend)."""
        parts = sql.split("?")
        sql = "".join(part + (f":p{i}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))
        try:
            with self.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), {f"p{i}": a for i, a in enumerate(args)})]
        except (sa_exc.OperationalError, sa_exc.ProgrammingError):  # schema not created yet
            return []

    def wait(self, what, predicate, timeout=120):
        """``wait_until(predicate)``, failing at once when a service died (not by our kill -9 or SIGTERM)."""
        def check():
            for name, p in self.procs.items():
                if p.poll() is not None and p.returncode not in (0, -9, -15):
                    raise AssertionError(f"{name} died ({p.returncode}): {self.log(name)}")
            return predicate()

        wait_until(check, timeout, 0.3, lambda: f"{what}\n" + "\n".join(
            f"--- {n}\n{self.log(n)}" for n in self.procs))

    def log(self, name, n=3000):
        try:
            return (self.tmp / f"{name}.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def count(self, table, where="1=1"):
        rows = self.query(f"SELECT COUNT(*) FROM {table} WHERE {where}")
        return rows[0][0] if rows else 0


@pytest.fixture
def pipeline(tmp_path, nats_server, db_url):
    lib = tmp_path / "lib"
    lib.mkdir()
    p = Pipeline(tmp_path, nats_server.url, lib, db_url)
    yield p
    p.stop_all()
    p.engine.dispose()


def test_pipeline_files_failures_modify_move_delete(pipeline):
    lib = pipeline.lib
    write_audio(lib / "a.flac", np.stack([tone(440), tone(660, seed=1)], 1), SR)
    write_audio(lib / "b.wav", tone(220, seed=2), SR)
    write_audio(lib / "c.mp3", tone(330, seed=3), SR)  # the soundfile wheel's libsndfile encodes MP3
    valid = ["a.flac", "b.wav", "c.mp3"]
    data = (lib / "a.flac").read_bytes()
    (lib / "trunc.flac").write_bytes(data[: len(data) // 2])
    (lib / "empty.flac").write_bytes(b"")
    (lib / "text.mp3").write_text("not audio at all " * 30)
    for name in ("persister", "analyzer1", "analyzer2", "watcher"):
        pipeline.start(name)

    pipeline.wait("fingerprints and failures",
                  lambda: pipeline.count("track_fingerprints") == len(valid)
                  and pipeline.count("analysis_failures") >= 3)
    codes = dict(pipeline.query("SELECT path, code FROM analysis_failures"))
    assert {os.path.basename(k): v for k, v in codes.items()} == {
        "trunc.flac": "truncated", "empty.flac": "empty_file", "text.mp3": "unsupported_format"}
    assert pipeline.count("analysis_failures") == 3

    def fp_of(name):
        return pipeline.query(
            "SELECT f.content_id, f.lufs, f.reused, f.engine, t.state FROM tracks t JOIN track_fingerprints f "
            "ON f.track_id = t.id WHERE t.path = ?", str(lib / name))

    before = fp_of("b.wav")[0]
    assert before[3] == "python"
    # modify: the row is updated
    write_audio(lib / "b.wav", tone(1000, seed=9) * 0.5, SR)
    pipeline.wait("modified row", lambda: fp_of("b.wav") and fp_of("b.wav")[0][0] != before[0])
    assert fp_of("b.wav")[0][1] != before[1]
    # move: same fingerprint under the new path, no re-analysis
    a_before = fp_of("a.flac")[0]
    os.rename(lib / "a.flac", lib / "a-moved.flac")
    pipeline.wait("moved row", lambda: bool(fp_of("a-moved.flac")))
    moved = fp_of("a-moved.flac")[0]
    assert moved[0] == a_before[0] and moved[1] == a_before[1]
    # delete: a tombstone
    os.unlink(lib / "b.wav")
    pipeline.wait("tombstone", lambda: pipeline.query("SELECT state FROM tracks WHERE path = ?",
                                                      str(lib / "b.wav")) == [("deleted",)])
    assert pipeline.count("track_fingerprints") >= len(valid)


def test_kill_9_analyzer_and_nats_server_mid_backfill(pipeline, nats_server):
    lib = pipeline.lib
    n = 200
    write_tone_library(lib, n, SR, base_hz=100, step_hz=7, seed=0, name="t{i:03d}.wav", duration_s=1.2,
                       amplitude=0.3, noise=0.02)
    for name in ("persister", "analyzer1", "analyzer2", "watcher"):
        pipeline.start(name)
    pipeline.wait("first rows", lambda: pipeline.count("track_fingerprints") >= 20, timeout=180)
    pipeline.kill("analyzer1")
    pipeline.start("analyzer1")
    pipeline.wait("more rows", lambda: pipeline.count("track_fingerprints") >= 80, timeout=180)
    nats_server.stop(kill=True)
    time.sleep(2)
    nats_server.start()
    pipeline.wait("all rows", lambda: pipeline.count("track_fingerprints") >= n, timeout=300)
    time.sleep(3)  # anything late (a duplicate) would show up now
    assert pipeline.count("track_fingerprints") == n
    assert pipeline.count("tracks") == n
    assert pipeline.count("tracks", "state != 'deleted'") == n
    assert pipeline.count("analysis_failures") == 0
    dup = pipeline.query("SELECT path, COUNT(*) FROM tracks GROUP BY path HAVING COUNT(*) > 1")
    assert dup == []
