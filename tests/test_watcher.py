"""The watcher against a real nats-server and a real directory tree (inotify)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import nats.js.errors

from trackprint import bus
from trackprint.bus.fold import latest_events
from trackprint.contracts import decode_event
from trackprint.watcher.service import Watcher, WatcherConfig

QUIET = 1.0


async def read_events(js) -> list:
    info = await js.stream_info(bus.EVENTS_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        try:
            out.append(decode_event((await js.get_msg(bus.EVENTS_STREAM, seq)).data))
        except nats.js.errors.NotFoundError:  # replaced by a later event of its file
            continue
    return out


async def wait_events(js, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = await read_events(js)
        if predicate(events):
            return events
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out; events: {[(e.kind, e.path) for e in await read_events(js)]}")


MSGS_PER_FILE = "TRACKPRINT_STREAM_MSGS_PER_FILE"


class Harness:
    """A watcher on ``tmp_path/lib``. With ``history`` (the default) the events stream keeps every event,
    not only each file's latest, so that a test can read all that the watcher published, in order."""

    def __init__(self, nats_server, tmp_path, history: bool = True, **kw):
        self.url = nats_server.url
        self.lib = tmp_path / "lib"
        self.lib.mkdir(exist_ok=True)
        self.state = str(tmp_path / "watcher.sqlite")
        self.history = history
        self.kw = kw

    async def __aenter__(self):
        self.saved_env = os.environ.get(MSGS_PER_FILE)
        if self.history:
            os.environ[MSGS_PER_FILE] = "-1"
        self.nc = await bus.connect(self.url, "test")
        self.js = self.nc.jetstream()
        await bus.ensure_topology(self.js)
        return self

    def start(self):
        cfg = WatcherConfig(roots=[str(self.lib)], nats=self.url, quiet_s=QUIET, state_path=self.state,
                            reconcile_s=self.kw.get("reconcile_s", 300))
        self.watcher = Watcher(cfg, js=self.js)
        self.task = asyncio.create_task(self.watcher.run())

    async def stop(self):
        self.watcher.stop()
        await asyncio.wait_for(self.task, 10)

    async def __aexit__(self, *exc):
        try:
            if getattr(self, "task", None) and not self.task.done():
                await self.stop()
            await bus.close(self.nc)
        finally:
            if self.saved_env is None:
                os.environ.pop(MSGS_PER_FILE, None)
            else:
                os.environ[MSGS_PER_FILE] = self.saved_env


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def kinds(events):
    return [(e.kind, os.path.basename(e.path)) for e in events]


def test_scan_modify_move_delete(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            (h.lib / "sub").mkdir()
            (h.lib / "a.flac").write_bytes(b"a" * 100)
            (h.lib / "sub" / "b.MP3").write_bytes(b"b" * 100)
            (h.lib / "notes.txt").write_text("not audio")
            h.start()
            ev = await wait_events(h.js, lambda e: len(e) >= 2)
            assert sorted(kinds(ev)) == [("added", "a.flac"), ("added", "b.MP3")]
            assert all(e.origin == "scan" for e in ev)
            # modify
            with open(h.lib / "a.flac", "ab") as f:
                f.write(b"more")
            ev = await wait_events(h.js, lambda e: len(e) >= 3)
            assert kinds(ev)[2] == ("changed", "a.flac") and ev[2].size == 104
            # move: the old path's tombstone, then the new path's arrival
            os.rename(h.lib / "sub" / "b.MP3", h.lib / "b-moved.mp3")
            ev = await wait_events(h.js, lambda e: len(e) >= 5)
            assert kinds(ev)[3:5] == [("removed", "b.MP3"), ("moved", "b-moved.mp3")]
            assert ev[3].reason == "moved" and ev[3].new_path == str(h.lib / "b-moved.mp3")
            assert ev[4].old_path == str(h.lib / "sub" / "b.MP3")
            # delete
            os.unlink(h.lib / "a.flac")
            ev = await wait_events(h.js, lambda e: len(e) >= 6)
            assert kinds(ev)[5] == ("removed", "a.flac") and ev[5].reason is None
            await asyncio.sleep(QUIET + 1.5)
            assert len(await read_events(h.js)) == 6  # nothing else
            # msg ids are deterministic: the same observation is deduplicated
            assert ev[0].msg_id() == ev[0].msg_id()

    run(main())


def test_the_stream_keeps_each_files_latest_event(nats_server, tmp_path):
    """The default retention: one event per file, whatever happened to it, and the fold (what re-analysis
    republishes) still gives exactly the files on disk, the moved one at its new path."""
    async def main():
        async with Harness(nats_server, tmp_path, history=False) as h:
            for name in ("a.flac", "b.flac", "c.flac"):
                (h.lib / name).write_bytes(name.encode() * 50)
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 3)
            with open(h.lib / "a.flac", "ab") as f:
                f.write(b"more")
            await wait_events(h.js, lambda e: ("changed", "a.flac") in kinds(e))
            os.rename(h.lib / "b.flac", h.lib / "b2.flac")
            await wait_events(h.js, lambda e: ("moved", "b2.flac") in kinds(e))
            os.unlink(h.lib / "c.flac")
            ev = await wait_events(h.js, lambda e: ("removed", "c.flac") in kinds(e), timeout=30)
            info = await h.js.stream_info(bus.EVENTS_STREAM)
            assert info.config.max_msgs_per_subject == 1
            assert sorted(kinds(ev)) == [("changed", "a.flac"), ("moved", "b2.flac"), ("removed", "b.flac"),
                                         ("removed", "c.flac")]
            assert info.state.messages == 4 and info.state.last_seq == 7  # 3 added, changed, the move's two, removed
            latest = await latest_events(h.js)
            assert sorted(os.path.basename(p) for p in latest) == ["a.flac", "b2.flac"]

    run(main())


def test_slowly_written_file_published_once_when_complete(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            h.start()
            await asyncio.sleep(0.5)
            path = h.lib / "slow.wav"
            with open(path, "wb") as f:
                for _ in range(8):  # ~4 s, a chunk each 0.5 s
                    f.write(b"x" * 1000)
                    f.flush()
                    await asyncio.sleep(0.5)
                    assert await read_events(h.js) == [], "published while still being written"
            ev = await wait_events(h.js, lambda e: len(e) >= 1)
            await asyncio.sleep(QUIET + 1)
            ev = await read_events(h.js)
            assert kinds(ev) == [("added", "slow.wav")] and ev[0].size == 8000

    run(main())


def test_root_renamed_away_is_offline_not_removed(nats_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="trackprint.watcher")

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            for i in range(5):
                (h.lib / f"{i}.flac").write_bytes(b"x" * (10 + i))
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 5)
            os.rename(h.lib, tmp_path / "lib-away")
            await asyncio.sleep(QUIET + 3)
            h.watcher.scan_root_into_dirty(str(h.lib), "reconcile")  # a reconcile over the offline root
            await asyncio.sleep(1)
            ev = await read_events(h.js)
            assert [e.kind for e in ev] == ["added"] * 5
            assert "LIBRARY ROOT OFFLINE" in caplog.text
            # back: nothing to publish, files unchanged
            os.rename(tmp_path / "lib-away", h.lib)
            await asyncio.sleep(QUIET + 2)
            assert "back online" in caplog.text
            assert len(await read_events(h.js)) == 5
            # an emptied mount point (unmounted drive) is offline too
            for i in range(5):
                os.rename(h.lib / f"{i}.flac", tmp_path / f"{i}.flac")
            await asyncio.sleep(QUIET + 3)
            assert [e.kind for e in await read_events(h.js)] == ["added"] * 5

    run(main())


def test_root_missing_at_start_is_offline_until_it_appears(nats_server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="trackprint.watcher")

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            h.lib.rmdir()
            h.start()
            await asyncio.sleep(QUIET + 1)
            assert not h.task.done(), "the watcher died over a missing root"
            assert "LIBRARY ROOT OFFLINE" in caplog.text
            h.lib.mkdir()
            (h.lib / "late.flac").write_bytes(b"late")
            ev = await wait_events(h.js, lambda e: len(e) >= 1)
            assert kinds(ev) == [("added", "late.flac")]
            assert "back online" in caplog.text

    run(main())


def test_reconcile_after_downtime(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            for name in ("keep.flac", "change.flac", "delete.flac", "move.flac"):
                (h.lib / name).write_bytes(name.encode() * 10)
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 4)
            await h.stop()
            # while the watcher is down
            (h.lib / "change.flac").write_bytes(b"changed content")
            os.utime(h.lib / "change.flac", (time.time() - 60, time.time() - 60))
            os.unlink(h.lib / "delete.flac")
            os.rename(h.lib / "move.flac", h.lib / "moved.flac")
            (h.lib / "new.flac").write_bytes(b"new")
            h.start()
            ev = await wait_events(h.js, lambda e: len(e) >= 9)
            await asyncio.sleep(QUIET + 1.5)
            ev = await read_events(h.js)
            assert sorted(kinds(ev[4:])) == [("added", "new.flac"), ("changed", "change.flac"),
                                             ("moved", "moved.flac"), ("removed", "delete.flac"),
                                             ("removed", "move.flac")]
            assert all(e.origin == "scan" for e in ev[4:])

    run(main())


def test_periodic_reconcile_catches_missed_events(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path, reconcile_s=1.0) as h:
            h.start()
            await asyncio.sleep(0.5)
            h.watcher.live_watch.unwatch(str(h.lib))  # as if inotify missed everything
            (h.lib / "missed.flac").write_bytes(b"m")
            os.utime(h.lib / "missed.flac", (time.time() - 60, time.time() - 60))
            ev = await wait_events(h.js, lambda e: len(e) >= 1)
            assert kinds(ev) == [("added", "missed.flac")] and ev[0].origin == "reconcile"

    run(main())


def test_status_shows_an_offline_root_reported_by_the_watcher(tmp_path, nats_server):
    """The watcher's health report reaches `trackprint status` through NATS, on any host."""
    import json
    import subprocess
    import sys
    import time

    import numpy as np
    import soundfile as sf

    library = tmp_path / "music"
    library.mkdir()
    sf.write(library / "a.flac", np.zeros((8000, 2), dtype=np.float32), 8000)
    watcher = subprocess.Popen([sys.executable, "-m", "trackprint.cli", "watcher", "--nats", nats_server.url,
                                "--state", str(tmp_path / "w.sqlite"), "--quiet-s", "0.2", str(library)])
    try:
        def report():
            out = subprocess.run([sys.executable, "-m", "trackprint.cli", "status", "--json", "--nats", nats_server.url,
                                  "--db", f"sqlite:///{tmp_path / 'none.db'}"], capture_output=True, text=True)
            return json.loads(out.stdout)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not report()["bus"]["watchers"]:
            time.sleep(0.5)
        time.sleep(1.0)  # let the scan publish a.flac, so the emptied root reads as unmounted
        (library / "a.flac").rename(tmp_path / "a.flac")  # the root empties as if its drive was unmounted
        deadline = time.monotonic() + 30
        warnings = []
        while time.monotonic() < deadline:
            warnings = report()["warnings"]
            if any("library root offline" in w for w in warnings):
                break
            time.sleep(0.5)
        assert any("library root offline" in w and str(library) in w for w in warnings), warnings
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
