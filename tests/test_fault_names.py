"""File names that are not UTF-8: carried losslessly from the watcher to the database, one file's problem
never stops discovery (real watcher, nats-server, analyzer, persister on SQLite and PostgreSQL)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

from tests.audio import write_tones
from tests.procs import service, stop_all
from tests.waiting import wait_until
from trackprint.paths import to_fs, to_text
from trackprint.persister.db import normalize_url

SR = 22050


def test_names_that_are_not_utf8_are_fingerprinted_and_stored_faithfully(tmp_path, nats_server, db_url):
    library = tmp_path / "music"
    (odd,) = write_tones(library, ["odd.flac"], SR, base_hz=330, step_hz=1, seed=1)
    odd_name = os.path.join(os.fsencode(library), b"caf\xe9 \xff.flac")  # Latin-1 bytes: not UTF-8
    os.rename(odd, odd_name)
    write_tones(library, ["plain.flac"], SR, base_hz=440, step_hz=1, seed=2)
    procs = [
        service("persister", "--nats", nats_server.url, "--db", db_url, log=tmp_path / "persister.log"),
        service("analyzer", "--nats", nats_server.url, "--no-rust", "--library", str(library),
                log=tmp_path / "analyzer.log"),
        service("watcher", "--nats", nats_server.url, "--state", str(tmp_path / "w.sqlite"), "--quiet-s", "0.5",
                str(library), log=tmp_path / "watcher.log"),
    ]
    engine = create_engine(normalize_url(db_url))

    def fingerprinted() -> set[str]:
        with engine.connect() as conn:
            return set(conn.scalars(text("SELECT t.path FROM tracks t JOIN track_fingerprints f "
                                         "ON f.track_id = t.id WHERE t.state = 'active'")))

    try:
        wait_until(fingerprinted, 120, 0.5, "both files fingerprinted", until=lambda p: len(p) == 2, ignore=(Exception,))
        # discovery goes on after the odd name: a file added later is seen too
        write_tones(library, ["later.flac"], SR, base_hz=550, step_hz=1, seed=3)
        paths = wait_until(fingerprinted, 120, 0.5, "the later file fingerprinted", until=lambda p: len(p) == 3,
                           ignore=(Exception,))
    finally:
        stop_all(procs)
        engine.dispose()
    stored = to_text(os.fsdecode(odd_name))
    assert stored in paths and stored.endswith("caf//xE9 //xFF.flac")
    assert os.fsencode(to_fs(stored)) == odd_name  # the stored text gives back the exact bytes
    assert str(library / "later.flac") in paths
