"""The watcher at scale, with real parts (a real nats-server, real SQLite, real inotify).

- it asks the kernel only for the events it uses: the analyzers' reads queue nothing, so a small
  ``max_queued_events`` does not overflow however often the library is read;
- a stop in the middle of a large backlog ends within seconds, and the restart publishes only what the
  first run had not (the state is committed batch by batch, as the PubAcks arrive);
- a directory event costs the files of that directory, not the whole state;
- the "scan complete" marker in the health report (what ``up --exit-when-idle`` waits for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time

from tests.test_watcher import Harness, read_events, run, wait_events
from tests.waiting import wait_until_async
from trackprint.watcher import watch as watch_module
from trackprint.watcher.state import Entry, WatcherState

MAX_QUEUED_EVENTS = "/proc/sys/fs/inotify/max_queued_events"

# inotify mask bits (inotify(7))
IN_ACCESS, IN_MODIFY, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x2, 0x10, 0x20


def library_tree(root, files: int, per_folder: int = 10, size: int = 64) -> list:
    paths = []
    for i in range(files):
        folder = root / f"artist{i // (per_folder * 10):03d}" / f"album{i // per_folder:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i % per_folder:02d} track {i}.flac"
        path.write_bytes(i.to_bytes(4, "big") * (size // 4))
        paths.append(path)
    old = time.time() - 60  # already quiet: published by the first tick
    for p in paths:
        os.utime(p, (old, old))
    return paths


@contextlib.contextmanager
def small_inotify_queue(monkeypatch, limit: int):
    """Start the watcher's inotify instance with ``max_queued_events = limit`` (the kernel reads the limit when
    an instance is created): the sysctl is lowered around LiveWatch.start only, milliseconds, then restored."""
    with open(MAX_QUEUED_EVENTS) as fh:
        saved = fh.read().strip()
    original = watch_module.LiveWatch.start

    def start(self, loop):
        with open(MAX_QUEUED_EVENTS, "w") as fh:
            fh.write(str(limit))
        try:
            return original(self, loop)
        finally:
            with open(MAX_QUEUED_EVENTS, "w") as fh:
                fh.write(saved)

    monkeypatch.setattr(watch_module.LiveWatch, "start", start)
    try:
        yield
    finally:
        with open(MAX_QUEUED_EVENTS, "w") as fh:
            fh.write(saved)


def inotify_masks(pid: int | str = "self") -> list[int]:
    """The event mask of every inotify watch this process holds (from /proc/PID/fdinfo)."""
    masks = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                for line in fh:
                    if line.startswith("inotify wd:"):
                        masks.append(int(line.split(" mask:")[1].split()[0], 16))
        except (OSError, IndexError):
            continue
    return masks


def test_reads_queue_no_events_and_never_overflow(nats_server, tmp_path, monkeypatch, caplog):
    """Reading every file 100 times (what the analyzers do, times a hundred) with a 64-event kernel queue:
    no watch asks for open/read/close-nowrite/modify, nothing overflows, nothing is republished."""
    caplog.set_level(logging.WARNING)

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            paths = library_tree(h.lib, 200)
            with small_inotify_queue(monkeypatch, 64):
                h.start()
                await wait_events(h.js, lambda e: len(e) >= 200, timeout=60)
            for _ in range(100):
                for p in paths:
                    with open(p, "rb") as fh:
                        fh.read()
                await asyncio.sleep(0)
            await asyncio.sleep(2.0)
            assert "overflow" not in caplog.text.lower()
            assert h.watcher.live_watch.overflows == 0
            masks = inotify_masks()
            assert masks, "no inotify watch found"
            for mask in masks:
                assert mask & (IN_ACCESS | IN_MODIFY | IN_CLOSE_NOWRITE | IN_OPEN) == 0, hex(mask)
            assert len(await read_events(h.js)) == 200
            # a change is still seen (close-write), in the same small queue
            with open(paths[0], "ab") as fh:
                fh.write(b"more")
            ev = await wait_events(h.js, lambda e: len(e) >= 201)
            assert ev[-1].kind == "changed" and ev[-1].path == str(paths[0])

    run(main(), timeout=180)


BURST_WRITER = """
import sys, time
time.sleep(float(sys.argv[1]))
for i, path in enumerate(sys.argv[2:]):
    with open(path, "wb") as fh:
        fh.write(i.to_bytes(4, "big") * 16)
"""


def burst_while_stalled(paths: list, hold_s: float = 2.0) -> None:
    """Write ``paths`` from another process while no thread of this one can run, as on a machine too busy
    to schedule the watcher: the GIL is held (thread switching put off) for ``hold_s``, so watchdog's
    inotify reader reads nothing meanwhile and the kernel queue takes the whole burst. The writer starts
    after a delay, once the hold has begun (starting it releases the GIL)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(hold_s * 5)
    try:
        writer = subprocess.Popen([sys.executable, "-c", BURST_WRITER, "0.4", *map(str, paths)])
        end = time.perf_counter() + hold_s
        while time.perf_counter() < end:  # no system call: the GIL is never released
            pass
    finally:
        sys.setswitchinterval(interval)
    assert writer.wait(60) == 0


def test_an_overflow_is_counted_said_and_reconciled(nats_server, tmp_path, monkeypatch, caplog):
    """When the queue does overflow (a 16-event queue and a burst of 1500 creations while the watcher's
    process is stalled), the watcher counts it, says how to raise the limit, and reconciles: no file is
    left unpublished."""
    caplog.set_level(logging.WARNING)
    folders = [tmp_path / "lib" / f"album{i:02d}" for i in range(15)]
    for folder in folders:
        folder.mkdir(parents=True)  # watched from the start: the burst's creations are queued events
    paths = [folder / f"{n:03d} track.flac" for folder in folders for n in range(100)]

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            with small_inotify_queue(monkeypatch, 16):
                h.start()
                await wait_until_async(lambda: h.watcher.health().get("scan_complete"), 20, 0.1, "the scan")
            # watchdog adds the recursive watch in its own thread: wait for the root's and every folder's
            await wait_until_async(lambda: len(inotify_masks()) >= 1 + len(folders), 20, 0.05, "the watches")
            burst_while_stalled(paths)
            await wait_until_async(lambda: h.watcher.live_watch.overflows, 30, 0.1, "an overflow")
            assert "max_queued_events" in caplog.text
            await wait_events(h.js, lambda e: len(e) >= 1500, timeout=120)
            assert h.watcher.health()["inotify"]["overflows"] >= 1
            assert {e.path for e in await read_events(h.js)} == {str(p) for p in paths}

    run(main(), timeout=180)


def test_a_watch_left_running_by_a_dead_loop_does_not_hide_the_next_overflow():
    """A watch whose event loop is gone (never stopped) must not keep the live one from counting an overflow."""
    stale_loop, live_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    stale = watch_module.LiveWatch.__new__(watch_module.LiveWatch)
    live = watch_module.LiveWatch.__new__(watch_module.LiveWatch)
    for w, loop in ((stale, stale_loop), (live, live_loop)):
        w._loop, w.overflows, w.on_overflow = loop, 0, None
        watch_module._count_overflows_for(w)
    stale_loop.close()
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed; filesystem events were lost")
        live_loop.run_until_complete(asyncio.sleep(0))
        assert live.overflows == 1
    finally:
        watch_module._stop_counting_overflows_for(stale)
        watch_module._stop_counting_overflows_for(live)
        live_loop.close()


def test_a_stop_mid_backlog_is_quick_and_the_restart_republishes_nothing(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            library_tree(h.lib, 5000)
            h.start()
            await wait_until_async(lambda: h.watcher.publisher and h.watcher.publisher.published >= 300, 60, 0.02,
                                   "the first publishes")
            assert not h.watcher.health().get("scan_complete")
            started = time.monotonic()
            await h.stop()
            took = time.monotonic() - started
            first = h.watcher.publisher.published
            assert took < 5.0, f"the stop took {took:.1f} s"
            assert first < 5000, "the whole backlog was published before the stop"
            in_stream = len(await read_events(h.js))
            assert in_stream == first
            assert len(WatcherState(h.state).files) == first  # every acknowledged publish is in the state

            h.start()
            await wait_events(h.js, lambda e: len(e) >= 5000, timeout=120)
            await wait_until_async(lambda: h.watcher.health().get("scan_complete"), 30, 0.1, "the scan")
            assert h.watcher.publisher.published == 5000 - first  # nothing published twice
            assert h.watcher.publisher.duplicates == 0
            assert len(await read_events(h.js)) == 5000

    run(main(), timeout=300)


def test_scan_complete_waits_for_the_backlog_then_stays(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            library_tree(h.lib, 50)
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 50)
            health = await wait_until_async(lambda: h.watcher.health(), 10, 0.1, "scan complete",
                                            until=lambda r: r.get("scan_complete"))
            assert health["pid"] == os.getpid() and health["published"] == 50
            (h.lib / "later.flac").write_bytes(b"later")  # new work later does not undo the first scan
            assert h.watcher.health()["scan_complete"]

    run(main())


def test_directory_lookups_do_not_scan_the_whole_state(tmp_path):
    """``under(folder)`` costs the folder's files: 100,000 known files, a thousand lookups in well under a second."""
    state = WatcherState(str(tmp_path / "w.sqlite"))
    root = "/lib"
    for i in range(100_000):
        state.put(Entry(f"/lib/a{i // 1000:03d}/b{i // 10:05d}/{i}.flac", root, i, i, i, 1, "added"))
    started = time.perf_counter()
    for i in range(1000):
        found = state.under(f"/lib/a{i % 100:03d}/b{(i % 100) * 100:05d}")
        assert len(found) == 10
    assert time.perf_counter() - started < 0.5
    assert len(state.under("/lib/a007")) == 1000
    assert len(state.under("/lib")) == 100_000
    assert state.under("/lib/a00") == []  # a prefix of a name is not a folder
    state.delete("/lib/a007/b00700/7000.flac")
    assert len(state.under("/lib/a007")) == 999
    for i in range(7000, 7010):
        state.delete(f"/lib/a007/b00700/{i}.flac")
    assert state.under("/lib/a007/b00700") == []
    state.close()


def test_poll_mode_still_sees_new_and_changed_files(nats_server, tmp_path):
    """--poll (network shares) goes through the same event filter: creations and modifications still count."""
    from trackprint.watcher.service import Watcher, WatcherConfig

    async def main():
        async with Harness(nats_server, tmp_path) as h:
            cfg = WatcherConfig(roots=[str(h.lib)], nats=h.url, quiet_s=1.0, state_path=h.state, poll=True)
            h.watcher = Watcher(cfg, js=h.js)
            h.task = asyncio.create_task(h.watcher.run())
            await wait_until_async(lambda: h.watcher.health().get("scan_complete"), 20, 0.1, "the scan")
            (h.lib / "new.flac").write_bytes(b"new")
            await wait_events(h.js, lambda e: len(e) >= 1, timeout=30)
            with open(h.lib / "new.flac", "ab") as fh:
                fh.write(b"more")
            ev = await wait_events(h.js, lambda e: len(e) >= 2, timeout=30)
            assert [e.kind for e in ev] == ["added", "changed"] and ev[1].origin == "watch"

    run(main(), timeout=90)
