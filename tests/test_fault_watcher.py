"""The watcher's blind spots, with real mounts and renames (a real nats-server, inotify, a tmpfs)."""

from __future__ import annotations

import asyncio
import json
import os
import time

from tests.procs import run_cli
from tests.test_watcher import QUIET, Harness, kinds, read_events, run, wait_events
from tests.tmpfs import tmpfs
from trackprint import bus


def test_an_unmounted_sub_folder_is_a_missing_mount_not_deletions(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            (h.lib / "local.flac").write_bytes(b"l" * 100)
            with tmpfs(h.lib / "usb", "8m") as usb:
                for i in range(4):
                    (usb / f"u{i}.flac").write_bytes(bytes([i]) * 100)
                h.start()
                await wait_events(h.js, lambda e: len(e) >= 5)
            # the context unmounted it: lib/usb is an empty directory on the root's device now
            await asyncio.sleep(QUIET + 3)
            h.watcher.scan_root_into_dirty(str(h.lib), "reconcile")
            await asyncio.sleep(QUIET * 2 + 3)
            assert [k for k in kinds(await read_events(h.js)) if k[0] == "removed"] == []
            health = h.watcher.health()
            assert str(h.lib / "usb") in health["missing_mounts"]
            said = f"mount missing on {h.watcher.host}: {h.lib / 'usb'} ("
            await status_says(h, tmp_path, said)  # the real `trackprint status`, while it lasts
            with tmpfs(h.lib / "usb", "8m") as usb:  # mounted again: the files are back, the warning goes
                for i in range(4):
                    (usb / f"u{i}.flac").write_bytes(bytes([i]) * 100)
                await status_says(h, tmp_path, said, present=False)

    run(main(), timeout=180)


async def status_says(h, tmp_path, *parts: str, present: bool = True, timeout: float = 40.0) -> list[str]:
    """The warnings of `trackprint status --json` on the harness's bus, once one holds every one of ``parts``
    (``present``), or once none does; the watcher runs on meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        proc = await asyncio.to_thread(run_cli, "status", "--json", "--nats", h.url, "--db",
                                       f"sqlite:///{tmp_path / 'none.db'}", "--data-dir", str(tmp_path / "data"),
                                       timeout=60)
        warnings = json.loads(proc.stdout)["warnings"]
        if any(all(part in w for part in parts) for w in warnings) == present:
            return warnings
        assert time.monotonic() < deadline, f"status never {'said' if present else 'dropped'} {parts!r}: {warnings}"
        await asyncio.sleep(1.0)


def test_a_replaced_root_is_watched_again_at_once(nats_server, tmp_path):
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            (h.lib / "a.flac").write_bytes(b"a" * 100)
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 1)
            new = tmp_path / "new"
            new.mkdir()
            (new / "a.flac").write_bytes(b"a" * 100)
            os.rename(h.lib, tmp_path / "lib.old")
            os.rename(new, h.lib)
            await asyncio.sleep(1.0)
            (h.lib / "b.flac").write_bytes(b"b" * 100)  # seen by the live watch, not the 5-minute reconcile
            ev = await wait_events(h.js, lambda e: ("added", "b.flac") in kinds(e), timeout=20)
            assert ("removed", "a.flac") not in kinds(ev)

    run(main())


def test_a_mass_deletion_waits_for_a_person(nats_server, tmp_path):
    """A root replaced by a folder with one stray file: 14 removals at once are held, status-visible,
    and published only after `trackprint confirm-deletions`."""
    async def main():
        async with Harness(nats_server, tmp_path) as h:
            for i in range(14):
                (h.lib / f"t{i:02d}.flac").write_bytes(bytes([i]) * 100)
            h.start()
            await wait_events(h.js, lambda e: len(e) >= 14)
            for i in range(14):
                os.unlink(h.lib / f"t{i:02d}.flac")
            (h.lib / "stray.flac").write_bytes(b"s" * 333)
            await wait_events(h.js, lambda e: ("added", "stray.flac") in kinds(e))
            await asyncio.sleep(QUIET * 2 + 3)
            assert [k for k in kinds(await read_events(h.js)) if k[0] == "removed"] == []
            assert h.watcher.health()["held_deletions"][str(h.lib)]["count"] == 14
            said = ("14 of ", f" files under {h.lib} vanished at once on {h.watcher.host}: the removals are held")
            warnings = await status_says(h, tmp_path, *said)  # the real `trackprint status`, while it lasts
            assert any(f"trackprint confirm-deletions {h.lib}" in w for w in warnings), warnings
            kv = await bus.status_kv(h.js)
            await kv.put(bus.deletion_confirmation_key(str(h.lib)), b"9999999999")
            ev = await wait_events(h.js, lambda e: sum(k[0] == "removed" for k in kinds(e)) == 14, timeout=20)
            assert sum(k[0] == "removed" for k in kinds(ev)) == 14
            await status_says(h, tmp_path, *said, present=False)  # confirmed: no longer held, no longer said

    run(main(), timeout=180)
