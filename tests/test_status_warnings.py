"""`status` shows each condition while it lasts: the warnings built from one report (trackprint/status.py
``warnings_for``), for a stream filling up, a full disk, a missing mount and a held mass deletion; and none
once the condition is gone. (tests/test_fault_watcher.py shows the same through the real `trackprint status`
with a real unmount and a real mass deletion.)"""

from __future__ import annotations

import time

from trackprint.status import DISK_FULL_BYTES, STREAM_FULL_WARN, warnings_for


def report(*, fill: float = 0.1, watcher: dict | None = None, free: int | None = None) -> dict:
    """A report of a healthy run, but for what the arguments say."""
    stream = {"messages": 10, "bytes": int(fill * 1000), "max_bytes": 1000, "fill": fill}
    return {
        "run": {"rust_available": True},
        "instance": {"data_dir": "/d", "up_pid": 1234, "disk_free_bytes": 1 << 40 if free is None else free},
        "database": {"engine_share": {"rust": 10}},
        "bus": {"reachable": True,
                "streams": {"TRACKPRINT_EVENTS": stream, "TRACKPRINT_RESULTS": dict(stream, fill=0.1),
                            "TRACKPRINT_DEADLETTER": {"messages": 0, "fill": 0.0}},
                "consumers": {},
                "watchers": {"h1": {"updated_at": time.time(), "offline": {}, "missing_mounts": {},
                                    "held_deletions": {}, **(watcher or {})}}},
    }


def test_a_healthy_run_has_no_warning():
    assert warnings_for(report()) == []


def test_a_stream_at_80_percent_or_more_is_said_while_it_lasts():
    assert warnings_for(report(fill=STREAM_FULL_WARN - 0.01)) == []
    said = warnings_for(report(fill=0.85))
    assert said == ["stream TRACKPRINT_EVENTS is 85% full: new messages will be rejected at 100%"]
    assert warnings_for(report(fill=1.0)) == ["stream TRACKPRINT_EVENTS is 100% full: new messages will be "
                                              "rejected at 100%"]
    assert warnings_for(report(fill=0.3)) == []  # drained: gone


def test_a_full_data_disk_is_said_while_it_lasts():
    said = warnings_for(report(free=DISK_FULL_BYTES // 2))
    assert len(said) == 1 and said[0].startswith("the data directory's disk is full (16 MiB free)"), said
    assert "resumes by itself once space is freed" in said[0]
    assert warnings_for(report(free=DISK_FULL_BYTES * 4)) == []


def test_a_missing_mount_is_said_while_it_lasts():
    missing = {"missing_mounts": {"/m/usb": "files of device 42 are gone: unmounted?"}}
    said = warnings_for(report(watcher=missing))
    assert said == ["mount missing on h1: /m/usb (files of device 42 are gone: unmounted?); no removals are "
                    "published for its files"]
    assert warnings_for(report(watcher={"missing_mounts": {}})) == []  # mounted again


def test_a_held_mass_deletion_is_said_with_the_command_that_confirms_it():
    held = {"held_deletions": {"/m": {"count": 14, "known": 15}}}
    said = warnings_for(report(watcher=held))
    assert said == ["14 of 15 files under /m vanished at once on h1: the removals are held; if they are real, run "
                    "`trackprint confirm-deletions /m`"]
    assert warnings_for(report(watcher={"held_deletions": {}})) == []  # confirmed (or the files came back)


def test_several_conditions_at_once_are_each_said():
    watcher = {"missing_mounts": {"/m/usb": "unmounted?"}, "held_deletions": {"/n": {"count": 9, "known": 10}}}
    said = warnings_for(report(fill=0.9, watcher=watcher, free=1 << 20))
    assert len(said) == 4, said
    assert [w.split()[0] for w in said] == ["the", "stream", "mount", "9"], said
