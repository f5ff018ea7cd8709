"""Excludes: the rules (trackprint.paths.Library.excluded), the watcher against a real nats-server (never
published, not walked into, tombstoned as `excluded` when a marker appears, back when it goes), the analyzer
(an excluded path is tombstoned, not analysed), the store (tombstone reason), and the whole `up` pipeline
on a library full of junk (slow)."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from sqlalchemy import create_engine, text

from tests.audio import write_tones
from tests.procs import run_cli, service
from tests.test_watcher import QUIET, Harness, kinds, read_events, run, wait_events
from tests.waiting import wait_until
from trackprint.contracts import FileEvent, TrackRemoved
from trackprint.paths import DEFAULT_MARKER, Library
from trackprint.watcher.scan import audio_name_test, walk_audio_files

JUNK = [".Trash-1000/files/x.flac", "._x.flac", ".hidden/y.flac", "@eaDir/a.flac/SYNOFILE_THUMB.flac",
        "lost+found/#1234.flac", "$RECYCLE.BIN/S-1-5-21/r.flac", "System Volume Information/v.flac",
        "Album/.DS_Store", "Album/._01.flac"]


def touch(root, rel, data=b"x" * 100):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


# -- the rules -------------------------------------------------------------------------------------
def test_default_excludes_hidden_trash_nas_and_windows_folders_but_not_music(tmp_path):
    root = str(tmp_path / "lib")
    lib = Library((root,))
    for rel in JUNK:
        assert lib.excluded(os.path.join(root, rel)), rel
    for rel in ["a.flac", "Album/01 Intro.flac", "Artist/Album (Disc 1)/02.mp3", "weird.name.flac", "@live/x.flac"]:
        assert lib.excluded(os.path.join(root, rel)) is None, rel
    assert "'.Trash-1000' matches the default exclude" in lib.excluded(os.path.join(root, ".Trash-1000/x.flac"))


def test_only_names_below_the_root_count(tmp_path):
    root = str(tmp_path / ".music")  # a library that itself lives in a hidden folder
    lib = Library((root,))
    assert lib.excluded(os.path.join(root, "Album", "a.flac")) is None
    assert lib.excluded(os.path.join(root, ".cache", "a.flac"))


def test_user_globs_names_relative_and_absolute(tmp_path):
    root = str(tmp_path / "lib")
    lib = Library((root,), excludes=("Podcasts", "*.part", "Audiobooks/*", f"{root}/Inbox/*"))
    excluded = ["Podcasts/ep1.mp3", "Rock/Podcasts/ep2.mp3", "Rock/a.part", "Audiobooks/Book/ch1.mp3",
                "Inbox/new.flac"]
    kept = ["Rock/a.flac", "Rock/Audiobooks/x.flac", "PodcastsNot/x.flac", "Inboxes/x.flac"]
    for rel in excluded:
        assert lib.excluded(os.path.join(root, rel)), rel
    for rel in kept:
        assert lib.excluded(os.path.join(root, rel)) is None, rel
    assert "matches the exclude 'Podcasts'" in lib.excluded(os.path.join(root, "Podcasts/ep1.mp3"))


def test_marker_file_excludes_its_folder_and_everything_below(tmp_path):
    root = tmp_path / "lib"
    touch(root, "Keep/a.flac")
    touch(root, "Skip/b.flac")
    touch(root, "Skip/Deeper/c.flac")
    (root / "Skip" / DEFAULT_MARKER).write_text("")
    lib = Library((str(root),))
    assert lib.excluded(str(root / "Keep/a.flac")) is None
    assert f"holds the marker file {DEFAULT_MARKER}" in lib.excluded(str(root / "Skip/b.flac"))
    assert lib.excluded(str(root / "Skip/Deeper/c.flac"))
    assert lib.excluded(str(root / "Skip"))
    # another marker name, or none
    assert Library((str(root),), marker="").excluded(str(root / "Skip/b.flac")) is None
    assert Library((str(root),), marker="NOMEDIA").excluded(str(root / "Skip/b.flac")) is None


def test_default_excludes_can_be_turned_off(tmp_path):
    root = str(tmp_path / "lib")
    assert Library((root,), default_excludes=False).excluded(os.path.join(root, ".hidden/y.flac")) is None


def test_the_walk_does_not_descend_into_excluded_folders(tmp_path):
    root = tmp_path / "lib"
    touch(root, "a.flac")
    touch(root, "Album/b.flac")
    for rel in JUNK:
        touch(root, rel)
    touch(root, "Marked/m.flac")
    touch(root, "Marked/Sub/n.flac")
    (root / "Marked" / DEFAULT_MARKER).write_text("")
    tree = walk_audio_files(str(root), audio_name_test(["flac"]), Library((str(root),)))
    assert sorted(os.path.relpath(p, root) for p in tree.files) == ["Album/b.flac", "a.flac"]
    # the root, Album and Marked (listed to find its marker) are the only directories read
    assert tree.directories == 3


# -- the watcher, against a real nats-server ------------------------------------------------------
def test_watcher_never_publishes_junk(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            touch(h.lib, "a.flac")
            for rel in JUNK:
                touch(h.lib, rel)
            touch(h.lib, "Marked/m.flac")
            (h.lib / "Marked" / DEFAULT_MARKER).write_text("")
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 1)
            # live: junk created while watching is ignored too, a real track is not
            touch(h.lib, ".Trash-1000/files/later.flac")
            touch(h.lib, "Marked/later.flac")
            touch(h.lib, "._later.flac")
            touch(h.lib, "b.flac")
            await wait_events(h.js, lambda e: len(e) >= 2)
            await asyncio.sleep(QUIET + 1.5)
            assert sorted(kinds(await read_events(h.js))) == [("added", "a.flac"), ("added", "b.flac")]

    run(main())


def test_watcher_tombstones_known_files_under_a_new_marker_and_brings_them_back(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            touch(h.lib, "keep.flac")
            album = [touch(h.lib, f"Album/{i}.flac", bytes([i]) * 100) for i in range(3)]
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 4)
            (h.lib / "Album" / DEFAULT_MARKER).write_text("")
            events = await wait_events(h.js, lambda e: len(e) >= 7)
            removed = events[4:]
            assert sorted(e.path for e in removed) == sorted(album)
            assert {(e.kind, e.reason) for e in removed} == {("removed", "excluded")}
            os.unlink(h.lib / "Album" / DEFAULT_MARKER)  # included again, inside the duplicate window
            events = await wait_events(h.js, lambda e: len(e) >= 10)
            back = events[7:]
            assert sorted(e.path for e in back) == sorted(album)
            assert {(e.kind, e.reason) for e in back} == {("added", "included")}
            await asyncio.sleep(QUIET + 1.5)
            assert len(await read_events(h.js)) == 10

    run(main())


def test_watcher_tombstones_files_excluded_by_new_settings_at_start(nats_server, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("TRACKPRINT_CONFIG", str(config))
    config.write_text("")

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            touch(h.lib, "Rock/a.flac")
            touch(h.lib, "Podcasts/ep1.mp3")
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 2)
            await h.stop()
            config.write_text('excludes = ["Podcasts"]\n')
            h.start()  # the start-up scan applies the new settings
            events = await wait_events(h.js, lambda e: len(e) >= 3)
            assert (events[2].kind, os.path.basename(events[2].path), events[2].reason) == \
                ("removed", "ep1.mp3", "excluded")
            await asyncio.sleep(QUIET + 1.5)
            assert len(await read_events(h.js)) == 3

    run(main())


# -- the analyzer and the store --------------------------------------------------------------------
def test_analyzer_tombstones_an_excluded_path_instead_of_analysing_it(tmp_path):
    from trackprint.analyzer.worker import AnalyzerWorker, WorkerConfig

    root = tmp_path / "lib"
    path = touch(root, "._x.flac", b"\x00\x05\x16\x07 AppleDouble resource fork")
    worker = AnalyzerWorker(WorkerConfig(use_rust=False, library=Library((str(root),))))
    event = FileEvent(kind="added", path=path, root=str(root), size=100, mtime_ns=1)
    results = asyncio.run(worker._results_for(event, 7, 1))
    assert len(results) == 1 and isinstance(results[0], TrackRemoved)
    assert (results[0].path, results[0].reason, results[0].source_seq) == (path, "excluded", 7)
    removed = FileEvent(kind="removed", path=path, root=str(root), reason="excluded")
    assert asyncio.run(worker._results_for(removed, 8, 1))[0].reason == "excluded"
    gone = FileEvent(kind="removed", path=path, root=str(root))
    assert asyncio.run(worker._results_for(gone, 9, 1))[0].reason == "gone"


def test_store_keeps_the_tombstone_reason_and_a_revival_clears_it(tmp_path):
    from tests.test_persister_store import result
    from trackprint.persister.store import Store

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    store.apply([(result("/lib/a.flac", 1), 1)])
    store.apply([(TrackRemoved(path="/lib/a.flac", source_seq=2, reason="excluded"), 2)])
    store.apply([(TrackRemoved(path="/lib/b.flac", source_seq=3), 3)])
    with store.engine.connect() as conn:
        got = dict(conn.execute(text("SELECT path, state || ':' || coalesce(deleted_reason, '-') FROM tracks")).all())
    assert got == {"/lib/a.flac": "deleted:excluded", "/lib/b.flac": "deleted:gone"}
    assert store.apply([(result("/lib/a.flac", 4), 4)]).persisted == 1
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT state, deleted_reason FROM tracks WHERE path = '/lib/a.flac'")).one()
    assert tuple(row) == ("active", None)
    store.close()


# -- the whole pipeline ----------------------------------------------------------------------------
def _write_tracks(folder, names, seed=0):
    write_tones(folder, names, 22050, base_hz=200 + 13 * seed, step_hz=97, seed=seed, duration_s=1.5,
                amplitude=0.3, noise=0.02, channels=2)


def _tracks(data_dir):
    engine = create_engine(f"sqlite:///{data_dir / 'trackprint.db'}")
    try:
        with engine.connect() as conn:
            tracks = {p: (s, r) for p, s, r in conn.execute(text("SELECT path, state, deleted_reason FROM tracks"))}
            failures = conn.execute(text("SELECT path, code FROM analysis_failures")).all()
        return tracks, failures
    finally:
        engine.dispose()


@pytest.mark.slow
def test_up_on_a_library_full_of_junk_stores_only_the_real_tracks(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    real = ["a.flac", "Album/b.flac", "Album/c.flac"]
    for rel in real:
        _write_tracks(library / os.path.dirname(rel), [os.path.basename(rel)], seed=len(rel))
    # the same real audio in every junk place, so nothing but the exclusion keeps it out
    audio = (library / "a.flac").read_bytes()
    for rel in [".Trash-1000/files/x.flac", ".hidden/y.flac", "@eaDir/a.flac/SYNOFILE.flac", "$RECYCLE.BIN/r.flac",
                "Marked/m.flac", "Marked/Sub/n.flac", "Podcasts/p.flac"]:
        touch(library, rel, audio)
    touch(library, "._x.flac", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # would be a failure row
    touch(library, "Album/._b.flac", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (library / "Marked" / DEFAULT_MARKER).write_text("")
    config = tmp_path / "config.toml"
    config.write_text('excludes = ["Podcasts"]\n')
    env = dict(os.environ, TRACKPRINT_CONFIG=str(config))

    out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                  env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    tracks, failures = _tracks(data)
    assert tracks == {str(library / rel): ("active", None) for rel in real}
    assert failures == []

    # the settings change while it is stopped: a stored track becomes excluded and is tombstoned as such
    config.write_text('excludes = ["Podcasts", "c.flac"]\n')
    out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--exit-when-idle",
                  env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    tracks, failures = _tracks(data)
    assert tracks[str(library / "Album/c.flac")] == ("deleted", "excluded")
    assert tracks[str(library / "a.flac")] == ("active", None) and len(tracks) == 3
    assert failures == []
    report = json.loads(run_cli("status", "--json", "--data-dir", str(data), env=env, timeout=60).stdout)
    assert report["database"]["failed"] == 0


@pytest.mark.slow
def test_up_a_marker_file_added_to_a_folder_of_stored_tracks_tombstones_them_as_excluded(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    _write_tracks(library / "Album", ["1.flac", "2.flac"], seed=1)
    _write_tracks(library, ["single.flac"], seed=2)
    env = dict(os.environ, TRACKPRINT_CONFIG=str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    log = tmp_path / "up.out"
    proc = service("up", str(library), "--data-dir", str(data), "--analyzers", "1", log=log, env=env)
    album = {str(library / "Album" / n) for n in ("1.flac", "2.flac")}
    try:
        wait_until(lambda: _safe_tracks(data), 180, 0.5, "3 active tracks",
                   until=lambda t: sum(1 for s in t.values() if s == ("active", None)) == 3)
        (library / "Album" / DEFAULT_MARKER).write_text("")
        tracks = wait_until(lambda: _safe_tracks(data), 120, 0.5, "the album tombstoned as excluded",
                            until=lambda t: all(t.get(p) == ("deleted", "excluded") for p in album))
        assert tracks[str(library / "single.flac")] == ("active", None)
        assert _tracks(data)[1] == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    assert "stopped cleanly" in log.read_text()


def _safe_tracks(data_dir):
    from sqlalchemy import exc as sa_exc

    try:
        return _tracks(data_dir)[0]
    except sa_exc.SQLAlchemyError:
        return {}
